"""Detector families behind one interface; `make_detector(name, classes)` builds one by name.

Ultralytics names ("yolo11n", "yolov8n", "yolov5nu", "rtdetr-l", "yolov4", or a YAML path) are
built here; other families (torchvision SSD, Faster R-CNN) `register` a factory. A saved weights
file is loaded by the family its content belongs to (`load_detector`), whatever its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from annotator.errors import TrainingError
from training.detectors.base import Detector, TrainingView, TrainResult, TrainSettings

_FACTORIES: dict[str, Callable[..., Detector]] = {}


def register(name: str, factory: Callable[..., Detector]) -> None:
    _FACTORIES[name] = factory


def _ensure_registered() -> None:
    import training.detectors.torchvision  # noqa: F401  (registers its names on import)


def make_detector(name: str, classes: Sequence[str], *, verbose: bool = False, **kwargs: Any) -> Detector:
    """A detector by name ("yolo11n", "ssdlite", a YAML), or loaded from a weights file a round or
    the benchmark saved, its family read from the file's content. kwargs: the family's build options."""
    _ensure_registered()
    if name in _FACTORIES:
        return _FACTORIES[name](classes, verbose=verbose, **kwargs)
    path = Path(name).expanduser()
    if path.is_file() and not name.endswith((".yaml", ".yml")):
        return load_detector(path, classes, verbose=verbose)
    from training.detectors.ultralytics import UltralyticsDetector

    spec = name if (name.endswith((".yaml", ".yml", ".pt")) or path.exists()) else f"{name}.yaml"
    if name == "yolov4":
        spec = "yolov4-csp.yaml"
    return UltralyticsDetector(classes, spec, verbose=verbose, **kwargs)


def load_detector(path: Path, classes: Sequence[str], *, verbose: bool = False) -> Detector:
    """Load a saved detector with the family its checkpoint belongs to: a torchvision model written
    by `TorchvisionDetector.save`, or an Ultralytics checkpoint. Anything else is a TrainingError."""
    from training.detectors.torchvision import TorchvisionDetector, is_torchvision_checkpoint
    from training.detectors.ultralytics import UltralyticsDetector, is_ultralytics_checkpoint

    path = Path(path)
    if is_torchvision_checkpoint(path):
        return TorchvisionDetector.load(path, classes, verbose=verbose)
    if is_ultralytics_checkpoint(path):
        return UltralyticsDetector.load(path, classes, verbose=verbose)
    raise TrainingError(
        f"{path}: neither a torchvision model saved by this tool nor an Ultralytics checkpoint; "
        "name a model.pt a round or the benchmark wrote (torchvision weights of your own go with "
        "their architecture: make_detector('ssdlite', classes, weights=...))"
    )


__all__ = ["Detector", "TrainingView", "TrainResult", "TrainSettings", "load_detector", "make_detector", "register"]
