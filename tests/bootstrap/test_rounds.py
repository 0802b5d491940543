"""Rounds: retrain's preconditions, the correction statistic, the learning curve's arithmetic."""

from __future__ import annotations

import pytest

from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.rounds import Stage
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.rounds import plan_round
from review_queue.corrections import correction_summary


def _workspace(tmp_path, photos: int = 6) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for i in range(photos):
        ws.store.labels.add_image(ImageRecord(path=f"p{i}.jpg", sha256=str(i), width=100, height=100))
    return ws


def _reviewed(path: str, ops: list[dict], boxes=(Box("mel", 0, 0, 10, 10),), lead: float = 12.0) -> LabelVersion:
    return LabelVersion(
        image_path=path,
        source=Source.REVIEWED,
        boxes=tuple(boxes),
        round=0,
        model_version="round-000",
        reviewer="derm@example.org",
        meta={"operations": ops, "lead_time": lead},
    )


def _model(path: str) -> LabelVersion:
    return LabelVersion(
        image_path=path,
        source=Source.MODEL,
        boxes=(Box("caf", 5, 5, 20, 20, score=0.8),),
        round=0,
        model_version="round-000",
        uncertainty=0.2,
    )


def test_retrain_needs_the_previous_round_and_refuses_a_finished_one_unless_forced(tmp_path):
    ws = _workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="annotator bootstrap"):
        plan_round(ws, 1)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.TRAINED)
    assert plan_round(ws, 1) == 0
    ws.store.rounds.upsert_round(1, 0, stage=Stage.PREDICTED)
    assert plan_round(ws, 1) == 0, "an unfinished round resumes"
    ws.store.rounds.upsert_round(1, 0, stage=Stage.DONE)
    with pytest.raises(WorkspaceError, match="--force"):
        plan_round(ws, 1)
    assert plan_round(ws, 1, force=True) == 1, "a new attempt; the old one stays"
    ws.close()


def test_review_summary_counts_changed_boxes_per_class_and_times():
    accepted = {"op": "accepted", "label": "mel"}
    moved = {"op": "moved", "label": "mel"}
    deleted = {"op": "deleted", "label": "sl"}
    added = {"op": "added", "label": None}
    summary = correction_summary([_reviewed("a", [accepted, moved]), _reviewed("b", [deleted, added], lead=30.0)])
    assert summary.correction_rate == pytest.approx((2 + 1) / (3 + 1))  # moved, deleted + the added miss
    assert summary.correction_rate_per_class == {"?": 1.0, "mel": 0.5, "sl": 1.0}  # the added box has no class here
    assert summary.added_per_photo == 0.5
    assert summary.operations_per_photo == 1.5  # moved, deleted, added over 2 photos
    assert summary.lead_time_seconds == 42.0
    assert summary.reviewed_boxes == 2  # what drawing from scratch would take (the curve's scratch operations)
