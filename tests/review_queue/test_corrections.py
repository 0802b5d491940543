"""The server-neutral edit diff and the one correction statistic: what counts as a correction
(changed predicted boxes and missed lesions, one IoU rule for "changed"), per class, which photos
are left out, and that review status and the learning curve agree."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator.classes import CLASS_NAMES
from annotator.config import Config
from annotator.rounds import Stage
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.curve import learning_curve
from review_queue.constants import ACCEPT_IOU
from review_queue.corrections import correction_summary, diff_regions
from review_queue.edits import EditKind, EditOp, count_edits
from review_queue.effort import LOOK_S, draw_seconds
from review_queue.status import review_status


def _op(kind: str, label: str | None, new_label: str | None = None) -> dict:
    """An operation as pull stores it in `meta["operations"]`."""
    out: dict = {"op": kind, "region": "r", "label": label}
    if new_label is not None:
        out["new_label"] = new_label
    if kind == "added":
        out["after"] = [0.0, 0.0, 10.0, 10.0]
    return out


def _reviewed(
    path: str,
    ops: list[dict],
    *,
    boxes: tuple[Box, ...] = (Box("mel", 0, 0, 10, 10),),
    lead: float | None = 10.0,
    excluded: bool = False,
    round_no: int = 0,
) -> LabelVersion:
    return LabelVersion(
        image_path=path,
        source=Source.REVIEWED,
        boxes=boxes,
        round=round_no,
        model_version=f"round-{round_no:03d}",
        reviewer="derm@example.org",
        excluded=excluded,
        meta={"operations": ops, "lead_time": lead},
    )


# ---- the edit diff ---------------------------------------------------------------------------


def test_diff_names_every_edit():
    predicted = [
        ("a", Box("mel", 0, 0, 10, 10)),
        ("b", Box("fre", 20, 20, 30, 30)),
        ("c", Box("caf", 40, 40, 50, 50)),
        ("d", Box("ota", 60, 60, 70, 70)),
    ]
    reviewed = [
        ("a", Box("mel", 0, 0, 10, 10.3)),  # same id, IoU 0.97: accepted
        ("b", Box("fre", 22, 21, 32, 31)),  # same id, IoU 0.56: moved
        ("x", Box("sl", 40, 40, 50, 56)),  # new id but on c (IoU 0.63): relabelled and moved
        ("y", Box("hori", 80, 80, 90, 90)),
    ]  # nothing there before: added
    ops = diff_regions(predicted, reviewed)
    kinds = {op.region: op.kind for op in ops}
    assert kinds == {"a": "accepted", "b": "moved", "c": "relabelled", "d": "deleted", "y": "added"}
    relabel = next(op for op in ops if op.kind == "relabelled")
    assert (relabel.label, relabel.new_label, relabel.moved) == ("caf", "sl", True)
    assert count_edits(ops) == {"accepted": 1, "moved": 1, "relabelled": 1, "deleted": 1, "added": 1, "predicted": 4}
    assert count_edits(op.as_stored() for op in ops) == count_edits(ops)


@st.composite
def _box(draw) -> Box:
    x1 = draw(st.floats(0, 5000, allow_nan=False))
    y1 = draw(st.floats(0, 5000, allow_nan=False))
    return Box(draw(st.sampled_from(CLASS_NAMES)), x1, y1, x1 + draw(st.floats(1, 1000)), y1 + draw(st.floats(1, 1000)))


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(_box(), max_size=6))
def test_diff_of_an_untouched_prediction_is_all_accepted(boxes):
    regions = [(f"r{i}", b) for i, b in enumerate(boxes)]
    assert all(op.kind is EditKind.ACCEPTED for op in diff_regions(regions, regions))


def test_an_edit_is_stored_as_its_plain_kind_name():
    op = EditOp(EditKind.RELABELLED, "r1", "caf", "sl", 0.8, True, (0, 0, 10, 10), (1, 1, 11, 11))
    stored = json.loads(json.dumps(op.to_dict()))
    assert stored["op"] == "relabelled" and EditKind.parse(stored["op"]) is EditKind.RELABELLED
    assert stored["moved"] is True and stored["new_label"] == "sl"


def test_the_stored_form_leaves_out_what_is_implied_and_reads_back_whole():
    kept = EditOp(EditKind.ACCEPTED, "a", "mel", "mel", 0.91234, False, (0, 0, 10, 10), (0, 0, 10, 10))
    assert kept.to_dict() == {"op": "accepted", "region": "a", "label": "mel", "iou": 0.9123, "before": [0, 0, 10, 10]}
    predicted = [("a", Box("mel", 0, 0, 10, 10)), ("b", Box("fre", 20, 20, 30, 30)), ("c", Box("caf", 40, 40, 50, 50))]
    reviewed = [
        ("a", Box("mel", 0.004, 0, 10, 10.3)),
        ("b", Box("fre", 22, 21, 32, 31)),
        ("y", Box("sl", 80, 80, 90, 90)),
    ]
    for op in diff_regions(predicted, reviewed):
        stored = json.loads(json.dumps(op.to_dict()))
        assert EditOp.from_dict(stored).to_dict() == stored, "byte for byte"
        assert EditOp.from_dict(stored) == op.as_stored()
        assert (EditOp.from_dict(stored).kind, EditOp.from_dict(stored).moved) == (op.kind, op.moved)


def test_an_unknown_edit_kind_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: accepted, moved, relabelled, deleted, added"):
        EditOp.from_dict({"op": "nudged"})


def test_the_simulated_reviewers_words_are_the_edit_kinds():
    assert [k.action for k in EditKind] == ["verify", "adjust", "relabel", "delete", "draw"]


def test_corrections_are_moved_relabelled_and_deleted_boxes():
    assert {k.value for k in EditKind if k.corrects} == {"moved", "relabelled", "deleted"}
    assert {k.value for k in EditKind if not k.on_prediction} == {"added"}


# ---- the correction statistic ------------------------------------------------------------------


def test_correction_rate_counts_changed_predicted_boxes_and_missed_lesions():
    summary = correction_summary(
        [
            _reviewed("a", [_op("accepted", "mel"), _op("moved", "mel")]),
            _reviewed("b", [_op("deleted", "sl"), _op("added", None, "fre"), _op("relabelled", "caf", "sl")]),
        ]
    )
    assert (summary.predicted_boxes, summary.corrected_boxes, summary.added_boxes) == (4, 3, 1)
    assert summary.correction_rate == pytest.approx((3 + 1) / (4 + 1))


def test_per_class_rates_count_a_box_under_the_class_the_model_predicted_and_a_miss_under_its_class():
    summary = correction_summary(
        [
            _reviewed("a", [_op("accepted", "mel"), _op("moved", "mel"), _op("relabelled", "caf", "sl")]),
            _reviewed("b", [_op("accepted", "sl"), _op("added", None, "ota")]),
        ]
    )
    assert summary.correction_rate_per_class == {"caf": 1.0, "mel": 0.5, "ota": 1.0, "sl": 0.0}
    assert summary.edits_per_class["ota"] == {"added": 1}  # the model missed every ota box


def test_per_photo_figures_count_additions_and_corrections_not_accepted_boxes():
    summary = correction_summary(
        [
            _reviewed("a", [_op("accepted", "mel"), _op("moved", "mel")]),
            _reviewed("b", [_op("deleted", "sl"), _op("added", None, "fre")]),
        ]
    )
    assert summary.added_per_photo == 0.5
    assert summary.operations_per_photo == 1.5  # moved, deleted, added over 2 photos


def test_excluded_photos_are_left_out_of_every_figure_and_counted():
    kept = _reviewed("a", [_op("accepted", "mel"), _op("moved", "mel")], lead=10.0)
    excluded = _reviewed("b", [_op("deleted", "sl"), _op("deleted", "fre")], boxes=(), lead=50.0, excluded=True)
    with_excluded = correction_summary([kept, excluded])
    assert with_excluded == replace(correction_summary([kept]), excluded_photos=1)
    assert (with_excluded.photos, with_excluded.excluded_photos) == (1, 1)
    assert with_excluded.correction_rate == 0.5 and with_excluded.lead_time_seconds == 10.0


def test_reviews_without_recorded_operations_are_left_out_and_counted():
    imported = LabelVersion(image_path="c", source=Source.REVIEWED, boxes=(Box("mel", 0, 0, 5, 5),), round=0)
    summary = correction_summary([_reviewed("a", [_op("moved", "mel")]), imported])
    assert (summary.photos, summary.unmeasured_photos, summary.correction_rate) == (1, 1, 1.0)


def test_a_batch_where_the_model_predicted_nothing_and_reviewers_drew_is_fully_corrected():
    only_added = correction_summary([_reviewed("a", [_op("added", None, "mel")])])
    assert only_added.predicted_boxes == 0 and only_added.correction_rate == 1.0
    assert only_added.correction_rate_per_class == {"mel": 1.0} and only_added.added_per_photo == 1.0


def test_correction_rate_is_unknown_when_the_photos_hold_no_box_at_all():
    nothing = correction_summary([_reviewed("a", [], boxes=())])
    assert nothing.photos == 1 and nothing.correction_rate is None and nothing.correction_rate_per_class == {}
    empty = correction_summary([])
    assert empty.correction_rate is None and empty.added_per_photo is None and empty.operations_per_photo is None


def test_measured_lead_time_sums_known_lead_times_and_averages_over_timed_photos():
    summary = correction_summary(
        [_reviewed("a", [], lead=12.0), _reviewed("b", [], lead=30.0), _reviewed("c", [], lead=None)]
    )
    assert summary.lead_time_seconds == 42.0 and summary.timed_photos == 2
    assert summary.mean_lead_time_seconds == 21.0


def test_review_status_and_the_learning_curve_report_the_same_rates(tmp_path):
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        ws.store.labels.add_image(ImageRecord(path=name, sha256=name, width=100, height=100))
    ws.store.labels.add_label_version(_reviewed("a.jpg", [_op("accepted", "mel"), _op("moved", "mel")]))
    ws.store.labels.add_label_version(_reviewed("b.jpg", [_op("accepted", "sl"), _op("added", None, "fre")]))
    ws.store.labels.add_label_version(_reviewed("c.jpg", [_op("deleted", "sl")], boxes=(), excluded=True))
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE)

    status = review_status(ws)
    [row] = learning_curve(ws)
    assert status.excluded == 1
    assert status.corrections.correction_rate == row.correction_rate == pytest.approx((1 + 1) / (3 + 1))
    per_class = {"fre": 1.0, "mel": 0.5, "sl": 0.0}
    assert status.corrections.correction_rate_per_class == row.correction_rate_per_class == per_class
    assert status.to_dict()["correction_rate_per_class"] == row.to_dict()["correction_rate_per_class"]
    # scratch: drawing a's and b's final boxes by the one time model, plus a look at each photo
    scratch = 2 * (LOOK_S + draw_seconds(Box("mel", 0, 0, 10, 10), 100, 100))
    assert row.reviewed_photos == 2 and row.scratch_seconds == pytest.approx(scratch)
    assert status.corrections.effort.scratch_seconds == pytest.approx(scratch)
    ws.close()


def test_a_nudge_that_keeps_the_box_as_good_as_it_was_is_accepted_and_one_below_accept_iou_is_moved():
    before = Box("mel", 0, 0, 100, 100)
    nudged = Box("mel", 5, 5, 103, 102)  # IoU 0.89: what two people boxing the lesion would disagree by
    moved = Box("mel", 20, 20, 110, 110)  # IoU 0.57
    [kept] = diff_regions([("r", before)], [("r", nudged)])
    [fixed] = diff_regions([("r", before)], [("r", moved)])
    assert kept.kind is EditKind.ACCEPTED and kept.iou >= ACCEPT_IOU
    assert fixed.kind is EditKind.MOVED and fixed.iou < ACCEPT_IOU
