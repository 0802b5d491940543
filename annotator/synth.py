"""Synthetic clinical face photos of the six pigmented-lesion classes, with ground-truth VOC boxes.

Photo i depends only on (seed, i), so a data set is reproducible bit for bit and can be drawn in
parallel. Drawing is vectorised numpy at a reduced resolution; PIL upscales, adds grain and encodes.

Output layout (`generate(out, ...)`):
    out/images/synth_000000.jpg   the photos (EXIF Make/Model; some phone photos stored rotated, orientation 6)
    out/labels/synth_000000.xml   labelImg VOC for the labelled fraction only (the "seed set")
    out/truth/synth_000000.xml    labelImg VOC for every photo (the ground truth)
VOC boxes and <size> always refer to the photo as displayed (EXIF orientation applied).

How the boxes are drawn, as a dermatologist would draw them in labelImg:
    sl    one box per discrete macule (1-4 darker, larger, well-defined brown macules anywhere on the face)
    caf   one box per spot (a single uniform light-brown oval with a sharp smooth border)
    fre   one box per cluster region: the dots on each side of the facial midline (that cheek plus
          that half of the nose); a single box when one side has fewer than 3 dots
    mel   one box per patch: one per cheek, plus one on the forehead when present
    hori  one box per side: the speckles on each cheekbone
    ota   one box around the whole one-sided patch (around the eye, out to temple and cheek)
A box is the tight hull of the pixels the lesion visibly changes (some colour channel darkened by at
least `_VISIBLE` of the skin's value), after hair, eyes, brows, nostrils and mouth are masked out.

The confusable pairs differ by texture, not by colour or place: melasma is a blurred, continuous
(mottled) patch where Hori's nevus is grey-brown speckles (sometimes over a faint haze); freckles
are many small light dots where lentigines are a few larger dark macules (parameter ranges overlap
at the edges). A case-number card (not labelled) appears in a corner of about 15 % of photos.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

from annotator.boxes import boxes_to_photo
from annotator.classes import CLASS_NAMES
from annotator.errors import ConfigError
from annotator.formats.voc import voc_xml_bytes
from annotator.types import Box

# Displayed (width, height) of a camera photo per size; phone photos are a little smaller (4:3).
SIZES: dict[str, tuple[int, int]] = {"small": (384, 288), "phone": (1600, 1200), "dslr": (5184, 3456)}
PHONE_SIZES: dict[str, tuple[int, int]] = {"small": (352, 264), "phone": (1280, 960), "dslr": (4032, 3024)}

PHONE_FRACTION = 0.20
ROTATED_FRACTION_OF_PHONE = 1 / 3
CARD_FRACTION = 0.15
CAMERAS: tuple[tuple[str, str], ...] = (
    ("Canon", "Canon EOS 800D"),
    ("Canon", "Canon EOS 550D"),
    ("NIKON CORPORATION", "NIKON D7500"),
)
PHONES: tuple[tuple[str, str], ...] = (("Apple", "iPhone 13"), ("samsung", "SM-G991B"), ("Google", "Pixel 7"))

_MAX_DRAW_SIDE = 1024  # larger photos are drawn at 1/k scale, then upscaled with fine grain added
_VISIBLE = 0.04  # a pixel belongs to a lesion when the pigment darkens some channel by >= 4 %
_EXIF_MAKE, _EXIF_MODEL, _EXIF_ORIENTATION = 0x010F, 0x0110, 0x0112
_NORMAL_QUANTILES = [statistics.NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)]  # grain from bytes

# Each face-wide class covers a region (cheeks, one side) and so appears at most once per photo;
# the discrete ones (sl, caf) are placed around them. Single-class weights compensate for the
# discrete classes' extra appearances in 2- and 3-class photos, so all six are balanced overall.
_FACE_WIDE = ("fre", "mel", "hori", "ota")
_DISCRETE = ("sl", "caf")
_SINGLE_WEIGHTS = {"fre": 3 / 14, "mel": 3 / 14, "hori": 3 / 14, "ota": 3 / 14, "sl": 1 / 14, "caf": 1 / 14}

# Per-channel darkening per unit of pigment depth: epidermal melanin is brown (blue absorbed most),
# dermal melanin looks blue-grey (Tyndall effect: red absorbed most).
_BROWN = np.array([0.55, 0.75, 0.90], np.float32)
_CAF = np.array([0.45, 0.65, 0.90], np.float32)
_GREY_BROWN = np.array([0.75, 0.78, 0.65], np.float32)
_BLUE_GREY = np.array([1.00, 0.78, 0.38], np.float32)

_SKIN_LIGHT = np.array([224, 172, 138], np.float32)  # Fitzpatrick III
_SKIN_MEDIUM = np.array([170, 120, 85], np.float32)  # Fitzpatrick IV
_BACKGROUNDS = np.array(
    [[70, 110, 160], [60, 130, 110], [150, 150, 150], [210, 200, 180], [40, 45, 55], [120, 90, 140], [200, 210, 220]],
    np.float32,
)


@dataclass(frozen=True)
class SynthSummary:
    images: int
    labelled: int
    phone: int
    rotated: int
    boxes_by_class: dict[str, int]
    photos_by_class: dict[str, int]
    out: Path


@dataclass(frozen=True)
class _PhotoResult:
    phone: bool
    rotated: bool
    boxes: tuple[Box, ...]


def generate(
    out: Path,
    *,
    images: int,
    labelled_fraction: float = 0.38,
    seed: int = 0,
    size: str = "small",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write `images` synthetic photos with truth VOC for all and label VOC for round(images * labelled_fraction).

    Which photos are labelled depends on (seed, images); each photo's pixels and boxes on (seed, i) only.
    progress: called with the number of photos just finished (an increment, e.g. `bar.advance`).
    workers > 1 draws in spawned processes, so a calling script needs the `if __name__ == "__main__":` guard.
    Refuses an `out` whose images/ folder already holds files, so stale photos never mix in.
    """
    out = Path(out)
    if images < 0:
        raise ConfigError(f"--images must be 0 or more, not {images}")
    if not 0.0 <= labelled_fraction <= 1.0:
        raise ConfigError(f"the labelled fraction must be between 0 and 1, not {labelled_fraction}")
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}")
    image_dir = out / "images"
    if image_dir.is_dir() and any(image_dir.iterdir()):
        raise ConfigError(f"{image_dir} already holds photos; choose an empty output folder or delete it")
    for sub in ("images", "labels", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    labelled = _labelled_indices(seed, images, labelled_fraction)
    jobs = [(i, i in labelled) for i in range(images)]
    results: list[_PhotoResult] = []
    for chunk_results in _run_chunks(out, seed, size, jobs, workers):
        results.extend(chunk_results)
        if progress is not None:
            progress(len(chunk_results))
    return _summarise(out, results, len(labelled))


def _labelled_indices(seed: int, images: int, fraction: float) -> set[int]:
    count = int(round(images * fraction))
    return {int(i) for i in np.random.default_rng([seed, 0x5EED]).permutation(images)[:count]}


def _run_chunks(
    out: Path, seed: int, size: str, jobs: list[tuple[int, bool]], workers: int
) -> Iterator[list[_PhotoResult]]:
    chunk = max(1, min(64, math.ceil(len(jobs) / (workers * 4))))
    chunks = [(out, seed, size, jobs[k : k + chunk]) for k in range(0, len(jobs), chunk)]
    if workers == 1 or len(chunks) <= 1:
        for args in chunks:
            yield _generate_chunk(args)
        return
    # spawn, not fork: the parent may hold torch/threads that do not survive a fork
    with multiprocessing.get_context("spawn").Pool(min(workers, len(chunks))) as pool:
        yield from pool.imap_unordered(_generate_chunk, chunks)


def _generate_chunk(args: tuple[Path, int, str, list[tuple[int, bool]]]) -> list[_PhotoResult]:
    out, seed, size, jobs = args
    return [_generate_one(out, seed, i, size, labelled) for i, labelled in jobs]


def _summarise(out: Path, results: list[_PhotoResult], labelled: int) -> SynthSummary:
    boxes_by_class = dict.fromkeys(CLASS_NAMES, 0)
    photos_by_class = dict.fromkeys(CLASS_NAMES, 0)
    for result in results:
        for box in result.boxes:
            boxes_by_class[box.label] += 1
        for label in {box.label for box in result.boxes}:
            photos_by_class[label] += 1
    return SynthSummary(
        images=len(results),
        labelled=labelled,
        phone=sum(r.phone for r in results),
        rotated=sum(r.rotated for r in results),
        boxes_by_class=boxes_by_class,
        photos_by_class=photos_by_class,
        out=out,
    )


# ---- one photo ---------------------------------------------------------------------------


def _generate_one(out: Path, seed: int, index: int, size: str, labelled: bool) -> _PhotoResult:
    rng = np.random.default_rng([seed, index])
    phone = bool(rng.random() < PHONE_FRACTION)
    rotated = phone and bool(rng.random() < ROTATED_FRACTION_OF_PHONE)
    width, height = PHONE_SIZES[size] if phone else SIZES[size]
    if rotated:  # held upright: a portrait photo, stored landscape with orientation 6
        width, height = height, width
    factor = max(1, math.ceil(max(width, height) / _MAX_DRAW_SIDE))
    draw_w, draw_h = round(width / factor), round(height / factor)

    pixels, draw_boxes = _render(rng, draw_w, draw_h, _choose_classes(rng), card=bool(rng.random() < CARD_FRACTION))
    if phone:  # a phone's auto white balance leaves a colour cast
        pixels *= (1.0 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)[:, None, None]
    photo = Image.merge("RGB", [Image.fromarray(plane) for plane in np.clip(pixels, 0, 255).astype(np.uint8)])
    if (draw_w, draw_h) != (width, height):
        photo = photo.resize((width, height), Image.Resampling.BILINEAR)
    photo = _add_grain(photo, rng, rng.uniform(4.0, 8.0) if phone else rng.uniform(1.2, 2.2), chroma=phone)

    sx, sy = width / draw_w, height / draw_h
    boxes = tuple(boxes_to_photo(draw_boxes, sx, sy, width, height))

    make, model = PHONES[rng.integers(len(PHONES))] if phone else CAMERAS[rng.integers(len(CAMERAS))]
    exif = Image.Exif()
    exif[_EXIF_MAKE] = make
    exif[_EXIF_MODEL] = model
    exif[_EXIF_ORIENTATION] = 6 if rotated else 1
    if rotated:  # orientation 6 means "rotate 90 degrees clockwise to display": store it counter-clockwise
        photo = photo.transpose(Image.Transpose.ROTATE_90)
    quality = int(rng.integers(60, 76)) if phone else int(rng.integers(88, 93))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())

    stem = f"synth_{index:06d}"
    image_path = out / "images" / f"{stem}.jpg"
    image_path.write_bytes(buffer.getvalue())
    # Plain writes, not fsutil's fsync'd atomic ones: a fresh folder of regenerable files needs no
    # durability, and an fsync per file would cost more than drawing the photo.
    xml = voc_xml_bytes(
        filename=image_path.name,
        path=str(image_path.resolve()),
        width=width,
        height=height,
        depth=3,
        boxes=boxes,
        folder="images",
    )
    (out / "truth" / f"{stem}.xml").write_bytes(xml)
    if labelled:
        (out / "labels" / f"{stem}.xml").write_bytes(xml)
    return _PhotoResult(phone=phone, rotated=rotated, boxes=boxes)


def _choose_classes(rng: np.random.Generator) -> tuple[str, ...]:
    roll = rng.random()
    if roll < 0.70:
        names = list(_SINGLE_WEIGHTS)
        return (names[rng.choice(len(names), p=list(_SINGLE_WEIGHTS.values()))],)
    face_wide = _FACE_WIDE[rng.integers(len(_FACE_WIDE))]
    if roll < 0.95:
        return face_wide, _DISCRETE[rng.integers(len(_DISCRETE))]
    return face_wide, "caf", "sl"


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


# ---- drawing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Face:
    """The face ellipse: centre, half-width a, half-height b (px), and a small head roll.

    Face coordinates (u, v): u = 1 at the face's side edge, v = -1 at the top and +1 at the chin.
    """

    cx: float
    cy: float
    a: float
    b: float
    roll: float

    def px(self, u: float, v: float) -> tuple[float, float]:
        c, s = math.cos(self.roll), math.sin(self.roll)
        return self.cx + u * self.a * c - v * self.b * s, self.cy + u * self.a * s + v * self.b * c


@dataclass
class _Canvas:
    """What the lesion drawers share: the face, where skin is free to hold pigment, and scales.

    skin: (h, w) opacity of lesion-able skin (face minus hair, eyes, brows, nostrils, mouth).
    unit: 1 % of the face half-width in px. sharp: the px width of a sharp edge.
    occupied: (x0, y0, x1, y1) px of lesions drawn so far, kept clear by discrete lesions.
    """

    face: _Face
    skin: np.ndarray
    unit: float
    sharp: float
    occupied: list[tuple[float, float, float, float]]


class _Layer:
    """One boxed lesion: its opacity (h, w) over the canvas, the window drawn in, and its pigment."""

    def __init__(self, label: str, canvas: _Canvas, depth: float, colour: np.ndarray) -> None:
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
        """Add a filled ellipse (see `_ellipse`) of opacity `peak`."""
        win = self._window(*_ellipse_bounds(cx, cy, rx, ry, soft, 0.3 if wobble else 0.0))
        if win is None:
            return
        ys_slice, xs_slice, xs, ys = win
        alpha = _ellipse(xs, ys, cx, cy, rx, ry, angle, soft, wobble)
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
        noise01 = np.clip(np.float32(0.5) + _smooth_noise(rng, rh, rw, cell), 0.0, 1.0)
        self.alpha[region] *= np.float32(1.0) - np.float32(strength) * noise01

    @property
    def region(self) -> tuple[slice, slice] | None:
        y0, y1, x0, x1 = self.bounds
        return (slice(y0, y1), slice(x0, x1)) if y1 > y0 and x1 > x0 else None

    def _window(self, x0: float, x1: float, y0: float, y1: float):
        h, w = self.alpha.shape
        win = _window(x0, x1, y0, y1, w, h)
        if win is not None:
            b = self.bounds
            b[0], b[1] = min(b[0], win[0].start), max(b[1], win[0].stop)
            b[2], b[3] = min(b[2], win[1].start), max(b[3], win[1].stop)
        return win


def _window(x0: float, x1: float, y0: float, y1: float, w: int, h: int):
    """Pixel window covering [x0, x1) x [y0, y1), clipped; with the pixel-centre coordinates."""
    ix0, ix1 = max(0, int(math.floor(x0))), min(w, int(math.ceil(x1)))
    iy0, iy1 = max(0, int(math.floor(y0))), min(h, int(math.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    xs = np.arange(ix0, ix1, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(iy0, iy1, dtype=np.float32) + np.float32(0.5)
    return slice(iy0, iy1), slice(ix0, ix1), xs, ys


def _ellipse(
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


def _ellipse_bounds(cx, cy, rx, ry, soft, wobble_max=0.0) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) px that hold every pixel an ellipse from `_ellipse` touches."""
    reach = max(rx, ry) * (1.0 + wobble_max) + soft + 1.0
    return cx - reach, cx + reach, cy - reach, cy + reach


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise (h, w) with std about 0.5, varying over `cell` px.

    A random grid, one node per cell, upsampled bicubically by PIL as 8-bit (several times faster
    than float, and 8 bits are plenty for texture).
    """
    grid = rng.standard_normal((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)), dtype=np.float32)
    coarse = Image.fromarray(np.clip(grid * np.float32(40.0) + np.float32(128.0), 0, 255).astype(np.uint8))
    fine = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    return (fine - np.float32(128.0)) * np.float32(1 / 80)


def _lerp(img: np.ndarray, ys: slice, xs: slice, alpha: np.ndarray, colour) -> None:
    """Paint `colour` over the planar image img[:, ys, xs] with opacity alpha (h, w), in place."""
    target = img[:, ys, xs]
    target += (np.asarray(colour, np.float32)[:, None, None] - target) * alpha[None]


def _render(
    rng: np.random.Generator, w: int, h: int, classes: tuple[str, ...], card: bool
) -> tuple[np.ndarray, list[Box]]:
    """Draw one photo at (h, w). Returns planar float32 RGB (3, h, w) in 0..255 and its boxes in this frame.

    Planar, because numpy broadcasts a (h, w) opacity over (3, h, w) far faster than over (h, w, 3).
    """
    portrait = h > w
    b = h * rng.uniform(0.34, 0.40) if portrait else h * rng.uniform(0.36, 0.43)
    a = min(b / rng.uniform(1.25, 1.45), 0.42 * w)
    face = _Face(
        cx=w * rng.uniform(0.44, 0.56), cy=h * rng.uniform(0.50, 0.57), a=a, b=b, roll=rng.uniform(-0.08, 0.08)
    )

    bg_colour = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] * (1.0 + rng.uniform(-0.15, 0.15, 3)).astype(np.float32)
    rows = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
    gradient = np.float32(rng.uniform(0.75, 0.9)) + np.float32(rng.uniform(0.1, 0.3)) * (np.float32(1.0) - rows)
    img = np.empty((3, h, w), np.float32)
    img[:] = bg_colour[:, None, None] * gradient[None, :, None]

    # hair, face and neck lie in a band of columns around the face: draw them there only
    reach = 1.13 * a + 1.2 * b * abs(math.sin(face.roll)) + 3.0
    c0, c1 = max(0, int(face.cx - reach)), min(w, int(math.ceil(face.cx + reach)))
    head = np.ascontiguousarray(img[:, :, c0:c1])
    head_boxes = _draw_head(rng, head, _Face(face.cx - c0, face.cy, a, b, face.roll), classes)
    img[:, :, c0:c1] = head
    boxes = [Box(box.label, box.x1 + c0, box.y1, box.x2 + c0, box.y2) for box in head_boxes]

    # exposure and colour temperature of the whole photo
    warmth = rng.uniform(-0.06, 0.08)
    img *= (np.float32(rng.uniform(0.85, 1.10)) * np.array([1 + warmth, 1.0, 1 - warmth], np.float32))[:, None, None]
    if card:
        _draw_card(rng, img, boxes)
    return img, boxes


def _draw_head(rng: np.random.Generator, img: np.ndarray, face: _Face, classes: tuple[str, ...]) -> list[Box]:
    """Paint hair, face (with lesions and features) and neck over the background img (3, h, w), in place.

    Returns the lesion boxes in img's frame.
    """
    _, h, w = img.shape
    a, b = face.a, face.b
    unit = a / 100.0  # 1 % of the face half-width, in px; sharp edges stay ~1 px at any scale
    sharp = max(0.7, 0.8 * a / 110.0)

    xs = np.arange(w, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(h, dtype=np.float32) + np.float32(0.5)
    c, s = np.float32(math.cos(face.roll)), np.float32(math.sin(face.roll))
    dx, dy = xs[None, :] - np.float32(face.cx), ys[:, None] - np.float32(face.cy)
    u = (dx * c + dy * s) / np.float32(a)  # (h, w)
    v = (dy * c - dx * s) / np.float32(b)  # (h, w)

    # face: an egg (narrower at the jaw), neck below, hair above and at the sides
    jaw = np.float32(1.0) - np.float32(0.16) * np.clip(v, 0.0, 1.0)
    uj = u / jaw
    r2 = uj * uj + v * v
    face_alpha = np.clip((np.float32(1.0) - np.sqrt(r2)) * np.float32(a / 1.2) + np.float32(0.5), 0.0, 1.0)
    neck_half = rng.uniform(0.40, 0.50)
    neck_alpha = np.clip((np.float32(neck_half) - np.abs(u)) * np.float32(a / 1.2) + np.float32(0.5), 0.0, 1.0)
    neck_alpha *= v > 0.55
    hairline = rng.uniform(-0.70, -0.52)
    wave_amp, wave_freq, wave_phase = rng.uniform(0.0, 0.06), rng.uniform(3.0, 8.0), rng.uniform(0, 2 * math.pi)
    hair_line_v = hairline + 0.30 * u * u + wave_amp * np.sin(wave_freq * u + wave_phase)
    hair_outer = np.clip(
        (1.0 - np.sqrt((u / 1.13) ** 2 + ((v + 0.06) / 1.14) ** 2)) * np.float32(a / 1.5) + 0.5, 0.0, 1.0
    )
    hair_bottom = rng.uniform(-0.15, 0.55)
    above_line = np.clip((hair_line_v - v) * np.float32(b / 1.5) + np.float32(0.5), 0.0, 1.0)
    sides = (np.float32(1.0) - face_alpha) * np.clip((np.float32(hair_bottom) - v) * np.float32(b / 3.0) + 0.5, 0, 1)
    hair = hair_outer * np.maximum(above_line, sides)

    # features: eyes, brows, nostrils, mouth (painted later; masked out of lesions now)
    features: list[tuple[slice, slice, np.ndarray, np.ndarray | tuple]] = []
    block = np.zeros((h, w), np.float32)

    def feature(u0, v0, rx, ry, colour, soft=sharp, block_scale=0.0, angle=0.0):
        """An ellipse to paint over the skin; block_scale > 0 also keeps lesions off a margin around it."""
        x, y = face.px(u0, v0)
        win = _window(*_ellipse_bounds(x, y, rx, ry, soft), w, h)
        if win is None:
            return
        features.append((win[0], win[1], _ellipse(win[2], win[3], x, y, rx, ry, face.roll + angle, soft), colour))
        if block_scale:
            brx, bry = rx * block_scale, ry * block_scale * 1.3
            bwin = _window(*_ellipse_bounds(x, y, brx, bry, sharp), w, h)
            if bwin is not None:
                balpha = _ellipse(bwin[2], bwin[3], x, y, brx, bry, face.roll, sharp)
                np.maximum(block[bwin[0], bwin[1]], balpha, out=block[bwin[0], bwin[1]])

    hair_colour = np.float32(rng.uniform(18, 70)) * np.array(
        [1.0, rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.8)], np.float32
    )
    eye_u, eye_v = rng.uniform(0.33, 0.40), rng.uniform(-0.17, -0.08)
    eye_rx = 17 * unit * rng.uniform(0.9, 1.1)
    iris_colour = (rng.uniform(40, 80), rng.uniform(25, 50), rng.uniform(15, 35))
    for side in (-1, 1):
        feature(
            side * eye_u, eye_v - 0.015, eye_rx * 1.15, eye_rx * 0.55, ("shade", 0.80), soft=3 * sharp, block_scale=1.3
        )
        feature(side * eye_u, eye_v, eye_rx, eye_rx * 0.42, (232, 226, 220))
        feature(side * eye_u, eye_v, eye_rx * 0.40, eye_rx * 0.40, iris_colour)
        feature(side * eye_u, eye_v, eye_rx * 0.17, eye_rx * 0.17, (15, 12, 12))
        feature(
            side * eye_u,
            eye_v - 0.175,
            eye_rx * 1.35,
            eye_rx * 0.24,
            hair_colour,
            soft=2 * sharp,
            block_scale=1.25,
            angle=side * -0.08,
        )
        feature(side * 0.075, 0.31, 4.2 * unit, 2.4 * unit, ("shade", 0.45), soft=sharp * 1.5, block_scale=1.5)
    light_u = rng.uniform(-0.6, 0.6)  # horizontal light direction, also sets which side the nose shades
    feature(-0.09 * np.sign(light_u or 1.0), 0.10, 4.5 * unit, 0.17 * b, ("shade", 0.88), soft=4 * sharp)
    mouth_v = rng.uniform(0.50, 0.58)
    lip = (rng.uniform(150, 190), rng.uniform(80, 105), rng.uniform(80, 100))
    feature(0.0, mouth_v, 26 * unit * rng.uniform(0.9, 1.1), 0.055 * b, lip, soft=1.5 * sharp, block_scale=1.25)
    feature(0.0, mouth_v, 24 * unit, 0.008 * b + 0.6, (70, 35, 35), soft=sharp)
    skin = face_alpha * (np.float32(1.0) - hair) * (np.float32(1.0) - block)

    # skin albedo: a Fitzpatrick III-IV tone with gentle low-frequency texture; the same noise
    # field, stronger, gives the hair its sheen (skin and hair never overlap)
    tone = _SKIN_LIGHT + (_SKIN_MEDIUM - _SKIN_LIGHT) * np.float32(rng.uniform(0, 1))
    tone = tone * (1.0 + rng.uniform(-0.03, 0.03, 3)).astype(np.float32)
    texture_noise = _smooth_noise(rng, h, w, cell=12 * unit)
    albedo = tone[:, None, None] * (np.float32(1.0) + np.float32(0.035) * texture_noise)[None]  # (3, h, w)

    layers = _draw_lesions(rng, _Canvas(face, skin, unit, sharp, occupied=[]), classes)
    boxes: list[Box] = []
    for layer in layers:
        region = layer.region
        if region is None:
            continue
        alpha = layer.alpha[region] * skin[region]
        box = _hull(alpha, layer.depth * float(layer.colour.max()), region, layer.label)
        if box is None:
            continue
        boxes.append(box)
        pigment = (np.float32(layer.depth) * layer.colour)[:, None, None]
        albedo[:, region[0], region[1]] *= np.float32(1.0) - alpha[None] * pigment

    for ys_slice, xs_slice, alpha, colour in features:
        if isinstance(colour[0], str):  # ("shade", factor): darken, keep the skin's hue
            albedo[:, ys_slice, xs_slice] *= np.float32(1.0) - alpha[None] * np.float32(1.0 - colour[1])
        else:
            _lerp(albedo, ys_slice, xs_slice, alpha, colour)

    # lighting: Lambert on an ellipsoid face, the neck in the chin's shadow
    light = np.array([light_u, rng.uniform(-0.5, 0.0), 1.0], np.float32)
    light /= np.linalg.norm(light)
    nz = np.sqrt(np.clip(np.float32(1.0) - r2, 0.02, 1.0))  # with (uj, v), a unit normal inside the face
    diffuse = np.clip(uj * light[0] + v * light[1] + nz * light[2], 0.0, 1.0)
    neck_shade = np.float32(rng.uniform(0.55, 0.7))
    shade = np.float32(rng.uniform(0.35, 0.5)) + np.float32(0.62) * diffuse - neck_shade
    shade *= face_alpha
    shade += neck_shade
    albedo *= shade[None]

    # img += (paint - img) * alpha, in place: (3, h, w) temporaries cost more than the arithmetic
    paint = albedo
    paint -= img
    paint *= np.maximum(face_alpha, neck_alpha)[None]
    img += paint
    strands = rng.standard_normal(w, dtype=np.float32)  # brightness per pixel column: vertical strands
    strands = (strands + np.roll(strands, 1) + np.roll(strands, -1))[None, :] * np.float32(0.06)
    hair_shine = np.float32(1.0) + np.float32(0.25) * texture_noise + strands
    np.multiply(hair_colour[:, None, None], hair_shine[None], out=paint)
    paint -= img
    paint *= hair[None]
    img += paint
    return boxes


def _hull(alpha: np.ndarray, strength: float, region: tuple[slice, slice], label: str) -> Box | None:
    """Tight box around the visible pixels of one lesion; None when nothing is visible."""
    visible = alpha * np.float32(strength) >= _VISIBLE
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if len(rows) == 0 or rows[-1] - rows[0] < 1 or cols[-1] - cols[0] < 1:
        return None
    y0, x0 = region[0].start, region[1].start
    return Box(label, float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1))


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


# ---- lesions -----------------------------------------------------------------------------


def _draw_lesions(rng: np.random.Generator, canvas: _Canvas, classes: tuple[str, ...]) -> list[_Layer]:
    layers: list[_Layer] = []
    for label in sorted(classes, key=lambda name: (name not in _FACE_WIDE, name)):  # face-wide first
        new = _DRAWERS[label](rng, canvas)
        for layer in new:
            region = layer.region
            if region is not None:
                canvas.occupied.append((region[1].start, region[0].start, region[1].stop, region[0].stop))
        layers.extend(new)
    return layers


def _draw_fre(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Freckles: 15-40 small light-brown dots in a butterfly over the nose and both cheeks."""
    n = int(rng.integers(15, 41))
    edge_case = rng.random() < 0.15  # fewer, larger, darker dots: nearer lentigines
    where = rng.choice(3, size=n, p=[0.2, 0.4, 0.4])  # nose, left cheek, right cheek
    side = np.where(where == 1, -1.0, 1.0)
    u = np.where(where == 0, rng.normal(0.0, 0.07, n), side * np.clip(np.abs(rng.normal(0.42, 0.13, n)), 0.15, 0.72))
    v = np.where(where == 0, rng.uniform(-0.05, 0.27, n), np.clip(rng.normal(0.16, 0.10, n), -0.02, 0.40))
    radius = canvas.unit * (rng.uniform(2.0, 3.2, n) if edge_case else rng.uniform(1.2, 2.6, n))
    radius = np.maximum(radius, 0.9).astype(np.float32)
    peaks = rng.uniform(0.6, 1.0, n).astype(np.float32)
    depth = rng.uniform(0.40, 0.50) if edge_case else rng.uniform(0.22, 0.40)
    left = u < 0
    groups = [left, ~left] if min(left.sum(), (~left).sum()) >= 3 else [np.ones(n, bool)]
    layers = []
    for members in groups:
        layer = _Layer("fre", canvas, depth, _BROWN)
        x, y = _to_px(canvas.face, u[members], v[members])
        layer.dots(x, y, radius[members], peaks[members], soft=canvas.sharp)
        layers.append(layer)
    return layers


def _draw_sl(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Solar lentigines: 1-4 larger, darker, well-defined irregular brown macules anywhere on the face."""
    layers = []
    for _ in range(int(rng.integers(1, 5))):
        edge_case = rng.random() < 0.2  # small and light: nearer a freckle
        rx = canvas.unit * (rng.uniform(3.0, 4.5) if edge_case else rng.uniform(4.5, 10.0))
        ry = rx * rng.uniform(0.65, 1.0)
        wobble = tuple((k, rng.uniform(0.02, 0.10), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        spot = _free_spot(rng, canvas, rx * 1.35)
        if spot is None:
            continue
        layer = _Layer("sl", canvas, rng.uniform(0.33, 0.42) if edge_case else rng.uniform(0.42, 0.70), _BROWN)
        layer.ellipse(spot[0], spot[1], rx, ry, rng.uniform(0, math.pi), canvas.sharp, wobble=wobble)
        canvas.occupied.append((spot[0] - rx * 1.3, spot[1] - rx * 1.3, spot[0] + rx * 1.3, spot[1] + rx * 1.3))
        layers.append(layer)
    return layers


def _draw_caf(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Cafe-au-lait spot: one uniform light-brown oval with a sharp, smooth border."""
    rx = canvas.unit * rng.uniform(9.0, 22.0)
    ry = rx * rng.uniform(0.55, 0.9)
    for scale in (1.0, 0.7, 0.5):  # shrink when the face is crowded
        spot = _free_spot(rng, canvas, rx * scale)
        if spot is not None:
            layer = _Layer("caf", canvas, rng.uniform(0.26, 0.40), _CAF)
            layer.ellipse(spot[0], spot[1], rx * scale, ry * scale, rng.uniform(0, math.pi), canvas.sharp)
            return [layer]
    return []


def _draw_mel(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Melasma: symmetric blurred-edge mottled brown patches on both cheeks, sometimes the forehead."""
    face = canvas.face
    depth = rng.uniform(0.20, 0.40)
    mottle = rng.uniform(0.45, 0.7) if rng.random() < 0.2 else rng.uniform(0.15, 0.4)  # blotchy: nearer Hori's
    cu, cv = rng.uniform(0.36, 0.48), rng.uniform(0.08, 0.22)
    rx, ry = face.a * rng.uniform(0.18, 0.30), face.b * rng.uniform(0.12, 0.20)
    blur = rng.uniform(0.5, 0.9)
    patches = [
        (
            side * (cu + rng.uniform(-0.03, 0.03)),
            cv + rng.uniform(-0.03, 0.03),
            rx * rng.uniform(0.9, 1.1),
            ry * rng.uniform(0.9, 1.1),
            side * rng.uniform(-0.4, 0.1),
        )
        for side in (-1, 1)
    ]
    if rng.random() < 0.25:
        patches.append(
            (
                rng.uniform(-0.08, 0.08),
                rng.uniform(-0.42, -0.32),
                face.a * rng.uniform(0.2, 0.32),
                face.b * rng.uniform(0.07, 0.11),
                0.0,
            )
        )
    layers = []
    for pu, pv, prx, pry, angle in patches:
        layer = _Layer("mel", canvas, depth, _BROWN)
        x, y = face.px(pu, pv)
        layer.ellipse(x, y, prx, pry, face.roll + angle, soft=blur * min(prx, pry))
        layer.mottle(rng, mottle, cell=5 * canvas.unit)
        layers.append(layer)
    return layers


def _draw_hori(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Hori's nevus: grey-brown small speckles on both cheekbones, sometimes over a faint haze."""
    face = canvas.face
    depth = rng.uniform(0.30, 0.50)
    cu, cv = rng.uniform(0.40, 0.52), rng.uniform(-0.01, 0.10)
    ru, rv = rng.uniform(0.10, 0.17), rng.uniform(0.06, 0.11)
    haze = rng.uniform(0.2, 0.4) if rng.random() < 0.35 else 0.0  # a blurred background: nearer melasma
    layers = []
    for side in (-1, 1):
        layer = _Layer("hori", canvas, depth, _GREY_BROWN)
        n = int(rng.integers(15, 41))
        angle, dist = rng.uniform(0, 2 * math.pi, n), np.sqrt(rng.uniform(0, 1, n))
        u = side * (cu + rng.uniform(-0.02, 0.02)) + ru * dist * np.cos(angle)
        v = cv + rng.uniform(-0.02, 0.02) + rv * dist * np.sin(angle)
        x, y = _to_px(face, u, v)
        radius = np.maximum(canvas.unit * rng.uniform(1.0, 2.2, n), 0.8).astype(np.float32)
        layer.dots(x, y, radius, rng.uniform(0.55, 1.0, n).astype(np.float32), soft=canvas.sharp)
        if haze:
            hx, hy = face.px(side * cu, cv)
            hrx, hry = ru * face.a, rv * face.b
            layer.ellipse(hx, hy, hrx, hry, face.roll, soft=0.6 * min(hrx, hry), peak=haze)
        layers.append(layer)
    return layers


def _draw_ota(rng: np.random.Generator, canvas: _Canvas) -> list[_Layer]:
    """Nevus of Ota: one-sided blue-grey mottled patch around one eye, out to the temple and cheek."""
    face = canvas.face
    side = -1 if rng.random() < 0.5 else 1
    layer = _Layer("ota", canvas, rng.uniform(0.35, 0.55), _BLUE_GREY)
    parts = [(0.37, -0.12, 0.26, 0.17)]  # around the eye: (u, v, rx in a, ry in b)
    if rng.random() < 0.8:
        parts.append((0.72, -0.28, rng.uniform(0.14, 0.22), rng.uniform(0.14, 0.22)))  # temple
    if rng.random() < 0.7:
        parts.append((0.45, 0.14, rng.uniform(0.16, 0.24), rng.uniform(0.12, 0.18)))  # cheek
    if rng.random() < 0.3:
        parts.append((0.30, -0.38, rng.uniform(0.12, 0.2), rng.uniform(0.08, 0.12)))  # forehead
    for pu, pv, pru, prv in parts:
        x, y = face.px(side * (pu + rng.uniform(-0.04, 0.04)), pv + rng.uniform(-0.03, 0.03))
        rx, ry = pru * face.a * rng.uniform(0.85, 1.15), prv * face.b * rng.uniform(0.85, 1.15)
        layer.ellipse(
            x,
            y,
            rx,
            ry,
            face.roll + rng.uniform(-0.5, 0.5),
            soft=rng.uniform(0.4, 0.7) * min(rx, ry),
            peak=rng.uniform(0.75, 1.0),
        )
    layer.mottle(rng, rng.uniform(0.3, 0.5), cell=3 * canvas.unit)
    return [layer]


_DRAWERS = {"sl": _draw_sl, "fre": _draw_fre, "mel": _draw_mel, "caf": _draw_caf, "ota": _draw_ota, "hori": _draw_hori}
assert set(_DRAWERS) == set(CLASS_NAMES), "synth draws exactly the six PSL classes"


def _to_px(face: _Face, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = face.px(u, v)  # type: ignore[arg-type]  # numpy broadcasting through the scalar maths
    return np.asarray(x, np.float32), np.asarray(y, np.float32)


def _free_spot(rng: np.random.Generator, canvas: _Canvas, reach: float) -> tuple[float, float] | None:
    """A centre (px) for a discrete lesion: on clear skin and clear of other lesions; None after 40 tries."""
    h, w = canvas.skin.shape
    for _ in range(40):
        u, v = rng.uniform(-0.85, 0.85), rng.uniform(-0.60, 0.85)
        if u * u + v * v > 0.8:
            continue
        x, y = canvas.face.px(u, v)
        x0, x1, y0, y1 = int(x - reach), int(x + reach) + 1, int(y - reach), int(y + reach) + 1
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            continue
        if canvas.skin[y0:y1, x0:x1].min() < 0.98:
            continue
        if any(ox0 < x1 and x0 < ox1 and oy0 < y1 and y0 < oy1 for ox0, oy0, ox1, oy1 in canvas.occupied):
            continue
        return x, y
    return None
