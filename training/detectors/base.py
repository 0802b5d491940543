"""One detector interface for every family (Ultralytics YOLO/RT-DETR, torchvision SSD/Faster R-CNN).

A `Predictor` predicts on decoded displayed-frame arrays. A `Detector` is a predictor that also trains on a
`TrainingView` (YOLO-format folders written by `training.dataset`), validates on a split of it, and saves/loads
itself to one file; each family registers how it is built and loaded in `training.detectors.registry`.
"""

from __future__ import annotations

import abc
import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from annotator.types import Box
from training.constants import PREDICT_FLOOR
from training.detectors.pretrained import PretrainedWeights
from training.detectors.stopping import StopRecord


@dataclass(frozen=True)
class TrainingView:
    """A YOLO-format data set: `data_yaml` lists train/val image folders; labels beside them.

    images: split -> list of (absolute photo path as linked in the view, relative workspace path).
    """

    root: Path
    data_yaml: Path
    classes: tuple[str, ...]
    images: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)

    def split_record(self) -> dict[str, dict[str, Any]]:
        """split -> {"photos": n, "sha256": digest of its sorted workspace paths}: what a run records of its data,
        so two runs can be shown to have trained and validated on the same photos."""
        out = {}
        for split, items in sorted(self.images.items()):
            paths = sorted(rel for _, rel in items)
            out[split] = {"photos": len(paths), "sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest()}
        return out


class Recipe(StrEnum):
    """Whose learning rate and schedule a family trains with."""

    TOOL = "tool"  # the tool's own, measured on small seed sets (docs/training-recipe.md): what rounds use
    REFERENCE = "reference"  # the family's own documented defaults (docs/benchmark-protocol.md): the benchmark's


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    device: str | None = None  # None: first GPU if any, else CPU; "0,1" for DDP
    seed: int = 0
    workers: int = 2
    # CPU training threads; None: every core the process may use. Ultralytics leaves one core idle for its
    # data loader (min(8, cores - 1) threads: one thread on a 2-core machine); measured in benchmarks/train_threads.py
    threads: int | None = None
    patience: int | None = None  # epochs without val improvement before stopping; None: the family's recipe
    # wall-clock minutes for the whole training run; None: no budget (training.detectors.stopping has the rule)
    budget_minutes: float | None = None
    recipe: Recipe = Recipe.TOOL
    verbose: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    weights: Path
    metrics: dict[str, Any]
    train_seconds: float
    epochs_run: int
    stopping: StopRecord | None = None  # why the run ended, and its validation curve
    applied: dict[str, Any] = field(default_factory=dict)  # the training arguments the family actually used


ProgressCallback = Callable[[int, int], None]  # (epoch done, epochs total)


class Predictor(abc.ABC):
    """What predicts boxes on decoded photos: every trainable `Detector`, and prediction-only runtimes (ONNX Runtime,
    `training.detectors.runtime`). `classes` fixes the index -> name mapping; `family` names what predicts.
    Callers that only predict (pre-annotation, the val thresholds, the test split) take this type."""

    family: str = "?"

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    @abc.abstractmethod
    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = PREDICT_FLOOR,
        imgsz: int = 640,
        device: str | None = None,
    ) -> list[list[Box]]:
        """Boxes in each array's own pixel frame (RGB uint8 (H, W, 3) inputs), scores set.
        device: None (GPU if present), "cpu" or a GPU index such as "0"."""

    def replicate(self) -> Predictor:
        """An independent copy for a second device or CPU core (pre-annotation runs one per pipeline)."""
        return copy.deepcopy(self)


class Detector(Predictor):
    """A predictor that trains, validates, saves and loads itself: one per family (training.detectors.registry).
    `pretrained`: the checkpoint the model's starting weights were transferred from, if any."""

    pretrained: PretrainedWeights | None = None

    @abc.abstractmethod
    def train(
        self, view: TrainingView, settings: TrainSettings, workdir: Path, progress: ProgressCallback | None = None
    ) -> TrainResult:
        """Train in `workdir` (everything the framework writes stays there)."""

    @abc.abstractmethod
    def validate(
        self, view: TrainingView, split: str, *, imgsz: int, batch: int, workdir: Path, device: str | None = None
    ) -> dict[str, Any]:
        """Detection quality on one split of the view: {"map50", "map50_95", "per_class": {label:
        {"map50", "map50_95", ...}} over the classes present, "images"}, plus what the family
        measures besides; {} when the split has no photos. Anything the framework writes goes
        under `workdir`."""

    @abc.abstractmethod
    def save(self, path: Path) -> Path:
        """Write the weights to one file and return its path."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, classes: Sequence[str], *, verbose: bool = False) -> Detector:
        """Load weights written by `save` (or a compatible local file the user names)."""

    @property
    @abc.abstractmethod
    def parameter_count(self) -> int:
        """Number of parameters, for the benchmark report."""
