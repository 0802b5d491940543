"""The Ultralytics detector: built offline from the package's YAML, never from a download."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import TrainingError
from training.detectors import make_detector
from training.detectors.ultralytics import UltralyticsDetector

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


def test_a_weights_name_that_is_not_a_local_file_is_refused_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingError, match="nothing is downloaded"):
        UltralyticsDetector(CLASSES, "yolo11n.pt")


def test_a_replica_has_its_own_network_and_predicts_the_same(tmp_path):
    detector = make_detector("yolo11n", CLASSES)
    photo = [np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)]
    original = detector.predict_arrays(photo, conf=0.0001, imgsz=320, device="cpu")
    twin = detector.replicate()
    assert twin.model.model is not detector.model.model
    assert twin.predict_arrays(photo, conf=0.0001, imgsz=320, device="cpu") == original
    assert detector.parameter_count == twin.parameter_count > 1_000_000


def test_warm_up_is_skipped_when_ultralytics_floor_would_eat_the_small_seed_sets_training():
    from training.detectors.base import TrainSettings
    from training.detectors.ultralytics import warmup_epochs

    assert warmup_epochs(66, TrainSettings(epochs=25, batch=16)) == 0.0  # 125 iterations, 100 of them warm-up
    assert warmup_epochs(4000, TrainSettings(epochs=60, batch=16)) == 3.0  # 15,000 iterations
