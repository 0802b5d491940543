"""One photo's scene at drawing resolution: where the face sits, the backdrop with its vertical light
gradient, the head (see face.py) in a band of columns, the exposure and colour temperature of the whole
photo, and sometimes a case-number card (not labelled) in a corner.
"""

from __future__ import annotations

import math

import numpy as np

from annotator.synthetic.canvas import Face
from annotator.synthetic.face import draw_head
from annotator.synthetic.world import World
from annotator.types import Box

_BACKGROUNDS = np.array(
    [[70, 110, 160], [60, 130, 110], [150, 150, 150], [210, 200, 180], [40, 45, 55], [120, 90, 140], [200, 210, 220]],
    np.float32,
)


def render(
    rng: np.random.Generator, w: int, h: int, classes: tuple[str, ...], card: bool, world: World
) -> tuple[np.ndarray, list[Box]]:
    """Draw one photo at (h, w). Returns planar float32 RGB (3, h, w) in 0..255 and its boxes in this frame.

    Planar, because numpy broadcasts a (h, w) opacity over (3, h, w) far faster than over (h, w, 3).
    """
    face = _place_face(rng, w, h)
    img = _backdrop(rng, w, h)
    boxes = _draw_head_band(rng, img, face, classes, world)
    _expose(rng, img)
    if card:
        _draw_card(rng, img, boxes)
    return img, boxes


def _place_face(rng: np.random.Generator, w: int, h: int) -> Face:
    """The face's size (a little smaller in a portrait photo), its centre near the middle, and a small roll."""
    portrait = h > w
    b = h * rng.uniform(0.34, 0.40) if portrait else h * rng.uniform(0.36, 0.43)
    a = min(b / rng.uniform(1.25, 1.45), 0.42 * w)
    return Face(cx=w * rng.uniform(0.44, 0.56), cy=h * rng.uniform(0.50, 0.57), a=a, b=b, roll=rng.uniform(-0.08, 0.08))


def _backdrop(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A plain backdrop (3, h, w) of one of a few colours, lit brighter towards the top."""
    bg_colour = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] * (1.0 + rng.uniform(-0.15, 0.15, 3)).astype(np.float32)
    rows = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
    gradient = np.float32(rng.uniform(0.75, 0.9)) + np.float32(rng.uniform(0.1, 0.3)) * (np.float32(1.0) - rows)
    img = np.empty((3, h, w), np.float32)
    img[:] = bg_colour[:, None, None] * gradient[None, :, None]
    return img


def _draw_head_band(
    rng: np.random.Generator, img: np.ndarray, face: Face, classes: tuple[str, ...], world: World
) -> list[Box]:
    """The head over img (3, h, w), in place; returns the lesion boxes in img's frame.

    Hair, face and neck lie in a band of columns around the face: they are drawn there only.
    """
    _, _, w = img.shape
    reach = 1.13 * face.a + 1.2 * face.b * abs(math.sin(face.roll)) + 3.0
    c0, c1 = max(0, int(face.cx - reach)), min(w, int(math.ceil(face.cx + reach)))
    head = np.ascontiguousarray(img[:, :, c0:c1])
    head_boxes = draw_head(rng, head, Face(face.cx - c0, face.cy, face.a, face.b, face.roll), classes, world)
    img[:, :, c0:c1] = head
    return [Box(box.label, box.x1 + c0, box.y1, box.x2 + c0, box.y2) for box in head_boxes]


def _expose(rng: np.random.Generator, img: np.ndarray) -> None:
    """Exposure and colour temperature of the whole photo (3, h, w), in place."""
    warmth = rng.uniform(-0.06, 0.08)
    img *= (np.float32(rng.uniform(0.85, 1.10)) * np.array([1 + warmth, 1.0, 1 - warmth], np.float32))[:, None, None]


def _draw_card(rng: np.random.Generator, img: np.ndarray, boxes: list[Box]) -> None:
    """A white case-number card with dark digit-like marks in a corner free of lesion boxes."""
    h, w = img.shape[1:]
    cw = int(w * rng.uniform(0.15, 0.22))
    ch = int(cw * rng.uniform(0.50, 0.65))
    margin = int(min(w, h) * 0.03)
    for corner in rng.permutation(4):
        x0 = margin if corner % 2 == 0 else w - margin - cw
        y0 = margin if corner < 2 else h - margin - ch
        if not any(b.x1 < x0 + cw and x0 < b.x2 and b.y1 < y0 + ch and y0 < b.y2 for b in boxes):
            break
    else:
        return
    img[:, y0 + 2 : y0 + ch + 2, x0 + 2 : x0 + cw + 2] *= np.float32(0.7)  # drop shadow
    img[:, y0 : y0 + ch, x0 : x0 + cw] = np.float32(rng.uniform(225, 250))
    ink = np.float32(rng.uniform(20, 60))
    rows = int(rng.integers(2, 4))
    row_h = ch / (rows * 2 + 1)
    stroke = max(1, int(row_h * 0.9))
    for row in range(rows):
        top = y0 + int(row_h * (2 * row + 1))
        left = x0 + int(cw * 0.08)
        while left < x0 + cw * 0.88:
            glyph = max(1, int(row_h * rng.uniform(0.5, 1.0)))
            img[:, top : top + stroke, left : min(left + glyph, x0 + int(cw * 0.92))] = ink
            left += glyph + max(1, int(row_h * rng.uniform(0.3, 0.8)))
