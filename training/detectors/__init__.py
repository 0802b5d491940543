"""Detector families behind one interface; `make_detector(name, classes)` builds one by name.

Ultralytics names ("yolo11n", "yolov8n", "yolov5nu", "rtdetr-l", "yolov4", or a YAML/.pt
path) are built here; other families (torchvision SSD, Faster R-CNN) `register` a factory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from training.detectors.base import Detector, TrainingView, TrainResult, TrainSettings

_FACTORIES: dict[str, Callable[..., Detector]] = {}


def register(name: str, factory: Callable[..., Detector]) -> None:
    _FACTORIES[name] = factory


def _ensure_registered() -> None:
    import training.detectors.torchvision  # noqa: F401  (registers its names on import)


def make_detector(name: str, classes: Sequence[str], **kwargs) -> Detector:
    _ensure_registered()
    if name in _FACTORIES:
        return _FACTORIES[name](classes, **kwargs)
    from training.detectors.ultralytics import UltralyticsDetector

    spec = name if (name.endswith((".yaml", ".yml", ".pt")) or Path(name).exists()) else f"{name}.yaml"
    if name == "yolov4":
        spec = "yolov4-csp.yaml"
    return UltralyticsDetector(classes, spec, **kwargs)


__all__ = ["Detector", "TrainingView", "TrainResult", "TrainSettings", "make_detector", "register"]
