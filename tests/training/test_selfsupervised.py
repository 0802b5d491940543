"""Self-supervised pretraining of the backbone: SimCLR on a few unlabelled photos writes the backbone's tensors
under the detector's names, which `pretrained=PATH` transfers into a detector; bad input is one clear error,
and the process's torch thread count is left as it was. Tiny: 6 photos of 64 px, one epoch, on the CPU."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from annotator.errors import TrainingError

pytest.importorskip("lightly")

from training.pretraining.selfsupervised import (  # noqa: E402  (after the importorskip)
    BackboneResult,
    SelfSupervisedSettings,
    backbone_layers,
    pretrain_backbone,
)

TINY = SelfSupervisedSettings(imgsz=64, epochs=1, batch=4, threads=1)


def _photos(folder: Path, count: int = 6) -> list[Path]:
    """Noise plus a filled ellipse and a rectangle: views of one photo share shapes, other photos differ."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        x, y = rng.integers(4, 36, 2)
        draw.ellipse((x, y, x + 20, y + 14), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw.rectangle((y, x, y + 10, x + 24), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        paths.append(folder / f"photo-{i}.jpg")
        image.save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[BackboneResult, dict[str, torch.Tensor]]:
    """One tiny run, shared by the tests that read its result and its file."""
    folder = tmp_path_factory.mktemp("ssl")
    epochs_done: list[tuple[int, int]] = []
    result = pretrain_backbone(
        _photos(folder), folder / "backbone.pt", settings=TINY, progress=lambda d, t: epochs_done.append((d, t))
    )
    assert epochs_done == [(1, 1)]
    return result, torch.load(result.path, map_location="cpu", weights_only=True)


def test_the_file_holds_the_backbones_tensors_under_the_detectors_names(pretrained):
    result, state = pretrained
    assert result.path.is_file() and result.tensors == len(state)
    assert result.layers == backbone_layers("yolo11n.yaml") == 11
    assert {name.split(".")[1] for name in state} == {str(i) for i in range(11)}  # model.0 .. model.10
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    assert result.to_dict()["path"] == str(result.path)


def test_one_epoch_gives_one_finite_loss(pretrained):
    result, _ = pretrained
    assert result.epochs == 1 and len(result.losses) == 1 and math.isfinite(result.losses[0])
    assert result.photos == 6


def test_training_changed_the_weights(pretrained):
    from ultralytics.nn.tasks import DetectionModel

    _, state = pretrained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY.seed)  # the run's starting point: the same seed builds the same network
        fresh = DetectionModel("yolo11n.yaml", nc=1, verbose=False).state_dict()
    assert not torch.equal(state["model.0.conv.weight"], fresh["model.0.conv.weight"])
    assert not torch.equal(state["model.10.cv2.conv.weight"], fresh["model.10.cv2.conv.weight"])
    assert not torch.equal(state["model.0.bn.running_mean"], fresh["model.0.bn.running_mean"])


def test_a_detector_takes_every_tensor_of_the_file(pretrained):
    from training.detectors.ultralytics import UltralyticsDetector

    result, state = pretrained
    detector = UltralyticsDetector(["a", "b"], "yolo11n.yaml", pretrained=result.path)
    assert detector.pretrained is not None and detector.pretrained.tensors == result.tensors
    assert torch.equal(detector.model.model.state_dict()["model.0.conv.weight"], state["model.0.conv.weight"])


def test_fewer_than_two_photos_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="at least 2 photos"):
        pretrain_backbone(_photos(tmp_path, 1), tmp_path / "out.pt", settings=TINY)


def test_an_unreadable_photo_is_named(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(TrainingError, match="broken.jpg"):
        pretrain_backbone([*_photos(tmp_path, 3), broken], tmp_path / "out.pt", settings=TINY)
    assert not (tmp_path / "out.pt").exists()


def test_the_torch_thread_count_is_left_as_it_was(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pretrain_backbone(_photos(tmp_path, 2), tmp_path / "out.pt", settings=TINY)  # TINY asks for 1 thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_backbone_that_branches_is_refused(tmp_path):
    """A layer fed by an earlier one besides its predecessor cannot run as a plain sequence of layers."""
    branchy = tmp_path / "branchy.yaml"
    branchy.write_text(
        "nc: 1\n"
        "backbone:\n"
        "  - [-1, 1, Conv, [16, 3, 2]]\n"
        "  - [-1, 1, Conv, [16, 3, 1]]\n"
        "  - [[-1, 0], 1, Concat, [1]]\n"
        "head:\n"
        "  - [[1], 1, Detect, [nc]]\n"
    )
    with pytest.raises(TrainingError, match="layer 2 .*sequential backbones only"):
        pretrain_backbone(_photos(tmp_path, 2), tmp_path / "out.pt", model=str(branchy), settings=TINY)
    assert backbone_layers(str(branchy)) == 3
