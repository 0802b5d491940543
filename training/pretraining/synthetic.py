"""A detector pretrained on the tool's own synthetic faces (annotator.synthetic), as a start for round 0 where no
internet brings ImageNet or COCO weights: draw a labelled synthetic set, train the chosen network on it with
the round recipe, keep its tensors (`training.pretraining.starts`).

The synthetic classes are the six PSL classes. A workspace with those classes takes the whole network; one
with other classes takes everything but the class scores (the start lists them as its `class_head`).
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from annotator.boxes import voc_to_box
from annotator.classes import CLASS_NAMES
from annotator.formats.voc import read_voc
from annotator.synthetic import PRESETS, generate
from training.dataset import ViewPhoto, write_view
from training.detectors import make_detector
from training.detectors.base import TrainingView, TrainSettings
from training.pretraining.starts import MadeStart, Start, StartKey, StartKind, cached_start


@dataclass(frozen=True)
class SyntheticSettings:
    """How much synthetic training a start gets (docs/pretraining.md gives the measured costs)."""

    photos: int = 800
    epochs: int = 10
    preset: str = "hard"  # annotator.synthetic.PRESETS
    size: str = "small"  # the synthetic photos' size (annotator.synthetic.SIZES)
    seed: int = 0
    batch: int = 16
    val_fraction: float = 0.1
    workers: int = 2  # processes drawing the photos


def generator_version() -> str:
    """A digest of the face renderer's source: a start is redrawn when the generator changes, never by hand."""
    package = Path(__file__).resolve().parents[2] / "annotator" / "synthetic"
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


def synthetic_key(model: str, imgsz: int, settings: SyntheticSettings, *, parent: str = "") -> StartKey:
    """The cache key of a synthetic start (`parent`: the sha256 of the start it grew from, if any)."""
    recipe = {k: v for k, v in asdict(settings).items() if k != "workers"}  # workers draw the same photos
    return StartKey(StartKind.SYNTHETIC.value, model, imgsz, recipe, sources=generator_version(), parent=parent)


def synthetic_start(
    model: str,
    imgsz: int,
    settings: SyntheticSettings = SyntheticSettings(),
    *,
    parent: Path | None = None,
    parent_sha: str = "",
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    root: Path | None = None,
    rebuild: bool = False,
) -> Start:
    """The synthetic start for (model, image size, settings), from the cache or trained now. `parent`: a start
    the synthetic training itself begins from (e.g. the self-supervised backbone), named by `parent_sha`."""
    key = synthetic_key(model, imgsz, settings, parent=parent_sha)

    def make(workdir: Path) -> MadeStart:
        try:
            return _train_on_synthetic(workdir, model, imgsz, settings, parent, device, progress)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # the drawn photos and the trainer's files

    return cached_start(key, make, root=root, rebuild=rebuild)


def _train_on_synthetic(
    workdir: Path,
    model: str,
    imgsz: int,
    settings: SyntheticSettings,
    parent: Path | None,
    device: str | None,
    progress: Callable[[int, int], None] | None,
) -> MadeStart:
    """Draw the set, train the network on it, and return its tensors with the class head named."""
    shutil.rmtree(workdir, ignore_errors=True)
    data = workdir / "data"
    generate(data, images=settings.photos, labelled_fraction=1.0, seed=settings.seed, size=settings.size,
             workers=settings.workers, world=PRESETS[settings.preset])  # fmt: skip
    view = folder_view(
        data / "images", data / "truth", CLASS_NAMES, workdir / "view", settings.val_fraction, settings.seed
    )
    build: dict[str, Any] = {"pretrained": parent} if parent else {}
    detector = make_detector(model, CLASS_NAMES, **build)
    train = TrainSettings(epochs=settings.epochs, imgsz=imgsz, batch=settings.batch, device=device, seed=settings.seed)
    result = detector.train(view, train, workdir / "train", progress=progress)
    network = detector.model.model  # type: ignore[attr-defined]
    details: dict[str, Any] = {
        "val_map50": result.metrics.get("metrics/mAP50(B)"),
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.train_seconds, 1),
        "photos": {split: len(view.images[split]) for split in ("train", "val")},
        "transferred_from_parent": detector.pretrained.tensors if detector.pretrained else None,
    }
    return MadeStart(dict(network.state_dict()), CLASS_NAMES, class_head(network, len(CLASS_NAMES)), details)


def class_head(network: torch.nn.Module, classes: int) -> tuple[str, ...]:
    """The tensors of a YOLO detection head that score the classes: each scale's last class-branch
    convolution (`cv3`, and `one2one_cv3` where the head has one), whose outputs are one per class."""
    index = len(network.model) - 1
    head = network.model[-1]
    names = []
    for name, module in head.named_modules():
        if isinstance(module, torch.nn.Conv2d) and module.out_channels == classes and "cv3" in name:
            names += [f"model.{index}.{name}.{p}" for p, _ in module.named_parameters()]
    return tuple(names)


def folder_view(
    images: Path, truth: Path, classes: tuple[str, ...], out: Path, val_fraction: float, seed: int
) -> TrainingView:
    """A YOLO training view (links, labels in the displayed frame) of photos with one truth VOC each, split
    at random into train and val."""
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.Random(seed).shuffle(photos)
    val_count = max(1, round(len(photos) * val_fraction))
    split_of = {p: ("val" if i < val_count else "train") for i, p in enumerate(photos)}
    return write_view(out, classes, (_view_photo(photo, split, truth) for photo, split in sorted(split_of.items())))


def _view_photo(photo: Path, split: str, truth: Path) -> ViewPhoto:
    """A photo of the folder with the boxes of its truth VOC."""
    voc = read_voc(truth / f"{photo.stem}.xml")
    boxes = [voc_to_box(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in voc.objects]
    return ViewPhoto(photo, photo.name, photo.name, split, boxes, voc.width or 0, voc.height or 0)
