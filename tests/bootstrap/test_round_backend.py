"""A trained round predicts with one detector, chosen once by `prediction_detector`: the val thresholds, the test-split
figures and pre-annotation all come from it, and the round records (and its report shows) which backend that was."""

from __future__ import annotations

import pytest

from bootstrap.rounds import RoundSettings, run_round
from bootstrap.uncertainty import fit_score_calibration
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.runtime import RUNTIME, RuntimePredictor, exported_path
from training.thresholds import choose_thresholds, predict_split

TINY_CPU = RoundSettings(model="yolo11n.yaml", epochs=1, imgsz=64, batch=8, device="cpu")


@pytest.mark.slow
def test_with_the_onnx_backend_a_round_chooses_thresholds_and_evaluates_on_onnx_runtime(make_workspace, tmp_path):
    ws = make_workspace(images=20, labelled=0.5, seed=4, predict_backend="onnx")

    run_round(ws, 0, TINY_CPU)

    record = ws.store.rounds.round_record(0)
    assert record is not None and record.trained is not None and record.test_split and record.preannotate
    assert record.trained.backend == RUNTIME, "the val thresholds were chosen on ONNX Runtime's scores"
    assert record.test_split["backend"] == RUNTIME, "the test split was predicted by ONNX Runtime"
    assert record.preannotate["backend"] == RUNTIME
    assert f"predicted with {RUNTIME}" in (ws.round_dir(0) / "report.html").read_text()

    weights = ws.round_dir(0) / "model.pt"
    assert exported_path(weights).is_file()
    manifest = ws.store.rounds.manifest(0, 0)
    view = build_training_view(
        ws, tmp_path / "view", {p: s for p, _, s in manifest}, {p: ws.store.labels.version(v) for p, v, _ in manifest}
    )
    runtime = RuntimePredictor.from_weights(make_detector(str(weights), ws.config.classes), weights)
    val = predict_split(runtime, view, imgsz=TINY_CPU.imgsz, batch=TINY_CPU.batch, device="cpu")
    expected = choose_thresholds(val.truth, val.pred, ws.config.classes, default=ws.config.default_threshold)
    assert record.trained.threshold_choices == {c: t.to_dict() for c, t in expected.items()}
    calibration = fit_score_calibration(val.truth, val.pred, ws.config.classes, val.frames)  # on the same boxes
    assert record.trained.calibration == (calibration.to_dict() if calibration else None)
    ws.close()
