"""training.detectors: one interface (validate included) for every family, and `make_detector` loads
a saved model with the family its file's content belongs to, whatever the file is called."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from annotator.errors import TrainingError
from training.detectors import make_detector
from training.detectors.base import Detector, Predictor
from training.detectors.runtime import RuntimePredictor
from training.detectors.torchvision import TorchvisionDetector
from training.detectors.ultralytics import UltralyticsDetector

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


def test_validate_is_part_of_the_interface_every_family_implements():
    assert "validate" in Detector.__abstractmethods__
    for family in (TorchvisionDetector, UltralyticsDetector):
        assert "validate" not in family.__abstractmethods__


def test_a_prediction_only_runtime_is_a_predictor_not_a_detector():
    assert issubclass(Detector, Predictor) and issubclass(RuntimePredictor, Predictor)
    assert not issubclass(RuntimePredictor, Detector)
    assert not any(hasattr(RuntimePredictor, name) for name in ("train", "validate", "save", "load"))


def test_a_saved_torchvision_model_reloads_as_torchvision(tmp_path: Path):
    saved = make_detector("ssdlite", CLASSES).save(tmp_path / "x.pt")
    again = make_detector(str(saved), CLASSES, verbose=True)
    assert isinstance(again, TorchvisionDetector) and again.arch == "ssdlite"


def test_a_saved_ultralytics_model_reloads_as_ultralytics(tmp_path: Path):
    saved = make_detector("yolo11n", CLASSES).save(tmp_path / "x.pt")
    assert isinstance(make_detector(str(saved), CLASSES), UltralyticsDetector)


def test_a_file_of_neither_family_is_one_clear_error_naming_it(tmp_path: Path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(
        TrainingError,
        match=r"garbage\.pt: neither an Ultralytics checkpoint nor a torchvision model saved by this tool",
    ):
        make_detector(str(garbage), CLASSES)


def test_a_bare_state_dict_is_not_guessed_into_a_family(tmp_path: Path):
    torch.save({"backbone.weight": torch.zeros(3)}, tmp_path / "weights.pt")
    with pytest.raises(TrainingError, match="weights.pt: neither"):
        make_detector(str(tmp_path / "weights.pt"), CLASSES)


def test_every_family_is_built_by_name_with_the_same_options():
    assert make_detector("ssdlite", CLASSES, verbose=True).family == "torchvision"
