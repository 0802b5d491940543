"""annotator.boxes: every format conversion round-trips, and orient_box agrees with PIL's own
EXIF transposes pixel for pixel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from annotator.boxes import (
    box_to_coco,
    box_to_ls_percent,
    box_to_voc,
    box_to_yolo,
    boxes_to_photo,
    clip_box,
    coco_to_box,
    iou,
    ls_percent_to_box,
    match_boxes,
    orient_box,
    voc_to_box,
    yolo_to_box,
)
from annotator.images import apply_orientation, displayed_size
from annotator.types import Box

LABELS = st.sampled_from(("sl", "fre", "mel", "caf", "ota", "hori"))


@st.composite
def photo_and_box(draw, max_side: int = 8000):
    """(width, height, box inside the photo with positive area)."""
    w = draw(st.integers(1, max_side))
    h = draw(st.integers(1, max_side))
    x1 = draw(st.floats(0, w, allow_nan=False, allow_infinity=False))
    x2 = draw(st.floats(0, w, allow_nan=False, allow_infinity=False))
    y1 = draw(st.floats(0, h, allow_nan=False, allow_infinity=False))
    y2 = draw(st.floats(0, h, allow_nan=False, allow_infinity=False))
    (x1, x2), (y1, y2) = sorted((x1, x2)), sorted((y1, y2))
    return w, h, Box(draw(LABELS), x1, y1, x2, y2)


@st.composite
def voc_corners(draw, max_side: int = 8000):
    """Integer VOC corners as labelImg writes them: 1-based, inclusive, xmin <= xmax."""
    xmin = draw(st.integers(1, max_side))
    ymin = draw(st.integers(1, max_side))
    return xmin, ymin, draw(st.integers(xmin, max_side)), draw(st.integers(ymin, max_side))


def close(a: Box, b: Box, tol: float) -> bool:
    return a.label == b.label and all(
        math.isclose(u, v, abs_tol=tol) for u, v in ((a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2))
    )


# ---- VOC --------------------------------------------------------------------------------------


def test_voc_pixel_convention_is_one_based_inclusive():
    # a box covering pixel columns 0..9 and rows 0..4 is written xmin=1, xmax=10, ymin=1, ymax=5
    assert voc_to_box("mel", 1, 1, 10, 5) == Box("mel", 0, 0, 10, 5)
    assert box_to_voc(Box("mel", 0, 0, 10, 5)) == (1, 1, 10, 5)


@given(voc_corners(), LABELS)
def test_voc_integers_round_trip_exactly(corners, label):
    assert box_to_voc(voc_to_box(label, *corners)) == corners


@given(photo_and_box())
def test_box_to_voc_moves_each_edge_at_most_half_a_pixel(data):
    _, _, box = data
    back = voc_to_box(box.label, *box_to_voc(box))
    assert abs(back.x1 - box.x1) <= 0.5 + 1e-9 and abs(back.y1 - box.y1) <= 0.5 + 1e-9
    # a box thinner than a pixel is widened to one pixel, never inverted
    assert back.x2 >= back.x1 + 1 and back.y2 >= back.y1 + 1
    if box.width >= 1:
        assert abs(back.x2 - box.x2) <= 0.5 + 1e-9
    if box.height >= 1:
        assert abs(back.y2 - box.y2) <= 0.5 + 1e-9


# ---- YOLO, COCO, Label Studio -----------------------------------------------------------------


@given(photo_and_box())
def test_yolo_round_trip(data):
    w, h, box = data
    cx, cy, bw, bh = box_to_yolo(box, w, h)
    assert 0 <= cx <= 1 and 0 <= cy <= 1 and 0 <= bw <= 1 and 0 <= bh <= 1
    assert close(yolo_to_box(box.label, cx, cy, bw, bh, w, h), box, tol=1e-6)


@given(photo_and_box())
def test_yolo_round_trip_at_six_decimals_stays_within_a_hundredth_of_a_pixel_per_thousand(data):
    # export writes "%.6f": for an 8000 px photo that is 0.004 px per coordinate
    w, h, box = data
    rounded = [round(v, 6) for v in box_to_yolo(box, w, h)]
    assert close(yolo_to_box(box.label, *rounded, w, h), box, tol=max(w, h) * 1e-6)


@given(photo_and_box())
def test_coco_round_trip(data):
    _, _, box = data
    x, y, bw, bh = box_to_coco(box)
    assert (x, y) == (box.x1, box.y1) and bw >= 0 and bh >= 0
    assert close(coco_to_box(box.label, [x, y, bw, bh]), box, tol=1e-9)


@given(photo_and_box())
def test_label_studio_percent_round_trip(data):
    w, h, box = data
    value = box_to_ls_percent(box, w, h)
    assert all(0 <= value[k] <= 100 + 1e-9 for k in ("x", "y", "width", "height"))
    assert value["rotation"] == 0
    assert close(ls_percent_to_box(box.label, value, w, h), box, tol=1e-6)


def test_label_studio_percent_is_top_left_and_size():
    value = box_to_ls_percent(Box("ota", 10, 20, 60, 70), 200, 100)
    assert value == {"x": 5.0, "y": 20.0, "width": 25.0, "height": 50.0, "rotation": 0}


def test_scores_survive_the_prediction_formats():
    assert yolo_to_box("sl", 0.5, 0.5, 0.1, 0.1, 100, 100, score=0.7).score == 0.7
    assert coco_to_box("sl", [1, 2, 3, 4], score=0.7).score == 0.7
    assert ls_percent_to_box("sl", {"x": 1, "y": 1, "width": 1, "height": 1}, 100, 100, score=0.7).score == 0.7


# ---- EXIF orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@settings(max_examples=40, deadline=None)
@given(data=photo_and_box(max_side=24))
def test_orient_box_agrees_with_pil_transposes(orientation, data):
    """Paint the box on the stored pixels, apply PIL's transpose for the orientation, and the
    painted region is exactly the box orient_box returns."""
    raw_w, raw_h, box = data
    x1, y1, x2, y2 = (int(v) for v in (box.x1, box.y1, math.ceil(box.x2), math.ceil(box.y2)))
    if x2 <= x1 or y2 <= y1:
        return
    raw = np.zeros((raw_h, raw_w), np.uint8)
    raw[y1:y2, x1:x2] = 255
    shown = np.asarray(apply_orientation(Image.fromarray(raw), orientation))
    assert (shown.shape[1], shown.shape[0]) == displayed_size(raw_w, raw_h, orientation)
    ys, xs = np.nonzero(shown)
    painted = Box(box.label, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert orient_box(Box(box.label, x1, y1, x2, y2), raw_w, raw_h, orientation) == painted


@pytest.mark.parametrize("orientation", range(1, 9))
@given(data=photo_and_box())
def test_orient_box_keeps_the_box_inside_the_displayed_photo(orientation, data):
    raw_w, raw_h, box = data
    shown = orient_box(box, raw_w, raw_h, orientation)
    w, h = displayed_size(raw_w, raw_h, orientation)
    assert 0 <= shown.x1 <= shown.x2 <= w and 0 <= shown.y1 <= shown.y2 <= h
    assert math.isclose(shown.area, box.area, rel_tol=1e-9, abs_tol=1e-6)


def test_orient_box_keeps_label_score_and_flags():
    box = Box("mel", 1, 2, 3, 4, score=0.5, difficult=True, truncated=True)
    shown = orient_box(box, 10, 20, 6)
    assert (shown.label, shown.score, shown.difficult, shown.truncated) == ("mel", 0.5, True, True)


# ---- geometry -----------------------------------------------------------------------------------


@given(photo_and_box(), st.floats(-500, 500), st.floats(-500, 500))
def test_clip_box_stays_inside_the_photo(data, dx, dy):
    w, h, box = data
    moved = Box(box.label, box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)
    clipped = clip_box(moved, w, h)
    assert 0 <= clipped.x1 <= clipped.x2 <= w and 0 <= clipped.y1 <= clipped.y2 <= h


def test_boxes_to_photo_scales_each_axis_by_its_own_factor():
    found = Box("mel", 10, 20, 30, 40, score=0.5, difficult=True, truncated=True)
    assert boxes_to_photo([found], 4.0, 2.5, 400, 300) == [
        Box("mel", 40, 50, 120, 100, score=0.5, difficult=True, truncated=True)
    ]


@given(photo_and_box(), st.floats(0.1, 16), st.floats(0.1, 16))
def test_boxes_to_photo_keeps_every_box_inside_the_photo(data, sx, sy):
    w, h, box = data
    for mapped in boxes_to_photo([box], sx, sy, w, h):
        assert 0 <= mapped.x1 < mapped.x2 <= w and 0 <= mapped.y1 < mapped.y2 <= h


def test_boxes_to_photo_clips_overhang_and_drops_boxes_found_outside():
    overhang, outside = Box("sl", 90, -5, 110, 10), Box("sl", 120, 0, 130, 10)
    assert boxes_to_photo([overhang, outside], 1.0, 1.0, 100, 50) == [Box("sl", 90, 0, 100, 10)]


def test_iou_of_half_overlapping_boxes():
    assert iou(Box("sl", 0, 0, 10, 10), Box("sl", 5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(Box("sl", 0, 0, 10, 10), Box("sl", 20, 20, 30, 30)) == 0.0


def test_match_boxes_is_greedy_one_to_one_and_class_aware():
    truth = [Box("sl", 0, 0, 10, 10), Box("mel", 50, 50, 60, 60)]
    pred = [Box("sl", 1, 1, 10, 10), Box("sl", 0, 0, 10, 9), Box("fre", 50, 50, 60, 60)]  # IoU 0.81, 0.9, 1.0
    assert [(p, t) for p, t, _ in match_boxes(pred, truth)] == [(1, 0)]  # fre is not mel; sl truth taken once
    assert [(p, t) for p, t, _ in match_boxes(pred, truth, class_aware=False)] == [(2, 1), (1, 0)]
