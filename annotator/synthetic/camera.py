"""What the camera does to a drawn scene: the device (camera or phone) and its photo size, a phone's colour
cast, blur (out of focus or shaken, in worlds that ask for it), the upscale from drawing resolution, sensor
grain, EXIF (Make, Model, Orientation; some phone photos stored rotated, orientation 6) and JPEG quality.

VOC boxes and sizes always refer to the photo as displayed (EXIF orientation applied).
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from annotator.boxes import boxes_to_photo
from annotator.synthetic.world import Optics, World
from annotator.types import Box

# Displayed (width, height) of a camera photo per size; phone photos are a little smaller (4:3).
SIZES: dict[str, tuple[int, int]] = {"small": (384, 288), "phone": (1600, 1200), "dslr": (5184, 3456)}
PHONE_SIZES: dict[str, tuple[int, int]] = {"small": (352, 264), "phone": (1280, 960), "dslr": (4032, 3024)}

CAMERAS: tuple[tuple[str, str], ...] = (
    ("Canon", "Canon EOS 800D"),
    ("Canon", "Canon EOS 550D"),
    ("NIKON CORPORATION", "NIKON D7500"),
)
PHONES: tuple[tuple[str, str], ...] = (("Apple", "iPhone 13"), ("samsung", "SM-G991B"), ("Google", "Pixel 7"))

_MAX_DRAW_SIDE = 1024  # larger photos are drawn at 1/k scale, then upscaled with fine grain added
_EXIF_MAKE, _EXIF_MODEL, _EXIF_ORIENTATION = 0x010F, 0x0110, 0x0112
_NORMAL_QUANTILES = [statistics.NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)]  # grain from bytes


@dataclass(frozen=True)
class Shot:
    """One photo's device and sizes: displayed (width, height) and the drawing resolution (draw_w, draw_h)."""

    phone: bool
    rotated: bool  # a phone held upright: a portrait photo, stored landscape with orientation 6
    width: int
    height: int
    draw_w: int
    draw_h: int

    def photo_boxes(self, draw_boxes: list[Box]) -> tuple[Box, ...]:
        """Boxes drawn at drawing resolution, scaled to the displayed photo."""
        sx, sy = self.width / self.draw_w, self.height / self.draw_h
        return tuple(boxes_to_photo(draw_boxes, sx, sy, self.width, self.height))


def choose_shot(rng: np.random.Generator, size: str, world: World) -> Shot:
    """Camera or phone (and whether held upright), the displayed size, and the size to draw at."""
    phone = bool(rng.random() < world.phone_fraction)
    rotated = phone and bool(rng.random() < world.rotated_fraction_of_phone)
    width, height = PHONE_SIZES[size] if phone else SIZES[size]
    if rotated:
        width, height = height, width
    factor = max(1, math.ceil(max(width, height) / _MAX_DRAW_SIDE))
    return Shot(phone, rotated, width, height, round(width / factor), round(height / factor))


@dataclass(frozen=True)
class Blur:
    """How one photo is blurred, at drawing resolution: out of focus (a Gaussian of sigma `size` px) or
    shaken (a straight streak `size` px long at `angle` radians)."""

    kind: Literal["defocus", "motion"]
    size: float
    angle: float = 0.0


def choose_blur(rng: np.random.Generator, optics: Optics, shot: Shot) -> Blur | None:
    """Sharp, out of focus or shaken, with the size scaled to the drawn photo's short side (four draws, always)."""
    kind, short = rng.random(), min(shot.draw_w, shot.draw_h)
    sigma, length, angle = (
        rng.uniform(*optics.defocus_sigma),
        rng.uniform(*optics.motion_length),
        rng.uniform(0, math.pi),
    )
    if kind < optics.defocus_fraction:
        return Blur("defocus", sigma * short)
    if kind < optics.defocus_fraction + optics.motion_fraction:
        return Blur("motion", length * short, angle)
    return None


def develop(rng: np.random.Generator, pixels: np.ndarray, shot: Shot, blur: Blur | None = None) -> Image.Image:
    """The drawn pixels (3, draw_h, draw_w) as the sensor saw them: colour cast, blur, full size, grain."""
    if shot.phone:  # a phone's auto white balance leaves a colour cast
        pixels *= (1.0 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)[:, None, None]
    if blur is not None and blur.kind == "motion":
        pixels = _streak(pixels, blur.size, blur.angle)
    photo = Image.merge("RGB", [Image.fromarray(plane) for plane in np.clip(pixels, 0, 255).astype(np.uint8)])
    if blur is not None and blur.kind == "defocus":
        photo = photo.filter(ImageFilter.GaussianBlur(blur.size))
    if (shot.draw_w, shot.draw_h) != (shot.width, shot.height):
        photo = photo.resize((shot.width, shot.height), Image.Resampling.BILINEAR)
    sigma = rng.uniform(4.0, 8.0) if shot.phone else rng.uniform(1.2, 2.2)
    return _add_grain(photo, rng, sigma, chroma=shot.phone)


def encode(rng: np.random.Generator, photo: Image.Image, shot: Shot, world: World) -> bytes:
    """The JPEG file: the device's EXIF Make/Model/Orientation, stored rotated when held upright."""
    make, model = PHONES[rng.integers(len(PHONES))] if shot.phone else CAMERAS[rng.integers(len(CAMERAS))]
    exif = Image.Exif()
    exif[_EXIF_MAKE] = make
    exif[_EXIF_MODEL] = model
    exif[_EXIF_ORIENTATION] = 6 if shot.rotated else 1
    if shot.rotated:  # orientation 6 means "rotate 90 degrees clockwise to display": store it counter-clockwise
        photo = photo.transpose(Image.Transpose.ROTATE_90)
    low, high = world.phone_jpeg_quality if shot.phone else world.camera_jpeg_quality
    quality = int(rng.integers(low, high))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def _streak(pixels: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Motion blur of (3, h, w): the mean of copies shifted along a `length`-px line at `angle`, edges repeated."""
    _, h, w = pixels.shape
    steps = np.linspace(-length / 2, length / 2, max(2, math.ceil(length) + 1))
    dxs, dys = np.rint(steps * math.cos(angle)).astype(int), np.rint(steps * math.sin(angle)).astype(int)
    pad = int(max(np.abs(dxs).max(), np.abs(dys).max()))
    padded = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    streak = np.zeros_like(pixels)
    for dx, dy in zip(dxs, dys, strict=True):
        streak += padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    streak /= np.float32(len(steps))
    return streak


def _add_grain(photo: Image.Image, rng: np.random.Generator, sigma: float, *, chroma: bool) -> Image.Image:
    """Gaussian sensor noise at full resolution: random bytes through a quantile table.

    chroma: independent noise per channel (a small phone sensor); otherwise luminance grain only.
    """
    table = [min(255, max(0, round(128 + sigma * q))) for q in _NORMAL_QUANTILES]
    planes = [
        Image.frombytes("L", photo.size, rng.bytes(photo.width * photo.height)).point(table)
        for _ in range(3 if chroma else 1)
    ]
    return ImageChops.add(photo, Image.merge("RGB", planes if chroma else planes * 3), scale=1.0, offset=-128)
