"""Pretrained starting weights, as the study used them: a local checkpoint transferred into a new model.

Every family takes `pretrained=PATH` (Ultralytics detection or classification .pt, torchvision backbone
weights). Nothing is downloaded. What was transferred is recorded (`PretrainedWeights`: file name,
sha256, tensors transferred) so a round's provenance names the checkpoint it grew from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from annotator.errors import TrainingError
from training.pretraining.starts import describe_file


@dataclass(frozen=True)
class PretrainedWeights:
    """The checkpoint a model started from, and how much of it the model took."""

    name: str  # the file's name
    sha256: str
    tensors: int  # tensors transferred into the model
    checkpoint_tensors: int  # tensors the checkpoint holds
    model_tensors: int  # tensors the model holds (those not transferred keep their random start)
    # how the tool made it, when it did (training.pretraining.starts: kind, model, image size, recipe, digest)
    start: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint as an existing local file, or one clear error (nothing is ever downloaded)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise TrainingError(
            f"{file}: pretrained checkpoint not found; name a local weights file (nothing is "
            "downloaded), or remove `pretrained` from [train] in annotator.toml"
        )
    return file


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, expected: str | None) -> Path:
    """`path` when its sha256 is `expected` (or nothing is expected); else one clear error: a checkpoint copied
    onto an offline machine is checked against the digest noted where it was downloaded."""
    if expected is None:
        return path
    actual = sha256_of(path)
    if actual.lower() != expected.strip().lower():
        raise TrainingError(
            f"{path}: sha256 is {actual}, but pretrained_sha256 in annotator.toml expects {expected}; the file is "
            "not the one verified (copy it again), or set pretrained_sha256 to the new file's digest"
        )
    return path


def plain_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of a file holding only tensors (a state_dict, or one under "state_dict"/"model"),
    read without executing anything; None when the file pickles other objects (e.g. an Ultralytics model)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a pickle of objects, or not a torch file: the caller decides
        return None
    if not isinstance(payload, dict):
        return None
    for key in ("state_dict", "model"):
        if isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    tensors = {str(k).removeprefix("module."): v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    return tensors or None


def transfer_by_name(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every checkpoint tensor whose name and shape match one of `module`'s (a head built for another
    class count, or a classifier's head, is skipped). Returns the names transferred, in the module's order."""
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if matched:
        module.load_state_dict({k: v.to(own[k].dtype) for k, v in matched.items()}, strict=False)
    return [k for k in own if k in matched]


def record(path: Path, transferred: int, checkpoint_tensors: int, module: torch.nn.Module) -> PretrainedWeights:
    """The provenance of a transfer; refuses one that transferred nothing (the wrong file for this model)."""
    if transferred == 0:
        raise TrainingError(
            f"{path}: no tensor of this checkpoint fits the model (names and shapes differ); name "
            "weights of the same architecture (e.g. yolo11n.pt or yolo11n-cls.pt for yolo11n)"
        )
    return PretrainedWeights(
        name=path.name,
        sha256=sha256_of(path),
        tensors=transferred,
        checkpoint_tensors=checkpoint_tensors,
        model_tensors=len(module.state_dict()),
        start=describe_file(path),
    )
