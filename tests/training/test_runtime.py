"""CPU inference through ONNX Runtime (training.detectors.runtime): the exported model finds PyTorch's boxes
(within 1 px, scores within 0.01) on a fixed set of photos; the export is made once, cached beside the weights,
made again when stale or damaged, never left half-written, and never installs anything; `[predict] backend`
chooses PyTorch or ONNX Runtime where the CPU predicts.

The model is yolo11n built from its YAML with a fixed seed, its batch-norm statistics measured on synthetic
photos and its class bias set so that scores spread over (0, 1) as a trained model's do (a freshly built head
scores every box the same, which would hide a wrong score or a swapped colour channel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.config import CONFIG_NAME, Config, load_config
from annotator.errors import ConfigError, TrainingError
from annotator.images import decode_displayed
from annotator.store import Workspace
from annotator.types import Box
from training.detectors import make_detector
from training.detectors import runtime as rt
from training.detectors.pretrained import sha256_of
from training.detectors.runtime import (
    AUTO_MIN_PHOTOS,
    RuntimePredictor,
    export_onnx,
    exported_path,
    prediction_detector,
)
from training.detectors.ultralytics import UltralyticsDetector

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")
IMGSZ = 320
CONF = 0.25
BOX_PX, SCORE = 1.0, 0.01  # what "the same boxes" means


def _calibrated_yolo(photos: Sequence[np.ndarray], root: Path) -> Path:
    """yolo11n for CLASSES from its YAML (seed 0), batch-norm statistics measured on `photos`, saved as a round
    saves its model.pt."""
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox

    torch.manual_seed(0)
    YOLO("yolo11n.yaml").save(str(root / "seed.pt"))
    detector = UltralyticsDetector(CLASSES, "yolo11n.yaml", pretrained=root / "seed.pt")  # a head for CLASSES
    network = detector.model.model
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    letterbox = LetterBox(IMGSZ, auto=False)
    batch = torch.from_numpy(np.stack([letterbox(image=a) for a in photos])).permute(0, 3, 1, 2).float() / 255
    network.train()
    with torch.no_grad():
        for i in range(0, len(batch), 4):
            network(batch[i : i + 4])
    network.eval()
    for branch in network.model[-1].cv3:  # the class branch of each scale
        torch.nn.init.constant_(branch[-1].bias, -4.0)
    return detector.save(root / "model.pt")


@pytest.fixture(scope="module", autouse=True)
def _two_torch_threads():
    """This module's networks are calibrated and compared at two torch threads, whatever count earlier tests left
    (Ultralytics' trainer and validator set the process's count to cpu_count - 1 as they start). At one thread the
    calibrated random network's PyTorch and ONNX Runtime boxes were seen to disagree on one photo: not explained yet."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos(synth_set) -> list[np.ndarray]:
    """Decoded synthetic photos of four shapes: landscape, portrait, narrow and a smaller one."""
    paths = sorted((synth_set(40, 0.5, 0) / "images").iterdir())
    decoded = [decode_displayed(p, IMGSZ)[0] for p in paths[:14]]
    return decoded[8:] + [
        np.ascontiguousarray(np.rot90(decoded[8])),
        np.ascontiguousarray(decoded[9][:, :200]),
        np.ascontiguousarray(decoded[10][::2, ::2]),
    ]


@pytest.fixture(scope="module")
def weights(synth_set, tmp_path_factory) -> Path:
    paths = sorted((synth_set(40, 0.5, 0) / "images").iterdir())
    calibration = [decode_displayed(p, IMGSZ)[0] for p in paths[:8]]
    return _calibrated_yolo(calibration, tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def pytorch(weights: Path) -> UltralyticsDetector:
    return UltralyticsDetector.load(weights, CLASSES)


@pytest.fixture(scope="module")
def onnx_runtime(pytorch: UltralyticsDetector, weights: Path) -> RuntimePredictor:
    return RuntimePredictor.from_weights(pytorch, weights)


def _unmatched(expected: Sequence[Box], got: Sequence[Box], conf: float) -> list[Box]:
    """Boxes of either list without a counterpart in the other (same class, every edge within BOX_PX, score within
    SCORE), each box used once. A box scored within SCORE of `conf` may lack one: its twin may sit below `conf`."""
    left = list(got)
    missing = []
    for box in sorted(expected, key=lambda b: -(b.score or 0.0)):
        twin = next(
            (
                b
                for b in left
                if b.label == box.label
                and abs((b.score or 0) - (box.score or 0)) <= SCORE
                and max(abs(b.x1 - box.x1), abs(b.y1 - box.y1), abs(b.x2 - box.x2), abs(b.y2 - box.y2)) <= BOX_PX
            ),
            None,
        )
        if twin is None:
            missing.append(box)
        else:
            left.remove(twin)
    return [b for b in missing + left if (b.score or 0.0) >= conf + SCORE]


def _one_by_one(detector, photos: Sequence[np.ndarray], conf: float = CONF) -> list[list[Box]]:
    return [detector.predict_arrays([p], conf=conf, imgsz=IMGSZ, device="cpu")[0] for p in photos]


def test_the_onnx_export_finds_pytorchs_boxes_on_every_photo(photos, pytorch, onnx_runtime):
    expected, got = _one_by_one(pytorch, photos), _one_by_one(onnx_runtime, photos)
    assert sum(map(len, expected)) >= 100  # enough boxes, of many scores, for the comparison to mean something
    assert len({round(b.score or 0, 3) for boxes in expected for b in boxes}) >= 50
    assert [_unmatched(e, g, CONF) for e, g in zip(expected, got, strict=True)] == [[] for _ in photos]


def test_photos_of_several_shapes_in_one_batch_get_the_boxes_each_gets_alone(photos, onnx_runtime):
    assert len({p.shape for p in photos}) >= 3
    together = onnx_runtime.predict_arrays(photos, conf=CONF, imgsz=IMGSZ, device="cpu")
    assert together == _one_by_one(onnx_runtime, photos)


def test_a_replica_has_its_own_session_and_finds_the_same_boxes(photos, onnx_runtime):
    twin = onnx_runtime.replicate()
    assert twin.session is not onnx_runtime.session
    assert _one_by_one(twin, photos[:3]) == _one_by_one(onnx_runtime, photos[:3])


def _own_copy(weights: Path, folder: Path) -> Path:
    folder.mkdir()
    return Path(shutil.copyfile(weights, folder / "model.pt"))


def test_the_export_is_cached_beside_the_weights_and_reused_while_they_are_unchanged(weights, onnx_runtime):
    cached = exported_path(weights)
    assert cached == weights.parent / "model.onnx" and cached.is_file()
    before = cached.stat()
    assert export_onnx(weights) == cached
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_damaged_export_is_made_again(weights, tmp_path, photos, onnx_runtime):
    own = _own_copy(weights, tmp_path / "round")
    shutil.copyfile(exported_path(weights), exported_path(own))
    with open(exported_path(own), "r+b") as f:
        f.truncate(exported_path(own).stat().st_size // 2)
    repaired = RuntimePredictor.from_weights(onnx_runtime.source, own)
    assert _one_by_one(repaired, photos[:2]) == _one_by_one(onnx_runtime, photos[:2])


def test_an_export_of_other_weights_is_made_again(weights, tmp_path):
    from ultralytics import YOLO

    other = YOLO(str(weights))
    with torch.no_grad():
        other.model.model[-1].cv3[0][-1].bias.add_(0.5)  # one scale's class scores
    own = tmp_path / "model.pt"
    other.save(str(own))
    shutil.copyfile(exported_path(weights), exported_path(own))  # the previous round's export, left beside it
    import onnx

    export_onnx(own)
    meta = {p.key: p.value for p in onnx.load(str(exported_path(own))).metadata_props}
    assert meta["annotator_source_sha256"] == sha256_of(own) != sha256_of(weights)


def test_a_failed_export_leaves_neither_a_file_nor_its_temporary_folder(weights, tmp_path, monkeypatch):
    own = _own_copy(weights, tmp_path / "round")

    def disagree(*_args) -> None:
        raise TrainingError("model.onnx: the export disagrees with PyTorch")

    monkeypatch.setattr(rt, "_check_against_torch", disagree)
    with pytest.raises(TrainingError, match="disagrees"):
        export_onnx(own)
    assert sorted(os.listdir(own.parent)) == ["model.pt"]


def test_exporting_runs_no_installer(weights, tmp_path, monkeypatch):
    own = _own_copy(weights, tmp_path / "round")
    started: list[object] = []

    def refuse(*args, **_kwargs):
        started.append(args[0] if args else None)
        raise AssertionError(f"a subprocess was started: {args[:1]}")

    for name in ("Popen", "run", "check_output", "check_call", "call"):
        monkeypatch.setattr(subprocess, name, refuse)
    export_onnx(own)
    import ultralytics.utils.checks as checks

    assert started == [] and checks.AUTOINSTALL is False and exported_path(own).is_file()


def test_backend_torch_keeps_pytorch_on_the_cpu(pytorch, weights):
    assert prediction_detector(pytorch, weights, backend="torch", device="cpu") == (pytorch, "torch")


def test_auto_and_onnx_use_onnx_runtime_where_the_cpu_predicts(pytorch, weights, onnx_runtime):
    for backend in ("auto", "onnx"):
        chosen, note = prediction_detector(pytorch, weights, backend=backend, device="cpu", photos=AUTO_MIN_PHOTOS)
        assert isinstance(chosen, RuntimePredictor) and note == "onnxruntime" and chosen.source is pytorch


def test_a_gpu_keeps_pytorch(pytorch, weights):
    assert prediction_detector(pytorch, weights, backend="auto", device="0")[0] is pytorch


def test_auto_keeps_pytorch_for_a_few_photos_unless_the_export_is_cached(pytorch, weights, tmp_path, onnx_runtime):
    own = _own_copy(weights, tmp_path / "round")
    chosen, note = prediction_detector(pytorch, own, backend="auto", device="cpu", photos=AUTO_MIN_PHOTOS - 1)
    assert chosen is pytorch and "fewer than" in note and not exported_path(own).exists()
    chosen, _ = prediction_detector(pytorch, weights, backend="auto", device="cpu", photos=1)  # cached already
    assert isinstance(chosen, RuntimePredictor)


def test_a_family_onnx_runtime_does_not_run_stays_on_pytorch_under_auto_and_is_refused_under_onnx(tmp_path):
    ssd = make_detector("ssdlite", CLASSES)
    weights = ssd.save(tmp_path / "model.pt")
    assert prediction_detector(ssd, weights, backend="auto", device="cpu", photos=10_000) == (ssd, "torch")
    with pytest.raises(TrainingError, match="backend"):
        prediction_detector(ssd, weights, backend="onnx", device="cpu")


def _workspace_with(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    ws.close()
    config = tmp_path / "ws" / CONFIG_NAME
    config.write_text(edit(config.read_text()))
    return tmp_path / "ws"


def test_the_backend_is_read_from_annotator_toml(tmp_path):
    root = _workspace_with(tmp_path, lambda text: text.replace('backend = "auto"', 'backend = "torch"'))
    assert load_config(root).predict_backend == "torch"


def test_an_unknown_backend_in_annotator_toml_is_refused_with_the_choices(tmp_path):
    root = _workspace_with(tmp_path, lambda text: text.replace('backend = "auto"', 'backend = "tensorrt"'))
    with pytest.raises(ConfigError, match="auto, torch, onnx"):
        load_config(root)
