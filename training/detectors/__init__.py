"""Detector families behind one interface; `make_detector(name, classes)` builds one by name.

Each family registers its names, builder, loader and checkpoint test in `training.detectors.registry` from its own
file (Ultralytics: "yolo11n", "yolov8n", "yolov5nu", "rtdetr-l", "yolov4", or a YAML path; torchvision: SSD and
Faster R-CNN). A saved weights file is loaded by the family its content belongs to (`load_detector`), whatever its
name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annotator.errors import TrainingError
from training.detectors.base import Detector, Predictor, TrainingView, TrainResult, TrainSettings
from training.detectors.registry import (
    DetectorFamily,
    families,
    family_building,
    family_of_checkpoint,
    family_of_model,
    model_names,
    register_family,
)


def make_detector(name: str, classes: Sequence[str], *, verbose: bool = False, **kwargs: Any) -> Detector:
    """A detector by name ("yolo11n", "ssdlite", a YAML), or loaded from a weights file a round or
    the benchmark saved, its family read from the file's content. kwargs: the family's build options."""
    family = family_of_model(name)
    if family is not None:
        return family.build(name, classes, verbose=verbose, **kwargs)
    path = Path(name).expanduser()
    if path.is_file() and not name.endswith((".yaml", ".yml")):
        return load_detector(path, classes, verbose=verbose)
    family = family_building(name)
    if family is None:
        raise TrainingError(f"unknown model {name!r}; choose one of {', '.join(model_names())}, or a local file")
    return family.build(name, classes, verbose=verbose, **kwargs)


def load_detector(path: Path, classes: Sequence[str], *, verbose: bool = False) -> Detector:
    """Load a saved detector with the family its checkpoint belongs to (`DetectorFamily.recognises`).
    A file no family recognises is a TrainingError naming what each family would have taken."""
    path = Path(path)
    family = family_of_checkpoint(path)
    if family is None:
        raise TrainingError(
            f"{path}: neither {' nor '.join(f.checkpoint for f in families())}; name a model.pt a round or the "
            "benchmark wrote (torchvision weights of your own go with their architecture: "
            "make_detector('ssdlite', classes, weights=...))"
        )
    return family.load(path, classes, verbose=verbose)


__all__ = [
    "Detector",
    "DetectorFamily",
    "Predictor",
    "TrainingView",
    "TrainResult",
    "TrainSettings",
    "families",
    "load_detector",
    "make_detector",
    "model_names",
    "register_family",
]
