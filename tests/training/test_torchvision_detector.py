"""TorchvisionDetector: trains one epoch on a tiny YOLO-format view, predicts, and round-trips
through save/load; offline and CPU-sized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from annotator.errors import TrainingError
from training.detectors.base import TrainingView, TrainSettings
from training.detectors.torchvision import ARCHS, TorchvisionDetector

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


def _photo(path: Path, rng: np.random.Generator, *, exif_rotated: bool = False) -> list[str]:
    """A 96x64 skin-coloured photo with one dark square; returns its YOLO label line(s)."""
    img = np.full((64, 96, 3), (224, 180, 160), dtype=np.uint8)
    x, y = int(rng.integers(5, 60)), int(rng.integers(5, 30))
    img[y : y + 24, x : x + 24] = (90, 60, 40)
    label = f"0 {(x + 12) / 96:.6f} {(y + 12) / 64:.6f} {24 / 96:.6f} {24 / 64:.6f}"
    pil = Image.fromarray(img)
    if exif_rotated:  # stored rotated; orientation 6 turns it back to the displayed 96x64
        exif = Image.Exif()
        exif[0x0112] = 6
        pil.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes())
    else:
        pil.save(path)
    return [label]


@pytest.fixture()
def tiny_view(tmp_path: Path) -> TrainingView:
    rng = np.random.default_rng(0)
    root = tmp_path / "view"
    images: dict[str, list[tuple[Path, str]]] = {}
    for split, count in (("train", 6), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        images[split] = []
        for i in range(count):
            photo = root / "images" / split / f"{split}{i}.jpg"
            lines = _photo(photo, rng, exif_rotated=(i == 0))
            (root / "labels" / split / f"{split}{i}.txt").write_text("\n".join(lines) + "\n")
            images[split].append((photo, f"{split}{i}.jpg"))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {list(CLASSES)}\n")
    return TrainingView(root=root, data_yaml=data_yaml, classes=CLASSES, images=images)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ssdlite", "fasterrcnn_mobilenet"])
def test_train_one_epoch_predict_and_round_trip(arch: str, tiny_view: TrainingView, tmp_path: Path):
    torch.manual_seed(0)
    det = TorchvisionDetector(CLASSES, arch)
    epochs_seen = []
    result = det.train(
        tiny_view,
        TrainSettings(epochs=1, imgsz=96, batch=3, workers=0, device="cpu"),
        tmp_path / "work",
        progress=lambda done, total: epochs_seen.append((done, total)),
    )
    assert epochs_seen == [(1, 1)]
    assert result.weights.exists() and result.epochs_run == 1 and result.train_seconds > 0
    assert np.isfinite(result.metrics["loss"])
    assert "val_map50" in result.metrics

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p, _ in tiny_view.images["val"]]
    big = np.asarray(Image.fromarray(arrays[1]).resize((192, 128)))  # a larger array: boxes in its own frame
    boxes = det.predict_arrays(arrays + [big], conf=0.0, imgsz=96)
    assert len(boxes) == 3
    for per_photo, arr in zip(boxes, arrays + [big], strict=True):
        for b in per_photo:
            assert b.label in CLASSES and 0.0 <= b.score <= 1.0
            assert -1 <= b.x1 <= b.x2 <= arr.shape[1] + 1 and -1 <= b.y1 <= b.y2 <= arr.shape[0] + 1

    saved = det.save(tmp_path / "model.pt")
    again = TorchvisionDetector.load(saved, CLASSES)
    assert again.arch == arch and again.parameter_count == det.parameter_count
    assert again.predict_arrays(arrays[:1], conf=0.0, imgsz=96) == det.predict_arrays(arrays[:1], conf=0.0, imgsz=96)


def test_training_photos_are_read_as_displayed_with_their_yolo_boxes(tiny_view: TrainingView):
    from training.detectors.torchvision import _ViewDataset

    link, _ = tiny_view.images["train"][0]  # stored rotated, EXIF orientation 6
    assert Image.open(link).size == (64, 96)
    image, target = _ViewDataset([tiny_view.images["train"][0]], CLASSES, side=192, augment=False)[0]
    assert tuple(image.shape) == (3, 128, 192)  # displayed 96x64, long side scaled to 192
    x1, y1, x2, y2 = target["boxes"][0].tolist()
    assert target["labels"].tolist() == [1]  # class 0 (sl) + 1: index 0 is background
    assert (x2 - x1, y2 - y1) == (pytest.approx(48, abs=0.01), pytest.approx(48, abs=0.01))
    patch = image[:, round(y1) + 4 : round(y2) - 4, round(x1) + 4 : round(x2) - 4]
    assert float(patch.mean()) < 0.4  # the dark square sits under its box


def test_validate_scores_a_split_with_pycocotools_over_the_classes_present(tiny_view: TrainingView, tmp_path: Path):
    result = TorchvisionDetector(CLASSES, "ssdlite").validate(tiny_view, "val", imgsz=96, batch=2, workdir=tmp_path)
    assert result["images"] == 2 and 0.0 <= result["map50"] <= 1.0 and 0.0 <= result["map50_95"] <= 1.0
    assert set(result["per_class"]) == {"sl"}  # the only class on the val photos


def test_validate_of_a_split_without_photos_is_empty(tiny_view: TrainingView, tmp_path: Path):
    detector = TorchvisionDetector(CLASSES, "ssdlite")
    assert detector.validate(tiny_view, "test", imgsz=96, batch=2, workdir=tmp_path) == {}


def test_every_architecture_builds_offline_from_random_weights():
    for arch in ARCHS:
        if arch in ("ssd300", "fasterrcnn_resnet50"):
            continue  # 24-41 M parameters: built by the benchmark, too slow to build twice here
        det = TorchvisionDetector(CLASSES, arch)
        assert det.parameter_count > 1_000_000


def test_local_model_weights_are_loaded_by_name(tmp_path: Path):
    det = TorchvisionDetector(CLASSES, "ssdlite")
    path = det.save(tmp_path / "a.pt")
    other = TorchvisionDetector(CLASSES, "ssdlite", weights=path)
    for (k, v), (_, w) in zip(det.model.state_dict().items(), other.model.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


def test_local_backbone_weights_are_loaded_in_order(tmp_path: Path):
    import torchvision

    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "mnv3.pth")
    det = TorchvisionDetector(CLASSES, "fasterrcnn_mobilenet", pretrained=tmp_path / "mnv3.pth")
    first = next(iter(det.model.backbone.body.state_dict().values()))
    assert torch.equal(first, classifier.state_dict()["features.0.0.weight"])


def test_missing_or_foreign_weights_are_one_clear_error(tmp_path: Path):
    with pytest.raises(TrainingError, match="not found"):
        TorchvisionDetector(CLASSES, "ssdlite", weights=tmp_path / "nope.pt")
    saved = TorchvisionDetector(CLASSES, "ssdlite").save(tmp_path / "s.pt")
    with pytest.raises(TrainingError, match="classes"):
        TorchvisionDetector.load(saved, ("a", "b"))
    with pytest.raises(TrainingError, match="unknown torchvision architecture"):
        TorchvisionDetector(CLASSES, "retinanet")


def test_registered_with_make_detector():
    from training.detectors import make_detector

    det = make_detector("ssdlite", CLASSES)
    assert isinstance(det, TorchvisionDetector) and det.arch == "ssdlite"


def test_reference_schedule_warms_up_through_the_first_epoch_then_steps_at_its_milestones():
    from training.detectors.torchvision import reference_factor

    rcnn, ssdlite = ARCHS["fasterrcnn_resnet50"].reference, ARCHS["ssdlite"].reference
    assert reference_factor(0, 10, 26, rcnn) == pytest.approx(0.001)  # engine.py: from 1/1000 ...
    assert reference_factor(9, 10, 26, rcnn) == 1.0  # ... to 1 over min(1000, iterations - 1)
    assert reference_factor(15 * 10, 10, 26, rcnn) == 1.0  # epochs 16 and 22 of 26 (0-based 16, 22) drop it x0.1
    assert reference_factor(16 * 10, 10, 26, rcnn) == pytest.approx(0.1)
    assert reference_factor(22 * 10, 10, 26, rcnn) == pytest.approx(0.01)
    assert reference_factor(8 * 10, 10, 13, rcnn) == pytest.approx(0.1)  # a budget-fitted run of 13: at 8 and 11
    assert reference_factor(5 * 10, 10, 10, ssdlite) == pytest.approx(0.5)  # cosine annealing, half-way


@pytest.mark.slow
def test_training_stops_for_patience_keeps_the_best_epoch_and_records_its_recipe(
    tiny_view: TrainingView, tmp_path: Path, monkeypatch
):
    """With patience, every epoch is validated: the run stops `patience` epochs after its best one, records why and
    its curve, and keeps that epoch's weights; the reference recipe's SGD rate is scaled to the batch."""
    from training.detectors.base import Recipe

    scores = iter([0.30, 0.40, 0.35, 0.20, 0.10])
    kept = {}

    def validate(self, view, split, **kwargs):
        score = next(scores)
        kept[score] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return {"map50": 2 * score, "map50_95": score, "per_class": {}, "images": 2}

    monkeypatch.setattr(TorchvisionDetector, "validate", validate)
    det = TorchvisionDetector(CLASSES, "fasterrcnn_mobilenet")
    settings = TrainSettings(epochs=5, imgsz=64, batch=3, workers=0, device="cpu", patience=2, recipe=Recipe.REFERENCE)
    result = det.train(tiny_view, settings, tmp_path / "work")
    assert result.stopping.reason == "patience" and result.epochs_run == 4 and result.stopping.best_epoch == 2
    assert result.stopping.curve_map50_95 == (0.30, 0.40, 0.35, 0.20)
    assert result.metrics["val_map50_95"] == 0.40
    assert all(torch.equal(v, kept[0.40][k]) for k, v in det.model.state_dict().items())
    applied = result.applied
    assert (applied["optimizer"], applied["recipe"], applied["patience"]) == ("SGD", "reference", 2)
    assert applied["lr"] == pytest.approx(0.02 * 3 / 16) and applied["input_side"] == 64
    assert applied["split"]["train"]["photos"] == 6
