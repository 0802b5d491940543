"""The review metadata of a reviewed label version: one typed record, stored as the same dict, key for
key and in the same order, as pull and double review have always written it; old and partial rows load."""

from __future__ import annotations

import json

from annotator.types import Box
from review_queue.corrections import diff_regions
from review_queue.edits import EditKind
from review_queue.labelstudio.convert import BoxFix
from review_queue.review_meta import Adjudication, ReviewMeta, Settled, SettleKind

PREDICTED = [("a", Box("mel", 0, 0, 10, 10)), ("b", Box("ota", 20, 20, 30, 30))]
REVIEWED = [("a", Box("mel", 0, 0, 10, 10.3)), ("y", Box("sl", 80, 80, 90, 90))]
OPS = tuple(diff_regions(PREDICTED, REVIEWED))


def _pulled(**changes) -> ReviewMeta:
    fields = dict(
        project_id=1,
        task_id=7,
        annotation_id=70,
        lead_time=12.5,
        created_at="2026-01-01T10:00:00Z",
        updated_at="2026-01-01T10:00:12Z",
        parent_prediction=None,
        prediction_version_id=3,
        operations=OPS,
        simulated=True,
    )
    return ReviewMeta(**{**fields, **changes})


def _stored(meta: ReviewMeta) -> dict:
    """What the workspace store keeps: the JSON text of `to_dict`, read back."""
    return json.loads(json.dumps(meta.to_dict()))


def test_a_pulled_review_is_stored_as_pull_has_always_written_it():
    stored = _stored(_pulled())
    assert list(stored) == [
        "project_id",
        "task_id",
        "annotation_id",
        "lead_time",
        "created_at",
        "updated_at",
        "parent_prediction",
        "prediction_version_id",
        "edits",
        "operations",
        "simulated",
    ]
    assert stored["parent_prediction"] is None, "a key pull writes stays written when null"
    assert stored["edits"] == {"accepted": 1, "moved": 0, "relabelled": 0, "deleted": 1, "added": 1, "predicted": 2}
    assert stored["operations"] == [op.to_dict() for op in OPS]


def test_notes_come_last_and_only_when_there_are_any():
    fix = BoxFix("far", "outside-photo", "clipped", "clipped 3 px", 3.04)
    stored = _stored(_pulled(exclude_reasons=("blurred",), box_fixes=(fix,), operations=None, conflict="two labels"))
    assert list(stored)[-4:] == ["simulated", "exclude_reasons", "box_fixes", "conflict"]
    assert "operations" not in stored and "edits" not in stored  # a conflict's review keeps no edit diff
    assert stored["box_fixes"] == [fix.to_dict()]


def test_a_settled_double_review_is_stored_in_its_own_order():
    adjudication = Adjudication("adj@example.org", 9, 90, 900, None)
    meta = ReviewMeta(
        project_id=1,
        prediction_version_id=3,
        updated_at="2026-01-02T00:00:00Z",
        lead_time=40.0,
        simulated=False,
        operations=OPS,
        settled=Settled(SettleKind.ADJUDICATED, (11, 12), ("a@x", "b@x"), 0.5, adjudication),
    )
    stored = _stored(meta)
    assert list(stored) == [
        "double_review",
        "reviews",
        "reviewers",
        "project_id",
        "prediction_version_id",
        "updated_at",
        "lead_time",
        "simulated",
        "agreement_f1",
        "adjudicator",
        "adjudication_project_id",
        "adjudication_task_id",
        "adjudication_annotation_id",
        "adjudication_lead_time",
        "operations",
        "edits",
    ]
    assert (stored["double_review"], stored["reviews"]) == ("adjudicated", [11, 12])
    assert stored["adjudication_lead_time"] is None
    merged = _stored(ReviewMeta(settled=Settled(SettleKind.MERGED, (11, 12), ("a@x", "b@x"), 1.0)))
    assert "adjudicator" not in merged and "operations" not in merged


def test_every_stored_meta_reads_back_to_the_same_dict():
    fix = BoxFix("far", "outside-photo", "clipped", "clipped 3 px", 3.04)
    settled = Settled(SettleKind.ADJUDICATED, (11, 12), ("a@x", "b@x"), 0.5, Adjudication("adj", 9, 90, 900, 8.0))
    for meta in (
        _pulled(),
        _pulled(exclude_reasons=("blurred",), box_fixes=(fix,), operations=None, conflict="two labels"),
        ReviewMeta(project_id=1, lead_time=3.0, operations=OPS, settled=settled),
    ):
        stored = _stored(meta)
        assert json.dumps(ReviewMeta.from_dict(stored).to_dict()) == json.dumps(stored)


def test_old_and_partial_rows_load():
    meta = ReviewMeta.from_dict({"operations": [{"op": "accepted"}, {"op": "added", "new_label": "fre"}]})
    assert [op.kind for op in meta.operations or ()] == [EditKind.ACCEPTED, EditKind.ADDED]
    assert meta.operations is not None and meta.operations[1].box_class == "fre"
    empty = ReviewMeta.from_dict({})
    assert (empty.operations, empty.annotation_id, empty.settled, empty.simulated) == (None, None, None, False)
