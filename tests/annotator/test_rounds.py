"""annotator.rounds: the round record reads and writes the JSON a round row has always held, and old rows load."""

from __future__ import annotations

import json

import pytest

from annotator.config import Config
from annotator.rounds import RoundRecord, Stage, TrainedRound, stage_reached
from annotator.store import Workspace

TRAINED = TrainedRound(
    model="yolo11n.yaml",
    epochs=60,
    imgsz=640,
    pretrained={"name": "start.pt", "sha256": "ab", "tensors": 3},
    warm_start=None,
    thresholds={"mel": 0.3},
    threshold_choices={"mel": {"threshold": 0.3, "f1": 0.8}},
    calibration={"pooled": [1.0, 0.0], "per_class": {}, "boxes": 12},
    val={"map50": 0.5},
    test={"map50": 0.4, "images": 9, "per_class": {}},
    train_seconds=12.5,
    images={"train": 20, "val": 5, "test": 9},
    backend="torch",
)
# The row's JSON columns as train_round, record_test_split, predict_round and the push wrote them before the record.
STORED_METRICS = {
    "val": {"map50": 0.5},
    "test": {"map50": 0.4, "images": 9, "per_class": {}},
    "train_seconds": 12.5,
    "images": {"train": 20, "val": 5, "test": 9},
    "thresholds": {"mel": {"threshold": 0.3, "f1": 0.8}},
    "calibration": {"pooled": [1.0, 0.0], "per_class": {}, "boxes": 12},
    "backend": "torch",
    "test_split": {"photos": 9, "map50": 0.41},
}
STORED_INFO = {
    "model": "yolo11n.yaml",
    "epochs": 60,
    "imgsz": 640,
    "pretrained": {"name": "start.pt", "sha256": "ab", "tensors": 3},
    "warm_start": None,
    "thresholds": {"mel": 0.3},
    "calibration": {"pooled": [1.0, 0.0], "per_class": {}, "boxes": 12},
    "preannotate": {"photos": 4, "predicted": 4, "backend": "torch"},
    "push": {"created": 4, "replaced": 0},
}


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "images").mkdir()
    with Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images")) as ws:
        yield ws


def _stored(ws: Workspace, round_no: int, attempt: int = 0) -> dict:
    row = ws.store.conn.execute("SELECT * FROM rounds WHERE round=? AND attempt=?", (round_no, attempt)).fetchone()
    return dict(row)


def _run_stages(ws: Workspace) -> None:
    ws.store.rounds.upsert_round(0, 0, stage=Stage.STARTED, model_version="round-000")
    ws.store.rounds.upsert_round(0, 0, stage=Stage.TRAINED, model_path="/ws/rounds/000/model.pt", trained=TRAINED)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.TRAINED, test_split={"photos": 9, "map50": 0.41})
    ws.store.rounds.upsert_round(
        0, 0, stage=Stage.PREDICTED, preannotate={"photos": 4, "predicted": 4, "backend": "torch"}
    )
    ws.store.rounds.upsert_round(0, 0, stage=Stage.PUSHED, push={"created": 4, "replaced": 0})
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE)


def test_a_round_recorded_stage_by_stage_stores_the_json_it_always_did(ws):
    _run_stages(ws)
    stored = _stored(ws, 0)
    assert (stored["stage"], stored["model_path"], stored["model_version"]) == (
        "done",
        "/ws/rounds/000/model.pt",
        "round-000",
    )
    metrics, info = json.loads(stored["metrics"]), json.loads(stored["info"])
    assert metrics == STORED_METRICS and list(metrics) == list(STORED_METRICS), "same keys, same order"
    assert info == STORED_INFO and list(info) == list(STORED_INFO)


def test_the_record_reads_every_stage_and_writes_the_row_back_unchanged(ws):
    _run_stages(ws)
    record = ws.store.rounds.round_record(0)
    assert record is not None
    assert (record.round_no, record.attempt, record.stage) == (0, 0, Stage.DONE)
    assert record.trained == TRAINED
    assert (record.thresholds, record.calibration, record.predicted_photos) == (
        {"mel": 0.3},
        TRAINED.calibration,
        4,
    )
    assert record.push == {"created": 4, "replaced": 0}
    stored = _stored(ws, 0)
    assert record.to_dict() == {**stored, "metrics": json.loads(stored["metrics"]), "info": json.loads(stored["info"])}
    assert RoundRecord.from_row(record.to_dict()) == record


def test_a_row_from_before_thresholds_and_calibration_loads(ws):
    ws.store.conn.execute(
        "INSERT INTO rounds(round, attempt, stage, model_path, model_version, metrics, info, created_at, updated_at) "
        "VALUES(0, 0, 'done', 'm.pt', 'round-000', ?, ?, 't0', 't1')",
        (json.dumps({"val": {}, "test": {"map50": 0.2}}), json.dumps({"model": "yolo11n.yaml", "epochs": 5})),
    )
    record = ws.store.rounds.round_record(0)
    assert record is not None and record.trained is not None
    assert record.trained.test == {"map50": 0.2} and record.trained.imgsz is None
    assert record.thresholds == {} and record.calibration is None
    assert not record.trained.calibration_recorded, "trained before rounds fitted a calibration"
    assert "calibration" not in record.metrics() and "calibration" not in record.info()
    assert (record.test_split, record.preannotate, record.push, record.predicted_photos) == (None, None, None, None)


def test_a_round_only_started_has_nothing_trained(ws):
    ws.store.rounds.upsert_round(2, 0, stage=Stage.STARTED, model_version="round-002")
    record = ws.store.rounds.round_record(2)
    assert record is not None and record.trained is None and record.thresholds == {}
    assert (record.metrics(), record.info()) == ({}, {})


def test_stages_are_ordered_and_a_missing_round_reached_none():
    assert [s.order for s in Stage] == [0, 1, 2, 3, 4]
    record = RoundRecord(1, 0, Stage.PREDICTED)
    assert stage_reached(record, Stage.TRAINED) and stage_reached(record, Stage.PREDICTED)
    assert not stage_reached(record, Stage.PUSHED)
    assert not stage_reached(None, Stage.STARTED)


def test_rounds_lists_the_latest_attempt_of_each_round_in_order(ws):
    ws.store.rounds.upsert_round(1, 0, stage=Stage.DONE)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE)
    ws.store.rounds.upsert_round(1, 1, stage=Stage.TRAINED)
    assert [(r.round_no, r.attempt, r.stage) for r in ws.store.rounds.rounds()] == [
        (0, 0, Stage.DONE),
        (1, 1, Stage.TRAINED),
    ]
    assert ws.store.rounds.round_record(1, 0).stage is Stage.DONE
    assert ws.store.rounds.round_record(3) is None
