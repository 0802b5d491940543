"""Every box-format conversion, in one place, as pure functions.

Internal frame (see `annotator.types.Box`): displayed photo, 0-based continuous pixels,
exclusive right/bottom edges. The formats we meet:

- Pascal VOC (labelImg): integer, 1-based, *inclusive* pixel indices. A box covering pixels
  0..9 is written xmin=1, xmax=10. So x1 = xmin - 1, x2 = xmax.
- YOLO: class, centre x, centre y, width, height, all normalised to [0, 1].
- COCO: [x, y, width, height] in 0-based continuous pixels (our frame, top-left + size).
- Label Studio: x, y, width, height in PERCENT of the displayed photo, top-left origin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from annotator.types import Box

# ---- VOC ---------------------------------------------------------------------------------


def voc_to_box(label: str, xmin: float, ymin: float, xmax: float, ymax: float, **extra) -> Box:
    """labelImg writes 1-based inclusive corners; some tools write 0 at the left edge."""
    return Box(label, float(xmin) - 1.0, float(ymin) - 1.0, float(xmax), float(ymax), **extra)


def box_to_voc(box: Box) -> tuple[int, int, int, int]:
    """Integer 1-based inclusive corners, as labelImg writes them."""
    xmin = int(math.floor(box.x1 + 0.5)) + 1
    ymin = int(math.floor(box.y1 + 0.5)) + 1
    xmax = int(math.floor(box.x2 + 0.5))
    ymax = int(math.floor(box.y2 + 0.5))
    return xmin, ymin, max(xmin, xmax), max(ymin, ymax)


# ---- YOLO --------------------------------------------------------------------------------


def box_to_yolo(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """(cx, cy, w, h) normalised to the displayed photo size."""
    return (
        (box.x1 + box.x2) / 2.0 / width,
        (box.y1 + box.y2) / 2.0 / height,
        box.width / width,
        box.height / height,
    )


def yolo_to_box(
    label: str, cx: float, cy: float, w: float, h: float, width: int, height: int, score: float | None = None
) -> Box:
    return Box(
        label, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height, score=score
    )


# ---- COCO --------------------------------------------------------------------------------


def box_to_coco(box: Box) -> list[float]:
    return [box.x1, box.y1, box.width, box.height]


def coco_to_box(label: str, bbox: list[float], score: float | None = None) -> Box:
    x, y, w, h = (float(v) for v in bbox)
    return Box(label, x, y, x + w, y + h, score=score)


# ---- Label Studio ------------------------------------------------------------------------


def box_to_ls_percent(box: Box, width: int, height: int) -> dict[str, float]:
    """Label Studio's rectangle value: top-left and size in percent of the displayed photo."""
    return {
        "x": 100.0 * box.x1 / width,
        "y": 100.0 * box.y1 / height,
        "width": 100.0 * box.width / width,
        "height": 100.0 * box.height / height,
        "rotation": 0,
    }


def ls_percent_to_box(label: str, value: dict, width: int, height: int, score: float | None = None) -> Box:
    x1 = float(value["x"]) * width / 100.0
    y1 = float(value["y"]) * height / 100.0
    return Box(
        label,
        x1,
        y1,
        x1 + float(value["width"]) * width / 100.0,
        y1 + float(value["height"]) * height / 100.0,
        score=score,
    )


# ---- EXIF orientation ----


def orient_box(box: Box, raw_w: int, raw_h: int, orientation: int) -> Box:
    """Map a box drawn on the stored (un-rotated) pixels into the displayed frame (EXIF 1-8)."""
    x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
    if orientation == 2:
        x1, x2 = raw_w - x2, raw_w - x1
    elif orientation == 3:
        x1, x2, y1, y2 = raw_w - x2, raw_w - x1, raw_h - y2, raw_h - y1
    elif orientation == 4:
        y1, y2 = raw_h - y2, raw_h - y1
    elif orientation == 5:
        x1, y1, x2, y2 = y1, x1, y2, x2
    elif orientation == 6:
        x1, y1, x2, y2 = raw_h - y2, x1, raw_h - y1, x2
    elif orientation == 7:
        x1, y1, x2, y2 = raw_h - y2, raw_w - x2, raw_h - y1, raw_w - x1
    elif orientation == 8:
        x1, y1, x2, y2 = y1, raw_w - x2, y2, raw_w - x1
    return Box(box.label, x1, y1, x2, y2, score=box.score, difficult=box.difficult, truncated=box.truncated)


# ---- geometry ----------------------------------------------------------------------------


def clip_box(box: Box, width: int, height: int) -> Box:
    return Box(
        box.label,
        min(max(box.x1, 0.0), width),
        min(max(box.y1, 0.0), height),
        min(max(box.x2, 0.0), width),
        min(max(box.y2, 0.0), height),
        score=box.score,
        difficult=box.difficult,
        truncated=box.truncated,
    )


# ---- one rule for boxes that leave the photo or are too small ------------------------------
# Every entry point (ingest of labelImg XML, pull of Label Studio reviews, a model's boxes mapped
# back onto the photo) fits its boxes with `fit_box`, so the same box gets the same treatment
# wherever it comes from: clipped to the photo, dropped when less than MIN_SIDE_PX remains in
# either direction, and reported (by the caller) when clipped by more than EDGE_TOLERANCE_PX or dropped.

EDGE_TOLERANCE_PX = 1.5  # labelImg rounds to whole pixels (0 or width+1 at an edge), Label Studio to percent
MIN_SIDE_PX = 1.0  # a box narrower or lower than one pixel (zero-size included) marks no lesion
OUTSIDE_PHOTO = "box-outside-photo"  # report reasons, the same in the ingest report and pull-issues.json
TOO_SMALL = "zero-area-box"
CLIPPED, DROPPED = "clipped", "box dropped"  # report actions
_ROUND_OFF = 1e-6  # a 1 px box that went through Label Studio's percent comes back a hair under 1 px


@dataclass(frozen=True)
class BoxFit:
    """What `fit_box` did to one box on a width x height photo.

    box: the box inside the photo, or None when it was dropped.
    outside_px: how far the box reached outside the photo (0.0 when it lies inside).
    reason: OUTSIDE_PHOTO or TOO_SMALL when the fit is worth a report line, else None.
    """

    box: Box | None
    outside_px: float
    reason: str | None
    width: int
    height: int

    @property
    def action(self) -> str | None:
        """CLIPPED or DROPPED when the fit is worth a report line, else None (inside, or edge rounding)."""
        if self.reason is None:
            return None
        return DROPPED if self.box is None else CLIPPED

    def describe(self, what: str) -> str:
        """One report line's message for the box called `what` (e.g. "box 'mel' (1,2)-(30,40)")."""
        photo = f"the {self.width}x{self.height} photo"
        if self.box is not None:
            return f"{what} reached {self.outside_px:.1f} px outside {photo}; clipped to the photo edge"
        if self.reason == OUTSIDE_PHOTO:
            return (
                f"{what} lies outside {photo} (less than {MIN_SIDE_PX:g} px of it inside); it was left out, redraw it"
            )
        return f"{what} is under {MIN_SIDE_PX:g} px wide or high; it was left out, redraw it"


def fit_box(box: Box, width: int, height: int) -> BoxFit:
    """Clip `box` to the photo and apply the one rule: keep it when at least MIN_SIDE_PX remains in
    both directions, else drop it; say whether a person should hear about it (see `BoxFit`)."""
    clipped = clip_box(box, width, height)
    outside = max(0.0, clipped.x1 - box.x1, clipped.y1 - box.y1, box.x2 - clipped.x2, box.y2 - clipped.y2)
    least = MIN_SIDE_PX - _ROUND_OFF
    if clipped.width >= least and clipped.height >= least:
        return BoxFit(clipped, outside, OUTSIDE_PHOTO if outside > EDGE_TOLERANCE_PX else None, width, height)
    small = box.width < least or box.height < least  # too small before any clipping
    return BoxFit(None, outside, TOO_SMALL if small else OUTSIDE_PHOTO, width, height)


def is_finite(box: Box) -> bool:
    return all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2))


def boxes_to_photo(boxes: Iterable[Box], sx: float, sy: float, width: int, height: int) -> list[Box]:
    """Map boxes found on a reduced or resized copy of a photo back onto the photo itself.

    sx, sy: photo pixels per copy pixel (what `annotator.images.decode_displayed` returns);
    width, height: the photo's size. Each box is scaled, then fitted to the photo by the one rule
    (`fit_box`): clipped, and dropped when under MIN_SIDE_PX in either direction (found outside
    the photo, or too small). A model's box is no one's work, so a dropped one is not reported.
    Label, score and flags are kept.
    """
    fitted = (
        fit_box(
            Box(
                b.label,
                b.x1 * sx,
                b.y1 * sy,
                b.x2 * sx,
                b.y2 * sy,
                score=b.score,
                difficult=b.difficult,
                truncated=b.truncated,
            ),
            width,
            height,
        )
        for b in boxes
    )
    return [f.box for f in fitted if f.box is not None]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a: list[Box] | tuple[Box, ...], b: list[Box] | tuple[Box, ...]) -> np.ndarray:
    """(len(a), len(b)) pairwise IoU."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    aa = np.array([[x.x1, x.y1, x.x2, x.y2] for x in a], dtype=float)  # (N, 4)
    bb = np.array([[x.x1, x.y1, x.x2, x.y2] for x in b], dtype=float)  # (M, 4)
    ix = np.clip(np.minimum(aa[:, None, 2], bb[None, :, 2]) - np.maximum(aa[:, None, 0], bb[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(aa[:, None, 3], bb[None, :, 3]) - np.maximum(aa[:, None, 1], bb[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (aa[:, 2] - aa[:, 0]) * (aa[:, 3] - aa[:, 1])
    area_b = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_boxes(
    pred: list[Box] | tuple[Box, ...],
    truth: list[Box] | tuple[Box, ...],
    iou_threshold: float = 0.5,
    class_aware: bool = True,
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by descending IoU: [(pred_index, truth_index, iou)]."""
    m = iou_matrix(pred, truth)
    pairs = []
    if m.size:
        order = np.dstack(np.unravel_index(np.argsort(-m, axis=None), m.shape))[0]
        used_p, used_t = set(), set()
        for i, j in order:
            v = m[i, j]
            if v < iou_threshold:
                break
            if i in used_p or j in used_t:
                continue
            if class_aware and pred[i].label != truth[j].label:
                continue
            used_p.add(int(i))
            used_t.add(int(j))
            pairs.append((int(i), int(j), float(v)))
    return pairs
