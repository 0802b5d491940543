"""Pretrained starts the tool makes itself (from synthetic faces, from the workspace's unlabelled photos), kept
in a cache keyed by what made them, each with a provenance sidecar a round's record carries forward.

A start is two files in its own folder of the cache: `start.pt` (tensors only, the names an Ultralytics
DetectionModel uses, so `training.detectors.pretrained` transfers it like any user checkpoint) and
`start.json` (`StartProvenance`). The key is a digest of everything that changes the weights (the kind, the
model, the image size, the recipe, the generator's source or the photos' digest, the start it grew from), so a
change of any of them builds a new start and an unchanged one is reused at no cost.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from annotator.errors import TrainingError
from annotator.fsutil import atomic_write_text

CACHE_ENV = "ANNOTATOR_CACHE"  # where starts are cached; default ~/.cache/annotator
START_FILE, PROVENANCE_FILE = "start.pt", "start.json"
PROVENANCE_MARK = "annotator-start"  # the sidecar's "format" value, so a stray JSON beside a user file is not read


class StartKind(str, enum.Enum):
    """What a start is made from."""

    SYNTHETIC = "synthetic"  # a detector trained on synthetic faces
    PHOTOS = "photos"  # the backbone, self-supervised on the workspace's photos (no labels)
    BOTH = "both"  # the photos' backbone, then the synthetic detector grown from it


@dataclass(frozen=True)
class StartKey:
    """What a start is made from; two equal keys make the same weights (up to the framework's nondeterminism)."""

    kind: str  # a StartKind's value: what made this start ("both" is a synthetic start with a photos parent)
    model: str  # the YAML the network is built from, e.g. "yolo11n.yaml"
    imgsz: int
    recipe: Mapping[str, Any] = field(default_factory=dict)  # epochs, photos, preset, seed, ...
    sources: str = ""  # a digest of the inputs: the generator's source, or the photos' names and sizes
    parent: str = ""  # the sha256 of the start this one grew from ("" for none)

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StartProvenance:
    """How a start was made: what its round records name (via `training.detectors.pretrained`)."""

    key: StartKey
    classes: tuple[str, ...] | None  # the classes its detection head was trained for (None: no head)
    class_head: tuple[str, ...]  # tensors that score those classes: not transferred into a model of other classes
    tensors: int
    seconds: float
    made: str  # UTC time
    details: Mapping[str, Any] = field(default_factory=dict)  # what the maker measured (losses, mAP on its val)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["format"] = PROVENANCE_MARK
        out["digest"] = self.key.digest()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StartProvenance:
        key = StartKey(**data["key"])
        classes = data.get("classes")
        return cls(
            key=key,
            classes=tuple(classes) if classes is not None else None,
            class_head=tuple(data.get("class_head", ())),
            tensors=int(data["tensors"]),
            seconds=float(data["seconds"]),
            made=str(data["made"]),
            details=dict(data.get("details", {})),
        )

    def summary(self) -> dict[str, Any]:
        """The few fields a round's provenance carries: kind, model, image size, recipe, digest, when."""
        return {
            "kind": self.key.kind,
            "model": self.key.model,
            "imgsz": self.key.imgsz,
            "recipe": dict(self.key.recipe),
            "digest": self.key.digest(),
            "parent": self.key.parent or None,
            "made": self.made,
        }


@dataclass(frozen=True)
class Start:
    """A start on disk: its weights file and how it was made; `reused` when the cache already held it."""

    path: Path
    provenance: StartProvenance
    reused: bool


def cache_root() -> Path:
    """The folder starts are cached in ($ANNOTATOR_CACHE, else ~/.cache/annotator), under `starts/`."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "annotator") / "starts"


@dataclass(frozen=True)
class MadeStart:
    """What a maker returns: the tensors, the classes their head scores (None: no head) and its measurements."""

    state: Mapping[str, torch.Tensor]
    classes: tuple[str, ...] | None = None
    class_head: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


# Makes a start in the work folder it is given: its tensors and what it measured.
Maker = Callable[[Path], MadeStart]


def cached_start(key: StartKey, make: Maker, *, root: Path | None = None, rebuild: bool = False) -> Start:
    """The start `key` names: read from the cache, or made by `make(workdir)` and stored (atomically: a start
    killed while being made leaves nothing the next call would reuse)."""
    folder = (root or cache_root()) / f"{key.kind}-{key.digest()}"
    existing = read_start(folder / START_FILE)
    if existing is not None and not rebuild:
        return Start(folder / START_FILE, existing, reused=True)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    made = make(folder / "work")
    provenance = StartProvenance(
        key=key,
        classes=made.classes,
        class_head=tuple(made.class_head),
        tensors=len(made.state),
        seconds=round(time.perf_counter() - started, 1),
        made=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        details=dict(made.details),
    )
    save_tensors(folder / START_FILE, made.state)
    atomic_write_text(folder / PROVENANCE_FILE, json.dumps(provenance.to_dict(), indent=2, default=str))
    return Start(folder / START_FILE, provenance, reused=False)


def save_tensors(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Tensors only (readable with `weights_only=True`, so loading runs no pickled code), written atomically."""
    if not state:
        raise TrainingError(f"{path}: no tensors to save")
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def read_start(path: Path) -> StartProvenance | None:
    """The provenance of a start file (its `start.json` sidecar), None for a file the tool did not make."""
    sidecar = Path(path).with_name(PROVENANCE_FILE)
    if not Path(path).is_file() or not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != PROVENANCE_MARK:
        return None
    return StartProvenance.from_dict(data)


def transferable(state: Mapping[str, torch.Tensor], start: StartProvenance | None, classes: Iterable[str]) -> dict:
    """The tensors of `state` a model for `classes` may take: all of them, less the class head when the start
    scored other classes (same count, other meanings: a head trained for melasma must not score acne)."""
    if start is None or start.classes is None or tuple(start.classes) == tuple(classes):
        return dict(state)
    head = set(start.class_head)
    return {k: v for k, v in state.items() if k not in head}


def describe_file(path: Path) -> dict[str, Any] | None:
    """What a round's provenance says about a start file: `StartProvenance.summary`, None for a user's file."""
    start = read_start(path)
    return start.summary() if start is not None else None


def files_digest(paths: Iterable[Path]) -> str:
    """A digest of photos by name, size and modification time (cheap; a changed photo changes it)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]
