"""One rule for a box that leaves the photo or is too small (`annotator.boxes.fit_box`), the same at
every entry point: ingest of labelImg XML, Label Studio reviews (`parse_result`, used by pull) and
a model's boxes mapped back onto the photo (`boxes_to_photo`, used by pre-annotation). Clipped
beyond the edge tolerance: kept and reported; under a pixel in either direction: dropped and reported.
(The pull end of it, against a real Label Studio, is in tests/review_queue/test_review_pull.py.)"""

from __future__ import annotations

import pytest

from annotator.boxes import EDGE_TOLERANCE_PX, MIN_SIDE_PX, boxes_to_photo, fit_box
from annotator.classes import ClassTable
from annotator.types import Box
from review_queue.labelstudio.convert import box_to_result, parse_result
from tests.corpus.make_corpus import GOOD_BOX, Obj

GOOD = Box("mel", 9, 7, 40, 30)  # GOOD_BOX (VOC 10,8,40,30) in our frame, on a 64x48 photo


# ---- the rule ---------------------------------------------------------------------------------


def test_a_box_inside_the_photo_is_kept_as_it_is_without_a_word():
    fit = fit_box(GOOD, 64, 48)
    assert (fit.box, fit.outside_px, fit.reason, fit.action) == (GOOD, 0.0, None, None)


def test_an_overshoot_within_the_tolerance_is_clipped_silently():
    fit = fit_box(Box("sl", -EDGE_TOLERANCE_PX, 0, 20, 20), 64, 48)
    assert fit.box == Box("sl", 0, 0, 20, 20) and fit.action is None


def test_a_box_reaching_40_px_outside_is_clipped_and_says_how_far():
    fit = fit_box(Box("caf", 30, 10, 104, 20), 64, 48)
    assert fit.box == Box("caf", 30, 10, 64, 20)
    assert (fit.reason, fit.action, fit.outside_px) == ("box-outside-photo", "clipped", 40.0)
    assert fit.describe("box 'caf'") == "box 'caf' reached 40.0 px outside the 64x48 photo; clipped to the photo edge"


@pytest.mark.parametrize(
    "box",
    [Box("sl", 10, 10, 10, 20), Box("sl", 10, 10, 20, 10), Box("sl", 10, 10, 10.9, 20)],
    ids=["zero-width", "zero-height", "sub-pixel"],
)
def test_a_box_under_one_pixel_is_dropped_as_too_small(box):
    fit = fit_box(box, 64, 48)
    assert (fit.box, fit.reason, fit.action) == (None, "zero-area-box", "box dropped")
    assert f"under {MIN_SIDE_PX:g} px" in fit.describe("box 'sl'")


@pytest.mark.parametrize("box", [Box("sl", 70, 10, 90, 20), Box("sl", 63.5, 10, 90, 20)], ids=["wholly", "sliver-left"])
def test_a_box_leaving_under_one_pixel_inside_is_dropped_as_outside(box):
    fit = fit_box(box, 64, 48)
    assert (fit.box, fit.reason, fit.action) == (None, "box-outside-photo", "box dropped")
    assert "lies outside the 64x48 photo" in fit.describe("box 'sl'")


def test_exactly_one_pixel_is_kept():
    assert fit_box(Box("sl", 10, 10, 11, 11), 64, 48).box == Box("sl", 10, 10, 11, 11)


# ---- entry point: ingest of labelImg XML ---------------------------------------------------------


def test_ingest_clips_a_box_40_px_outside_and_reports_the_amount(folder, run_ingest):
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", 31, 11, 104, 20)])  # VOC right edge 104 on a 64 px wide photo
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD, Box("caf", 30, 10, 64, 20))
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("box-outside-photo", "clipped")
    assert "40.0 px outside the 64x48 photo" in line.message


def test_ingest_drops_a_box_with_under_a_pixel_inside_the_photo(folder, run_ingest):
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", 64.5, 10, 90, 20)])  # x 63.5-90: half a pixel inside
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("box-outside-photo", "box dropped")
    assert "redraw it in labelImg" in line.message


def test_ingest_drops_a_zero_size_drag_by_the_same_rule(folder, run_ingest):
    folder.pair("x.jpg", [GOOD_BOX, Obj("sl", 20, 20, 20, 30)])  # labelImg: xmin == xmax is a zero-width drag
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("zero-area-box", "box dropped") and "under 1 px" in line.message


# ---- entry point: a Label Studio review (what pull merges) ----------------------------------------


def test_a_reviewed_box_gets_what_the_same_box_gets_at_ingest(folder, run_ingest):
    outside = Box("caf", 30, 10, 104, 20)
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", outside.x1 + 1, outside.y1 + 1, outside.x2, outside.y2)])
    ingested = run_ingest()
    line = ingested.only_line("x.jpg")

    parsed = parse_result([box_to_result(outside, 64, 48, "r")], width=64, height=48, classes=ClassTable())
    (fix,) = parsed.fixes
    assert parsed.problems == () and parsed.regions[0][1] == ingested.boxes("x.jpg")[1]
    assert (fix.reason, fix.action) == (line.reason, line.action)
    assert fix.outside_px == pytest.approx(40.0)


# ---- entry point: a model's boxes mapped back onto the photo (pre-annotation) -----------------------


def test_mapped_model_boxes_follow_the_same_rule():
    found = [
        Box("mel", 10, 10, 20, 20, score=0.9),  # kept, x4 onto the photo
        Box("sl", 5, 5, 5.2, 9, score=0.8),  # 0.8 px wide on the photo: dropped
        Box("fre", 15.9, 2, 30, 6, score=0.7),  # 63.6-120 on a 64 px photo: 0.4 px inside, dropped
        Box("caf", 12, 2, 30, 6, score=0.6),  # clipped at the right edge
    ]
    mapped = boxes_to_photo(found, 4.0, 4.0, 64, 48)
    assert mapped == [Box("mel", 40, 40, 64, 48, score=0.9), Box("caf", 48, 8, 64, 24, score=0.6)]
    assert mapped == [
        f.box
        for f in (fit_box(Box(b.label, b.x1 * 4, b.y1 * 4, b.x2 * 4, b.y2 * 4, score=b.score), 64, 48) for b in found)
        if f.box is not None
    ]
