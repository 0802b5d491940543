"""Rounds: retrain's preconditions, finalize's threshold rule, the learning curve's arithmetic."""

from __future__ import annotations

import json

import pytest

from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.rounds import Stage
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.finalize import finalize, recommend_threshold
from bootstrap.rounds import plan_round
from review_queue.corrections import correction_summary


def _workspace(tmp_path, photos: int = 6) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for i in range(photos):
        ws.store.add_image(ImageRecord(path=f"p{i}.jpg", sha256=str(i), width=100, height=100))
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
    ws.store.upsert_round(0, 0, stage=Stage.TRAINED)
    assert plan_round(ws, 1) == 0
    ws.store.upsert_round(1, 0, stage=Stage.PREDICTED)
    assert plan_round(ws, 1) == 0, "an unfinished round resumes"
    ws.store.upsert_round(1, 0, stage=Stage.DONE)
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


def test_recommended_threshold_keeps_expected_wrong_boxes_under_two_percent_of_the_set():
    assert recommend_threshold(remaining_boxes=100, human_boxes=900) == pytest.approx(0.2)
    assert recommend_threshold(remaining_boxes=0, human_boxes=10) == 1.0


def test_finalize_refuses_with_the_figures_when_reviewers_still_correct_too_much(tmp_path):
    ws = _workspace(tmp_path)
    ws.store.add_label_version(_reviewed("p0.jpg", [{"op": "deleted", "label": "mel"}]))
    ws.store.add_label_version(_model("p1.jpg"))
    with pytest.raises(WorkspaceError, match=r"corrected 100\.0% of round 0's boxes.*threshold 5\.0%"):
        finalize(ws, threshold=0.05)
    assert ws.store.current_label("p1.jpg").source is Source.MODEL
    ws.close()


def test_finalize_accepts_the_rest_with_provenance_and_exports_three_formats(tmp_path):
    ws = _workspace(tmp_path)
    for i in range(3):
        ws.store.add_label_version(_reviewed(f"p{i}.jpg", [{"op": "accepted", "label": "mel"}]))
    ws.store.add_label_version(_model("p3.jpg"))
    ws.store.add_label_version(_model("p4.jpg"))
    result = finalize(ws, threshold=0.05)
    assert result.auto_accepted == 2 and result.correction_rate == 0.0
    accepted = ws.store.current_label("p3.jpg")
    assert accepted.source is Source.AUTO_ACCEPTED and accepted.meta["accepted_from_version"]
    assert [v.source for v in ws.store.history("p3.jpg")] == [Source.MODEL, Source.AUTO_ACCEPTED]
    coco = json.loads((ws.root / "export" / "coco" / "annotations.json").read_text())
    assert len(coco["images"]) == 5
    assert (ws.root / "export" / "voc" / "Annotations" / "p3.xml").exists()
    assert (ws.root / "export" / "yolo" / "labels" / "p4.txt").read_text().startswith("3 ")
    ws.close()
