"""The drawing primitives the face and the lesions share: the face's frame, the canvas of free skin, one
lesion's opacity layer, antialiased ellipses and dots, and smooth low-frequency noise.

Images are planar float32 (3, h, w); opacities (h, w) in [0, 1]; coordinates are px with pixel centres at +0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Face:
    """The face ellipse: centre, half-width a, half-height b (px), the head's roll and yaw (radians).

    Face coordinates (u, v): u = 1 at the face's side edge, v = -1 at the top and +1 at the chin, on the
    face as seen from the front. A yawed head shows the point at u where a sphere turned by `yaw` puts it:
    sin(asin(u) + yaw), so features and lesions slide across the outline, bunched on the far side (their
    sizes are not foreshortened; the hairline turns with them; the outline, neck and light do not).
    """

    cx: float
    cy: float
    a: float
    b: float
    roll: float
    yaw: float = 0.0

    def px(self, u: float, v: float) -> tuple[float, float]:
        if self.yaw:  # numpy, so that arrays of (u, v) work too; what turned out of sight lies on the outline
            u = np.sin(np.clip(np.arcsin(np.clip(u, -1.0, 1.0)) + self.yaw, -np.pi / 2, np.pi / 2))
        c, s = math.cos(self.roll), math.sin(self.roll)
        return self.cx + u * self.a * c - v * self.b * s, self.cy + u * self.a * s + v * self.b * c

    def frontal_u(self, u: np.ndarray) -> np.ndarray:
        """The frontal face coordinate of what shows at u (h, w) on a yawed head: px's inverse along u."""
        if not self.yaw:
            return u
        turned = np.arcsin(np.clip(u, -1.0, 1.0)) - np.float32(self.yaw)
        return np.sin(np.clip(turned, -np.pi / 2, np.pi / 2)).astype(np.float32)


@dataclass
class Canvas:
    """What the lesion drawers share: the face, where skin is free to hold pigment, and scales.

    skin: (h, w) opacity of lesion-able skin (face minus hair, eyes, brows, nostrils, mouth).
    unit: 1 % of the face half-width in px. sharp: the px width of a sharp edge.
    occupied: (x0, y0, x1, y1) px of lesions drawn so far, kept clear by discrete lesions.
    shared_pigments: where confusable classes draw one shared colour and depth (see lesions.py); None in
    a world where each class keeps its own.
    """

    face: Face
    skin: np.ndarray
    unit: float
    sharp: float
    occupied: list[tuple[float, float, float, float]]
    shared_pigments: np.random.Generator | None = None


class Layer:
    """One boxed lesion: its opacity (h, w) over the canvas, the window drawn in, and its pigment."""

    def __init__(self, label: str, canvas: Canvas, depth: float, colour: np.ndarray) -> None:
        self.label = label
        h, w = canvas.skin.shape
        self.alpha = np.zeros((h, w), np.float32)
        self.bounds = [h, 0, w, 0]  # y0, y1, x0, x1 of everything stamped so far
        self.depth = depth
        self.colour = colour

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        angle: float,
        soft: float,
        peak: float = 1.0,
        wobble: tuple[tuple[int, float, float], ...] = (),
    ) -> None:
        """Add a filled ellipse (see `ellipse`) of opacity `peak`."""
        win = self._window(*ellipse_bounds(cx, cy, rx, ry, soft, 0.3 if wobble else 0.0))
        if win is None:
            return
        ys_slice, xs_slice, xs, ys = win
        alpha = ellipse(xs, ys, cx, cy, rx, ry, angle, soft, wobble)
        if peak != 1.0:
            alpha *= np.float32(peak)
        np.maximum(self.alpha[ys_slice, xs_slice], alpha, out=self.alpha[ys_slice, xs_slice])

    def dots(self, xs_c: np.ndarray, ys_c: np.ndarray, radii: np.ndarray, peaks: np.ndarray, soft: float) -> None:
        """Add many small round dots at once: (n,) centres, radii and peak opacities."""
        if len(xs_c) == 0:
            return
        reach = float(radii.max()) + soft + 1.0
        win = self._window(
            float(xs_c.min()) - reach, float(xs_c.max()) + reach, float(ys_c.min()) - reach, float(ys_c.max()) + reach
        )
        if win is None:
            return
        ys_slice, xs_slice, xs, ys = win
        for start in range(0, len(xs_c), 16):  # bounded (16, h, w) temporaries
            part = slice(start, start + 16)
            r = radii[part, None, None]
            d2 = (xs[None, None, :] - xs_c[part, None, None]) ** 2 + (ys[None, :, None] - ys_c[part, None, None]) ** 2
            # (r^2 - d^2) / 2r ~ r - d near the edge: an antialiased disc without a square root
            alpha = np.clip((r * r - d2) / (2.0 * r * np.float32(soft)) + np.float32(0.5), 0.0, 1.0)
            alpha *= peaks[part, None, None]
            np.maximum(self.alpha[ys_slice, xs_slice], alpha.max(axis=0), out=self.alpha[ys_slice, xs_slice])

    def mottle(self, rng: np.random.Generator, strength: float, cell: float) -> None:
        """Uneven pigment inside a patch: opacity times (1 - strength * noise in [0, 1])."""
        region = self.region
        if region is None:
            return
        rh, rw = region[0].stop - region[0].start, region[1].stop - region[1].start
        noise01 = np.clip(np.float32(0.5) + smooth_noise(rng, rh, rw, cell), 0.0, 1.0)
        self.alpha[region] *= np.float32(1.0) - np.float32(strength) * noise01

    @property
    def region(self) -> tuple[slice, slice] | None:
        y0, y1, x0, x1 = self.bounds
        return (slice(y0, y1), slice(x0, x1)) if y1 > y0 and x1 > x0 else None

    def _window(self, x0: float, x1: float, y0: float, y1: float):
        h, w = self.alpha.shape
        win = window(x0, x1, y0, y1, w, h)
        if win is not None:
            b = self.bounds
            b[0], b[1] = min(b[0], win[0].start), max(b[1], win[0].stop)
            b[2], b[3] = min(b[2], win[1].start), max(b[3], win[1].stop)
        return win


def window(x0: float, x1: float, y0: float, y1: float, w: int, h: int):
    """Pixel window covering [x0, x1) x [y0, y1), clipped; with the pixel-centre coordinates."""
    ix0, ix1 = max(0, int(math.floor(x0))), min(w, int(math.ceil(x1)))
    iy0, iy1 = max(0, int(math.floor(y0))), min(h, int(math.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    xs = np.arange(ix0, ix1, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(iy0, iy1, dtype=np.float32) + np.float32(0.5)
    return slice(iy0, iy1), slice(ix0, ix1), xs, ys


def ellipse(
    xs: np.ndarray,
    ys: np.ndarray,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle: float,
    soft: float,
    wobble: tuple[tuple[int, float, float], ...] = (),
) -> np.ndarray:
    """Opacity (len(ys), len(xs)) of a filled ellipse whose edge ramps over `soft` px.

    wobble: (k, amplitude, phase) harmonics of the radius, for irregular macules.
    """
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xs[None, :] - np.float32(cx), ys[:, None] - np.float32(cy)
    xr = (dx * np.float32(c) + dy * np.float32(s)) / np.float32(rx)
    yr = (dy * np.float32(c) - dx * np.float32(s)) / np.float32(ry)
    r = np.sqrt(xr * xr + yr * yr)
    if wobble:
        theta = np.arctan2(yr, xr)
        r /= 1.0 + sum(np.float32(amp) * np.cos(k * theta + np.float32(phase)) for k, amp, phase in wobble)
    alpha = np.clip(np.float32(0.5) + (1.0 - r) * np.float32(min(rx, ry) / soft), 0.0, 1.0)
    if soft > 2.0:  # blurred edge: smoothstep rather than a linear ramp
        alpha = alpha * alpha * (3.0 - 2.0 * alpha)
    return alpha


def ellipse_bounds(cx, cy, rx, ry, soft, wobble_max=0.0) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) px that hold every pixel an ellipse from `ellipse` touches."""
    reach = max(rx, ry) * (1.0 + wobble_max) + soft + 1.0
    return cx - reach, cx + reach, cy - reach, cy + reach


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise (h, w) with std about 0.5, varying over `cell` px.

    A random grid, one node per cell, upsampled bicubically by PIL as 8-bit (several times faster
    than float, and 8 bits are plenty for texture).
    """
    grid = rng.standard_normal((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)), dtype=np.float32)
    coarse = Image.fromarray(np.clip(grid * np.float32(40.0) + np.float32(128.0), 0, 255).astype(np.uint8))
    fine = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    return (fine - np.float32(128.0)) * np.float32(1 / 80)
