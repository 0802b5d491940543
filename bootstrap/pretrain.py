"""`annotator pretrain`: a start for round 0 made on this machine, without internet, from the tool's synthetic
faces, from the workspace's own unlabelled photos (self-supervised), or both (the photos first, then the
synthetic detector grown from them). Starts are cached (training.pretraining.starts); `use` writes the start
into annotator.toml so bootstrap takes it, and every round's record names it (docs/pretraining.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from annotator.config import save_config
from annotator.errors import ConfigError
from annotator.store import Workspace
from annotator.types import EVAL_SPLIT
from bootstrap.rounds import ensure_splits, resolve_model, starts_fresh
from training.detectors.pretrained import sha256_of
from training.pretraining.selfsupervised import SelfSupervisedSettings, pretrain_backbone
from training.pretraining.starts import MadeStart, Start, StartKey, StartKind, cached_start, files_digest
from training.pretraining.synthetic import SyntheticSettings, synthetic_start


@dataclass(frozen=True)
class PretrainSettings:
    kind: StartKind = StartKind.SYNTHETIC
    model: str | None = None  # None: the workspace's round-0 model (a YAML)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    photos: SelfSupervisedSettings = field(default_factory=SelfSupervisedSettings)
    device: str | None = None
    rebuild: bool = False  # make it again even when the cache holds it


@dataclass(frozen=True)
class PretrainResult:
    start: Start
    steps: tuple[Start, ...]  # each start made or reused on the way (the photos' backbone before "both")
    used: bool  # written into annotator.toml as [train] pretrained

    def to_dict(self) -> dict:
        return {
            "path": str(self.start.path),
            "provenance": self.start.provenance.to_dict(),
            "steps": [{"path": str(s.path), "kind": s.provenance.key.kind, "reused": s.reused} for s in self.steps],
            "used": self.used,
        }


def pretrain(
    ws: Workspace,
    settings: PretrainSettings,
    *,
    use: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> PretrainResult:
    """Make (or reuse) the start `settings.kind` names for this workspace's round-0 model and image size;
    `use`: round 0 starts from it from now on. progress: (step name, done, total)."""
    model = _fresh_model(ws, settings.model)
    steps: list[Start] = []
    parent: Start | None = None
    if settings.kind in (StartKind.PHOTOS, StartKind.BOTH):
        parent = photos_start(ws, model, settings, progress=progress)
        steps.append(parent)
    if settings.kind in (StartKind.SYNTHETIC, StartKind.BOTH):
        steps.append(
            synthetic_start(
                model,
                ws.config.imgsz,
                settings.synthetic,
                parent=parent.path if parent else None,
                parent_sha=sha256_of(parent.path) if parent else "",
                device=settings.device,
                progress=(lambda d, t: progress("synthetic faces", d, t)) if progress else None,
                rebuild=settings.rebuild,
            )
        )
    if use:
        chosen = steps[-1].path
        save_config(ws.root, ws.config.with_(pretrained=str(chosen), pretrained_sha256=sha256_of(chosen)))
    return PretrainResult(start=steps[-1], steps=tuple(steps), used=use)


def _fresh_model(ws: Workspace, spec: str | None) -> str:
    """The network a start is made for: a YAML round 0 builds, never trained weights."""
    model = resolve_model(ws, 0, spec or ws.config.model)
    if not starts_fresh(model):
        raise ConfigError(f"{model}: a start is made for a network built from a YAML (e.g. yolo11n.yaml)")
    return model


def unlabelled_training_photos(ws: Workspace) -> list[Path]:
    """The photos self-supervision may see: every photo but the test split and the fixed evaluation set, so
    neither is scored by a model that trained on it, labels or not."""
    splits = ensure_splits(ws)
    held_out = {p for p, split in splits.items() if split in ("test", EVAL_SPLIT)}
    return [ws.image_path(r.path) for r in ws.store.labels.images() if r.path not in held_out]


def photos_start(
    ws: Workspace,
    model: str,
    settings: PretrainSettings,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> Start:
    """The backbone self-supervised on this workspace's photos (cached by the photos' digest and the recipe)."""
    photos = unlabelled_training_photos(ws)
    ssl = settings.photos
    recipe = {k: v for k, v in asdict(ssl).items() if k not in ("threads", "device")}
    key = StartKey(StartKind.PHOTOS.value, model, ssl.imgsz, recipe, sources=files_digest(photos))

    def make(workdir: Path) -> MadeStart:
        workdir.mkdir(parents=True, exist_ok=True)
        report = (lambda d, t: progress("self-supervised backbone", d, t)) if progress else None
        result = pretrain_backbone(photos, workdir / "backbone.pt", model=model, settings=ssl, progress=report)
        state = torch.load(result.path, map_location="cpu", weights_only=True)
        result.path.unlink()
        return MadeStart(state, None, (), result.to_dict())

    return cached_start(key, make, rebuild=settings.rebuild)
