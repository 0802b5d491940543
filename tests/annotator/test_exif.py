"""EXIF orientation, checked on real pixels: a box drawn on the displayed photo lands on the same
pixels after ingest and after export to VOC, YOLO and COCO, for a photo stored rotated (orientation 6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from annotator.boxes import coco_to_box, voc_to_box, yolo_to_box
from annotator.export import export_labels
from annotator.formats.voc import read_voc
from annotator.images import decode_displayed, inspect_photo
from annotator.types import Box
from tests.corpus.make_corpus import Obj, jpeg_bytes, photo_image

SHOWN = (120, 200)  # displayed width, height: a portrait phone photo
SQUARE = (40, 100, 61, 131)  # painted on the displayed photo: x1, y1, x2, y2 (exclusive)


def red_region(img: Image.Image) -> Box:
    """The painted square as found in the pixels (JPEG-tolerant threshold)."""
    a = np.asarray(img.convert("RGB")).astype(int)
    ys, xs = np.nonzero((a[..., 0] > 180) & (a[..., 1] < 90) & (a[..., 2] < 90))
    return Box("mel", xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def displayed(path: Path) -> Image.Image:
    """How a viewer (or a trainer) sees the exported photo: EXIF orientation applied."""
    return ImageOps.exif_transpose(Image.open(path))


def within_one_pixel(a: Box, b: Box) -> bool:
    return all(abs(u - v) <= 1 for u, v in ((a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2)))


def rotated_photo(folder) -> Path:
    """Paint the square on the displayed photo, store it turned (as a phone does) with orientation 6."""
    shown = photo_image(SHOWN, (128, 128, 128), square=SQUARE)
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # orientation 6 = turn 90 degrees clockwise to display
    return folder.photo("phone.jpg", jpeg_bytes(image=stored, orientation=6, quality=95, make="Apple"))


def test_the_stored_photo_really_is_rotated(folder):
    path = rotated_photo(folder)
    info = inspect_photo(path)
    assert ((info.width, info.height), (info.raw_width, info.raw_height), info.orientation) == (SHOWN, SHOWN[::-1], 6)
    assert within_one_pixel(red_region(displayed(path)), Box("mel", *SQUARE))
    assert not within_one_pixel(red_region(Image.open(path)), Box("mel", *SQUARE))


@pytest.mark.parametrize("drawn_on", ["displayed", "stored"])
@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco"])
def test_box_round_trips_through_export_onto_the_same_pixels(folder, run_ingest, tmp_path, fmt, drawn_on):
    path = rotated_photo(folder)
    if drawn_on == "displayed":  # what Label Studio and our own mirror do
        x1, y1, x2, y2 = SQUARE
        folder.xml("phone.jpg", [Obj("mel", x1 + 1, y1 + 1, x2, y2)], size=SHOWN)
    else:  # what labelImg does: it ignores EXIF and shows the stored pixels
        r = red_region(Image.open(path))
        folder.xml("phone.jpg", [Obj("mel", r.x1 + 1, r.y1 + 1, r.x2, r.y2)], size=SHOWN[::-1])
    result = run_ingest()
    (ingested,) = result.boxes("phone.jpg")
    assert within_one_pixel(ingested, Box("mel", *SQUARE))

    out = tmp_path / f"export-{fmt}"
    export_labels(result.ws, fmt, out)
    if fmt == "voc":
        ann = read_voc(out / "Annotations" / "phone.xml")
        assert (ann.width, ann.height) == SHOWN
        (o,) = ann.objects
        exported, photo = voc_to_box(o.name, o.xmin, o.ymin, o.xmax, o.ymax), out / "JPEGImages" / "phone.jpg"
    elif fmt == "yolo":
        photo = out / "images" / "phone.jpg"
        w, h = displayed(photo).size
        cls, *numbers = (out / "labels" / "phone.txt").read_text().split()
        assert (out / "classes.txt").read_text().split()[int(cls)] == "mel"
        exported = yolo_to_box("mel", *map(float, numbers), w, h)
    else:
        data = json.loads((out / "annotations.json").read_text())
        (image,), (ann,) = data["images"], data["annotations"]
        assert (image["width"], image["height"]) == SHOWN
        assert data["categories"][ann["category_id"] - 1]["name"] == "mel"
        exported, photo = coco_to_box("mel", ann["bbox"]), folder.images / image["file_name"]  # COCO links nothing
    assert within_one_pixel(exported, red_region(displayed(photo)))


# ---- decoding as displayed ----------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_displayed_matches_pil_exif_transpose(tmp_path, orientation):
    stored = photo_image((64, 48), (128, 128, 128), square=(5, 10, 20, 18))
    path = tmp_path / "o.jpg"
    path.write_bytes(jpeg_bytes(image=stored, orientation=orientation, quality=95))
    pixels, sx, sy = decode_displayed(path)
    expected = displayed(path)
    assert (pixels.shape[1], pixels.shape[0]) == expected.size
    assert (sx, sy) == (1.0, 1.0)
    assert red_region(Image.fromarray(pixels)) == red_region(expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_inspect_reports_the_displayed_size(tmp_path, orientation):
    path = tmp_path / "o.jpg"
    path.write_bytes(jpeg_bytes((64, 48), orientation=orientation))
    info = inspect_photo(path)
    assert (info.width, info.height) == displayed(path).size
    assert (info.raw_width, info.raw_height, info.orientation) == (64, 48, orientation)


def test_reduced_decode_reports_the_scale_back_to_full_size(tmp_path):
    stored = photo_image((1600, 1200), (128, 128, 128), square=(800, 400, 1200, 800))
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(image=stored, orientation=6, quality=95))
    pixels, sx, sy = decode_displayed(path, max_side=400)
    assert max(pixels.shape[:2]) < 1600
    found = red_region(Image.fromarray(pixels))
    full = red_region(displayed(path))
    scaled = Box("mel", found.x1 * sx, found.y1 * sy, found.x2 * sx, found.y2 * sy)
    assert all(
        abs(u - v) <= sx
        for u, v in ((scaled.x1, full.x1), (scaled.y1, full.y1), (scaled.x2, full.x2), (scaled.y2, full.y2))
    )
