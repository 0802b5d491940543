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


def test_every_batch_is_an_optimizer_step_on_a_small_seed_set():
    from training.detectors.base import TrainSettings
    from training.detectors.ultralytics import recipe_args

    # Ultralytics' nominal batch of 64 would give 72 photos at batch 8 one optimizer step per epoch
    assert recipe_args(72, 6, TrainSettings(epochs=40, batch=8), warm_start=False)["nbs"] == 8


def test_a_warm_start_fine_tunes_at_a_lower_rate_without_warm_up():
    from training.detectors.base import TrainSettings
    from training.detectors.ultralytics import recipe_args

    settings = TrainSettings(epochs=16, batch=8)
    fresh = recipe_args(3000, 6, settings, warm_start=False)
    warm = recipe_args(3000, 6, settings, warm_start=True)
    assert fresh["warmup_epochs"] > 0 and warm["warmup_epochs"] == 0.0
    assert warm["optimizer"] == fresh["optimizer"] == "AdamW" and warm["lr0"] <= fresh["lr0"] / 2


def test_augmentation_suits_face_photos():
    from training.detectors.base import TrainSettings
    from training.detectors.ultralytics import recipe_args

    args = recipe_args(72, 6, TrainSettings(), warm_start=False)
    assert args["fliplr"] == 0.5 and args["flipud"] == 0.0 and args["degrees"] == 0.0
    assert args["hsv_h"] == 0.0  # hue separates blue-grey dermal pigment from brown


def test_early_stopping_waits_half_the_run_unless_told():
    from training.detectors.base import TrainSettings
    from training.detectors.ultralytics import recipe_args

    assert recipe_args(72, 6, TrainSettings(epochs=40), warm_start=False)["patience"] == 20
    assert recipe_args(72, 6, TrainSettings(epochs=8), warm_start=True)["patience"] == 10
    assert recipe_args(72, 6, TrainSettings(epochs=40, patience=5), warm_start=False)["patience"] == 5


def test_reference_recipe_is_ultralytics_own_defaults_with_the_protocols_fixed_parts():
    from training.detectors.base import Recipe, TrainSettings
    from training.detectors.ultralytics import reference_args

    args = reference_args(TrainSettings(epochs=100, batch=16, patience=10, recipe=Recipe.REFERENCE))
    assert args["optimizer"] == "auto" and "lr0" not in args and "warmup_epochs" not in args  # Ultralytics decides
    assert args["nbs"] == 16 and args["patience"] == 10 and args["fliplr"] == 0.5 and args["flipud"] == 0.0


def test_a_scale_of_a_yaml_we_ship_resolves_beside_it():
    from training.detectors.ultralytics import SHIPPED_MODELS_DIR, _resolve_spec

    assert _resolve_spec("yolov4l-csp.yaml") == str(SHIPPED_MODELS_DIR / "yolov4l-csp.yaml")
    assert _resolve_spec("yolo11n.yaml") == "yolo11n.yaml"  # Ultralytics' own
