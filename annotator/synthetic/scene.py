"""One photo's scene at drawing resolution: where the face sits and how it is turned (the world's pose),
the backdrop with its vertical light gradient, the head (see face.py) in a band of columns, the exposure
and colour temperature of the whole photo (the world's lighting), and sometimes a case-number card (not
labelled) in a corner.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from annotator.synthetic.canvas import Face
from annotator.synthetic.face import Head, draw_head
from annotator.synthetic.streams import Streams
from annotator.synthetic.world import METERED_LUMA, Pose, World
from annotator.types import Box

_BACKGROUNDS = np.array(
    [[70, 110, 160], [60, 130, 110], [150, 150, 150], [210, 200, 180], [40, 45, 55], [120, 90, 140], [200, 210, 220]],
    np.float32,
)


def render(
    streams: Streams, w: int, h: int, classes: tuple[str, ...], card: bool, world: World
) -> tuple[np.ndarray, Head]:
    """Draw one photo at (h, w). Returns planar float32 RGB (3, h, w) in 0..255 and its head, boxes in this frame.

    Planar, because numpy broadcasts a (h, w) opacity over (3, h, w) far faster than over (h, w, 3).
    """
    rng = streams.main
    face = _place_face(rng, w, h, world.pose)
    face = dataclasses.replace(face, yaw=streams.pose.uniform(*world.pose.yaw))  # 0.0 exactly for (0, 0)
    img = _backdrop(rng, w, h)
    head = _draw_head_band(streams, img, face, classes, world)
    _expose(rng, img, world, head.skin_luma)
    if card:
        _draw_card(rng, img, head.boxes)
    return img, head


def _place_face(rng: np.random.Generator, w: int, h: int, pose: Pose) -> Face:
    """The face's size (a little smaller in a portrait photo), its centre and its roll, from the pose's ranges."""
    portrait = h > w
    b = h * rng.uniform(*pose.half_height_portrait) if portrait else h * rng.uniform(*pose.half_height)
    a = min(b / rng.uniform(1.25, 1.45), 0.42 * w)
    return Face(
        cx=w * rng.uniform(*pose.centre_x), cy=h * rng.uniform(*pose.centre_y), a=a, b=b, roll=rng.uniform(*pose.roll)
    )


def _backdrop(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A plain backdrop (3, h, w) of one of a few colours, lit brighter towards the top."""
    bg_colour = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] * (1.0 + rng.uniform(-0.15, 0.15, 3)).astype(np.float32)
    rows = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
    gradient = np.float32(rng.uniform(0.75, 0.9)) + np.float32(rng.uniform(0.1, 0.3)) * (np.float32(1.0) - rows)
    img = np.empty((3, h, w), np.float32)
    img[:] = bg_colour[:, None, None] * gradient[None, :, None]
    return img


def _draw_head_band(streams: Streams, img: np.ndarray, face: Face, classes: tuple[str, ...], world: World) -> Head:
    """The head over img (3, h, w), in place; returns it with the lesion boxes in img's frame.

    Hair, face and neck lie in a band of columns around the face: they are drawn there only.
    """
    _, _, w = img.shape
    reach = 1.13 * face.a + 1.2 * face.b * abs(math.sin(face.roll)) + 3.0
    c0, c1 = max(0, int(face.cx - reach)), min(w, int(math.ceil(face.cx + reach)))
    band = np.ascontiguousarray(img[:, :, c0:c1])
    drawn = draw_head(streams, band, dataclasses.replace(face, cx=face.cx - c0), classes, world)
    img[:, :, c0:c1] = band
    boxes = [Box(box.label, box.x1 + c0, box.y1, box.x2 + c0, box.y2) for box in drawn.boxes]
    return dataclasses.replace(drawn, boxes=boxes)


def _expose(rng: np.random.Generator, img: np.ndarray, world: World, skin_luma: float) -> None:
    """Exposure and colour temperature of the whole photo (3, h, w), in place; metered on the skin where the
    world's camera meters."""
    warmth = rng.uniform(*world.lighting.warmth)
    gain = np.float32(rng.uniform(*world.lighting.exposure))
    if world.lighting.metering:
        gain *= np.float32((METERED_LUMA / skin_luma) ** world.lighting.metering)
    img *= (gain * np.array([1 + warmth, 1.0, 1 - warmth], np.float32))[:, None, None]


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
