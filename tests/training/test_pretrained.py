"""Pretrained starting weights: a local checkpoint's tensors are transferred into the new model by name and
shape (Ultralytics detection or classification weights; a torchvision backbone), counted, and recorded with
the file's name and sha256. Nothing is downloaded; a missing or unfitting file is one clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from annotator.errors import TrainingError
from training.detectors import make_detector
from training.detectors.torchvision import TorchvisionDetector
from training.detectors.ultralytics import UltralyticsDetector

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


def _perturbed(module: torch.nn.Module) -> None:
    """Weights no fresh build has, so a transferred tensor is recognisable."""
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.add_(0.01 * (i + 1))


@pytest.fixture(scope="module")
def detection_checkpoint(tmp_path_factory) -> Path:
    """A yolo11n for the 80 classes of its YAML, weights perturbed, saved as Ultralytics does."""
    from ultralytics import YOLO

    source = YOLO("yolo11n.yaml")
    _perturbed(source.model)
    path = tmp_path_factory.mktemp("ckpt") / "yolo11n-perturbed.pt"
    source.save(str(path))
    return path


def _checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    from ultralytics.nn.tasks import load_checkpoint

    network, _ = load_checkpoint(str(path))
    return network.float().state_dict()


def test_detection_weights_are_transferred_into_the_model_built_from_the_yaml(detection_checkpoint: Path):
    detector = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=detection_checkpoint)
    source = _checkpoint_tensors(detection_checkpoint)
    own = detector.model.model.state_dict()
    same = [k for k in own if k in source and own[k].shape == source[k].shape and torch.equal(own[k], source[k])]
    assert detector.pretrained is not None and detector.pretrained.tensors > 0
    assert len(same) == detector.pretrained.tensors  # every tensor counted is the checkpoint's own
    assert detector.pretrained.checkpoint_tensors == len(source) > detector.pretrained.tensors  # 80-class head left


def test_the_class_head_is_built_for_the_workspaces_classes_not_the_checkpoints(detection_checkpoint: Path):
    detector = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=detection_checkpoint)
    assert detector.model.model.model[-1].nc == len(CLASSES)  # the Detect head
    assert detector.model.model.names == dict(enumerate(CLASSES))


def test_the_provenance_names_the_file_and_its_sha256(detection_checkpoint: Path):
    record = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=detection_checkpoint).pretrained
    assert record is not None
    assert record.name == "yolo11n-perturbed.pt"
    assert record.sha256 == hashlib.sha256(detection_checkpoint.read_bytes()).hexdigest()
    assert record.to_dict()["tensors"] == record.tensors


def test_classification_weights_fill_the_backbone(tmp_path: Path):
    from ultralytics import YOLO

    classifier = YOLO("yolo11n-cls.yaml")
    _perturbed(classifier.model)
    classifier.save(str(tmp_path / "yolo11n-cls.pt"))
    detector = make_detector("yolo11n", CLASSES, pretrained=tmp_path / "yolo11n-cls.pt")
    source = _checkpoint_tensors(tmp_path / "yolo11n-cls.pt")
    own = detector.model.model.state_dict()
    assert detector.pretrained is not None and detector.pretrained.tensors > 100
    assert torch.equal(own["model.0.conv.weight"], source["model.0.conv.weight"])  # the stem
    assert torch.equal(own["model.8.cv2.conv.weight"], source["model.8.cv2.conv.weight"])  # the last shared stage


def test_a_plain_state_dict_is_read_without_unpickling_objects(tmp_path: Path, detection_checkpoint: Path):
    torch.save(_checkpoint_tensors(detection_checkpoint), tmp_path / "tensors.pt")
    from_tensors = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=tmp_path / "tensors.pt").pretrained
    from_checkpoint = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=detection_checkpoint).pretrained
    assert from_tensors is not None and from_checkpoint is not None
    assert from_tensors.tensors == from_checkpoint.tensors


def test_a_missing_checkpoint_is_one_clear_error_and_nothing_is_downloaded(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingError, match=r"yolo11n\.pt: pretrained checkpoint not found.*nothing is downloaded"):
        UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained="yolo11n.pt")
    assert not (tmp_path / "yolo11n.pt").exists()


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path: Path):
    torch.save({"encoder.layer.0.weight": torch.ones(7, 3)}, tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="no tensor of this checkpoint fits the model"):
        UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=tmp_path / "other.pt")


def test_pretrained_weights_are_refused_on_top_of_trained_weights(tmp_path: Path, detection_checkpoint: Path):
    trained = UltralyticsDetector(CLASSES, "yolo11n.yaml").save(tmp_path / "model.pt")
    with pytest.raises(TrainingError, match="already trained weights"):
        UltralyticsDetector(CLASSES, str(trained), pretrained=detection_checkpoint)


def test_a_torchvision_backbone_takes_an_imagenet_classifiers_weights(tmp_path: Path):
    import torchvision

    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    _perturbed(classifier)
    torch.save(classifier.state_dict(), tmp_path / "mobilenet_v3_large.pth")
    detector = make_detector("ssdlite", CLASSES, pretrained=tmp_path / "mobilenet_v3_large.pth")
    assert isinstance(detector, TorchvisionDetector) and detector.pretrained is not None
    assert detector.pretrained.tensors > 200 and detector.pretrained.name == "mobilenet_v3_large.pth"
    backbone = detector.model.backbone.state_dict()
    assert torch.equal(next(iter(backbone.values())), classifier.state_dict()["features.0.0.weight"])


def test_a_torchvision_model_started_from_a_backbone_file_reloads_as_saved(tmp_path: Path):
    import torchvision

    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), tmp_path / "mnv3.pth")
    detector = TorchvisionDetector(CLASSES, "ssdlite", pretrained=tmp_path / "mnv3.pth")
    again = TorchvisionDetector.load(detector.save(tmp_path / "model.pt"), CLASSES)
    for (k, v), w in zip(detector.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
