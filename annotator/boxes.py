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


def yolo_to_box(label: str, cx: float, cy: float, w: float, h: float, width: int, height: int,
                score: float | None = None) -> Box:
    return Box(label, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
               (cy + h / 2) * height, score=score)


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
    return Box(label, x1, y1, x1 + float(value["width"]) * width / 100.0,
               y1 + float(value["height"]) * height / 100.0, score=score)


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
    return Box(box.label, min(max(box.x1, 0.0), width), min(max(box.y1, 0.0), height),
               min(max(box.x2, 0.0), width), min(max(box.y2, 0.0), height),
               score=box.score, difficult=box.difficult, truncated=box.truncated)


def is_finite(box: Box) -> bool:
    return all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2))


def boxes_to_photo(boxes: Iterable[Box], sx: float, sy: float, width: int, height: int) -> list[Box]:
    """Map boxes found on a reduced or resized copy of a photo back onto the photo itself.

    sx, sy: photo pixels per copy pixel (what `annotator.images.decode_displayed` returns);
    width, height: the photo's size. Each box is scaled, then clipped to the photo; a box left
    with no area (found wholly outside the photo) is dropped. Label, score and flags are kept.
    """
    mapped = (clip_box(Box(b.label, b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy, score=b.score,
                           difficult=b.difficult, truncated=b.truncated), width, height) for b in boxes)
    return [b for b in mapped if b.width > 0 and b.height > 0]


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


def match_boxes(pred: list[Box] | tuple[Box, ...], truth: list[Box] | tuple[Box, ...],
                iou_threshold: float = 0.5, class_aware: bool = True) -> list[tuple[int, int, float]]:
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
