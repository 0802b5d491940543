"""Photo inspection and decoding: one frame everywhere, the photo as displayed.

EXIF orientation is applied (as browsers, Label Studio and OpenCV do), so width/height and
boxes always refer to the displayed photo. `decode_displayed` uses JPEG DCT scaling (PIL
`draft`) to decode 18 MP photos at a fraction of the cost, and reports the scale back to the
full displayed frame.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotator.errors import InputFileError
from annotator.types import DeviceClass

MAX_PIXELS = 60_000_000  # study photos are 18 MP; anything past this is refused (decompression-bomb guard)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}

_PHONE_MAKES = (
    "apple",
    "samsung",
    "google",
    "huawei",
    "xiaomi",
    "oppo",
    "vivo",
    "oneplus",
    "motorola",
    "lg electronics",
    "honor",
    "realme",
    "nokia",
    "asus",
)
_PHONE_MODEL_HINTS = ("iphone", "galaxy", "pixel", "xperia", "redmi", "sm-")
_CAMERA_MAKES = (
    "canon",
    "nikon",
    "sony",
    "fujifilm",
    "olympus",
    "pentax",
    "ricoh",
    "panasonic",
    "leica",
    "hasselblad",
    "sigma",
    "om digital",
)

_EXIF_ORIENTATION, _EXIF_MAKE, _EXIF_MODEL = 0x0112, 0x010F, 0x0110


@dataclass(frozen=True)
class PhotoInfo:
    sha256: str
    width: int  # displayed
    height: int  # displayed
    raw_width: int
    raw_height: int
    orientation: int
    make: str | None
    model: str | None
    format: str
    mode: str

    @property
    def device_class(self) -> DeviceClass:
        return device_class_of(self.make, self.model)


def device_class_of(make: str | None, model: str | None) -> DeviceClass:
    mk, md = (make or "").strip().lower(), (model or "").strip().lower()
    if any(h in md for h in _PHONE_MODEL_HINTS) or any(mk.startswith(p) for p in _PHONE_MAKES):
        return DeviceClass.PHONE
    if any(mk.startswith(c) for c in _CAMERA_MAKES):
        return DeviceClass.DSLR
    return DeviceClass.UNKNOWN


def displayed_size(raw_width: int, raw_height: int, orientation: int) -> tuple[int, int]:
    """Orientations 5-8 swap the axes (rotations by 90 degrees)."""
    return (raw_height, raw_width) if orientation in (5, 6, 7, 8) else (raw_width, raw_height)


def _clean(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


def _base_format(fmt: str | None) -> str | None:
    """MPO (a JPEG with a second, preview frame, as many phones and cameras write) is a JPEG."""
    return "JPEG" if fmt == "MPO" else fmt


def _open(data: bytes, source: str) -> Image.Image:
    if not data:
        raise InputFileError(source, "empty-photo", "the photo is 0 bytes; copy it again from the camera or phone")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InputFileError(
            source,
            "too-many-pixels",
            f"the photo has more than {MAX_PIXELS // 1_000_000} MP; refused as a possible decompression bomb",
        ) from exc
    except UnidentifiedImageError as exc:
        kind = "HEIC" if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc") else "an unknown format"
        raise InputFileError(
            source, "unsupported-format", f"the file is {kind}, not a JPEG/PNG photo; export it as JPEG"
        ) from exc
    if img.width * img.height > MAX_PIXELS:
        raise InputFileError(
            source,
            "too-many-pixels",
            f"{img.width}x{img.height} is {img.width * img.height / 1e6:.0f} MP, above the "
            f"{MAX_PIXELS // 1_000_000} MP limit; refused as a possible decompression bomb",
        )
    suffix = Path(source).suffix.lower()
    expected = _SUFFIX_FORMATS.get(suffix)
    if expected and _base_format(img.format) != expected:
        raise InputFileError(
            source,
            "wrong-extension",
            f"the file is {img.format} but named {suffix}; convert it to {expected} or rename it",
        )
    return img


def _exif(img: Image.Image) -> tuple[int, str | None, str | None]:
    try:
        exif = img.getexif()
    except Exception:  # broken EXIF blocks are common on edited photos; the pixels are still fine
        return 1, None, None
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    try:
        orientation = int(orientation)
    except (TypeError, ValueError):
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    return orientation, _clean(exif.get(_EXIF_MAKE)), _clean(exif.get(_EXIF_MODEL))


def inspect_photo_bytes(data: bytes, source: str, *, verify: bool = True) -> PhotoInfo:
    """Hash, size, EXIF. With `verify`, decode (at 1/8 scale) to catch truncated files."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    img = _open(data, source)
    orientation, make, model = _exif(img)
    raw_w, raw_h = img.size
    fmt, mode = _base_format(img.format) or "?", img.mode
    if verify:
        try:
            if fmt == "JPEG":
                img.draft("RGB", (max(1, raw_w // 8), max(1, raw_h // 8)))
            img.load()
        except Exception as exc:  # a broken file can fail deep in any decoder (struct.error, IndexError, ...)
            raise InputFileError(
                source, "truncated-photo", f"the photo cannot be decoded ({exc}); copy it again from the original"
            ) from exc
    w, h = displayed_size(raw_w, raw_h, orientation)
    return PhotoInfo(hashlib.sha256(data).hexdigest(), w, h, raw_w, raw_h, orientation, make, model, fmt, mode)


def inspect_photo(path: str | Path, *, verify: bool = True) -> PhotoInfo:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(
            str(p), "unreadable", f"cannot read the photo ({exc.strerror}); check permissions"
        ) from exc
    return inspect_photo_bytes(data, str(p), verify=verify)


_TRANSPOSES = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """The EXIF orientation transform (same as `ImageOps.exif_transpose`, explicit and exif-free)."""
    for op in _TRANSPOSES.get(orientation, ()):
        img = img.transpose(op)
    return img


def decode_displayed(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, float, float]:
    """Decode as displayed, RGB uint8 (H, W, 3), reduced so the long side is >= max_side when
    JPEG DCT scaling allows. Returns (pixels, sx, sy): multiply array coordinates by (sx, sy)
    to get full-resolution displayed coordinates."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with Image.open(path) as img:
        orientation = _exif(img)[0]
        full_w, full_h = displayed_size(img.width, img.height, orientation)
        if max_side and img.format == "JPEG":
            factor = max(img.width, img.height) / max_side
            if factor > 1:
                img.draft("RGB", (int(img.width / factor), int(img.height / factor)))
        rgb = apply_orientation(img.convert("RGB"), orientation)
        arr = np.asarray(rgb)
    return arr, full_w / arr.shape[1], full_h / arr.shape[0]
