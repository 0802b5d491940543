"""The benchmark's protocol: how every detector family of one comparison is trained, named by profile.

One `Protocol` fixes what the families share (the photos, the image size, the stopping rule with its patience,
epochs ceiling and wall-clock budget per family, the batch); each family keeps its own documented learning rate and
schedule (`Recipe.REFERENCE`). docs/benchmark-protocol.md gives the reasons and the commands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

from annotator.errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    """What every family of one benchmark shares."""

    name: str
    models: tuple[str, ...]  # one per family of the study, plus the tool's default YOLO
    imgsz: int  # long side for training, validation and prediction (SSDs keep their fixed square)
    max_photos: int | None  # train + val photos kept (the test split is never cut); None: all
    epochs: int  # the ceiling; the budget usually ends a run first
    patience: int  # epochs without a better val mAP50-95 before a run stops
    budget_minutes: float  # wall-clock training time per family
    batch: int
    device: str | None
    workers: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models)}


CPU_SMALL = Protocol(
    name="cpu-small",
    models=("yolov4", "yolov5nu", "ssdlite", "fasterrcnn_mobilenet", "yolo11n"),  # the families at their CPU sizes
    # 384 px is the small synthetic photo's own long side (384 x 288: nothing is downscaled), and on a larger photo
    # it keeps the median solar lentigo (2.5 % of the long side on the hard preset) near 10 px, more than one cell of
    # the finest YOLO grid (stride 8); at 320 it would be 8 px
    imgsz=384,
    # about 90 train + 30 val photos: on 2 cores Faster R-CNN (the slowest family here, ~2 s a photo forward and
    # back at 384 px) still gets several epochs in its budget, the YOLOs a few dozen
    max_photos=120,
    epochs=100,  # Ultralytics' default run length; the budget ends a CPU run well before it
    patience=10,  # the tool's own floor (training.detectors.ultralytics.recipe_args): a tenth of the ceiling
    budget_minutes=15.0,  # 90 minutes / 5 families = 18 each: 15 to train, 3 to build, score the test split, report
    batch=8,  # 15 optimizer steps an epoch on 120 photos; 16 would halve them
    device="cpu",
    workers=0,  # both cores for the model's threads: a loader process would take one (benchmarks/families.py ran so)
)

GPU_FULL = Protocol(
    name="gpu-full",
    # the study's families at their papers' sizes: YOLOv4-CSP (l), YOLOv5s (its train.py default), SSD300 VGG16,
    # Faster R-CNN ResNet-50 FPN, and the tool's GPU default yolo11s
    models=("yolov4l-csp.yaml", "yolov5su.yaml", "ssd300", "fasterrcnn_resnet50", "yolo11s.yaml"),
    imgsz=640,  # Ultralytics' and YOLOv5's default; Faster R-CNN follows it, SSD300 keeps its 300
    max_photos=None,
    epochs=300,  # YOLOv5's and Scaled-YOLOv4's default run length
    patience=50,  # half Ultralytics' default of 100: a family flat for 50 epochs of 300 has converged
    budget_minutes=120.0,  # 5 families in 10 hours of one GPU
    batch=16,  # Ultralytics' default
    device="0",
    workers=8,
)

PROFILES: Mapping[str, Protocol] = MappingProxyType({p.name: p for p in (CPU_SMALL, GPU_FULL)})


def profile_named(name: str) -> Protocol:
    """The protocol of a profile name; a ConfigError naming the profiles otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def capped_splits(splits: Mapping[str, str], max_photos: int | None, *, seed: int = 0) -> dict[str, str]:
    """`splits` (photo -> split) with train + val cut to `max_photos` in their own proportion, the test split whole.

    Each split's photos are taken in an order fixed by the seed and the photo's path, so every family and every rerun
    trains on the same subset, and a photo added later does not reshuffle it."""
    if max_photos is None:
        return dict(splits)
    ranked = {
        s: sorted(
            (p for p, v in splits.items() if v == s), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest()
        )
        for s in ("train", "val")
    }
    total = len(ranked["train"]) + len(ranked["val"])
    if total <= max_photos:
        return dict(splits)
    n_val = round(max_photos * len(ranked["val"]) / total)
    n_val = max(1, n_val) if ranked["val"] else 0
    kept = set(ranked["train"][: max_photos - n_val]) | set(ranked["val"][:n_val])
    return {p: s for p, s in splits.items() if s not in ranked or p in kept}
