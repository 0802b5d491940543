"""The one time model: reviewer and scratch effort priced by the same per-action rule on the same
photos, so a saving can only come from the model's boxes."""

from __future__ import annotations

import pytest

from annotator.types import Box, LabelVersion, Source
from review_queue.corrections import correction_summary, diff_regions
from review_queue.effort import (
    ADJUST_S,
    LOOK_S,
    RELABEL_S,
    VERIFY_S,
    PhotoReview,
    draw_seconds,
    effort,
    review_seconds,
    scratch_seconds,
)

W, H = 640, 480
LESIONS = (Box("mel", 10, 10, 200, 180), Box("fre", 300, 300, 312, 310), Box("caf", 400, 50, 470, 120))


def _photo(predicted: list[tuple[str, Box]], final: tuple[Box, ...]) -> PhotoReview:
    """A photo as pull stores it: the real edit diff of prediction -> final boxes."""
    ops = [op.as_stored() for op in diff_regions(predicted, [(f"n{i}", b) for i, b in enumerate(final)])]
    return PhotoReview(ops, final, W, H)


def test_a_photo_where_the_model_predicted_nothing_costs_the_reviewer_what_scratch_costs():
    priced = effort([_photo([], LESIONS)])
    assert priced.reviewer_seconds == pytest.approx(priced.scratch_seconds)
    assert priced.reviewer_seconds == pytest.approx(scratch_seconds(LESIONS, W, H))
    assert priced.reviewer_operations == priced.scratch_operations == len(LESIONS)


def test_scratch_is_one_look_and_one_draw_per_final_box_of_the_same_photo():
    assert scratch_seconds(LESIONS, W, H) == pytest.approx(LOOK_S + sum(draw_seconds(b, W, H) for b in LESIONS))
    perfect = effort([_photo([(f"p{i}", b) for i, b in enumerate(LESIONS)], LESIONS)])
    assert perfect.scratch_seconds == pytest.approx(scratch_seconds(LESIONS, W, H))
    assert perfect.reviewer_seconds == pytest.approx(LOOK_S + VERIFY_S * len(LESIONS))  # only verifying
    assert perfect.reviewer_operations == 0 and perfect.scratch_operations == 3


def test_each_edit_is_priced_by_its_action():
    predicted = [
        ("a", Box("mel", 10, 10, 200, 180)),  # kept: verify
        ("b", Box("fre", 330, 330, 345, 342)),  # off the lesion: deleted, and the lesion drawn
        ("c", Box("sl", 430, 80, 500, 150)),  # on caf but wrong class and IoU 0.27: relabel + adjust
    ]
    final = LESIONS
    ops = [op.as_stored() for op in diff_regions(predicted, [("a", final[0]), ("n", final[1]), ("c", final[2])])]
    assert sorted(op.kind for op in ops) == ["accepted", "added", "deleted", "relabelled"]
    expected = LOOK_S + VERIFY_S + 2.0 + (RELABEL_S + ADJUST_S) + draw_seconds(final[1], W, H)
    assert review_seconds(ops, W, H) == pytest.approx(expected)


def test_per_class_effort_adds_up_to_the_total_less_the_looks():
    priced = effort([_photo([("a", Box("ota", 10, 10, 200, 180))], LESIONS), _photo([], LESIONS[:1])])
    per_class = priced.per_class
    # the predicted ota relabelled as mel counts under ota, the class the model got wrong
    assert (per_class["ota"].reviewer_operations, per_class["ota"].scratch_operations) == (1, 0)
    assert per_class["fre"].scratch_operations == 1 and per_class["fre"].reviewer_operations == 1  # drawn
    assert sum(c.reviewer_seconds for c in per_class.values()) + 2 * LOOK_S == pytest.approx(priced.reviewer_seconds)
    assert sum(c.scratch_seconds for c in per_class.values()) + 2 * LOOK_S == pytest.approx(priced.scratch_seconds)


def test_the_correction_statistic_prices_only_photos_of_known_size_on_both_sides():
    def reviewed(path: str) -> LabelVersion:
        return LabelVersion(
            image_path=path,
            source=Source.REVIEWED,
            boxes=LESIONS,
            round=0,
            meta={"operations": [op.to_dict() for op in _photo([], LESIONS).operations], "lead_time": 99.0},
        )

    summary = correction_summary([reviewed("a.jpg"), reviewed("b.jpg")], sizes={"a.jpg": (W, H)})
    assert summary.photos == 2 and summary.effort.photos == 1
    assert summary.effort.scratch_seconds == pytest.approx(scratch_seconds(LESIONS, W, H))
    assert summary.effort.reviewer_seconds == pytest.approx(summary.effort.scratch_seconds)
    assert summary.lead_time_seconds == 198.0  # measured time is kept apart from the model
