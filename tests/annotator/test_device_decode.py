"""Decoding on the model's device shows the photo as the CPU decoder does, and boxes found on it land on the photo.

These run the device path with device "cpu" (torchvision's libjpeg-turbo): the code that runs on a GPU, less nvJPEG.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from annotator.boxes import boxes_to_photo
from annotator.config import Config, load_config, save_config
from annotator.device_decode import decode_device, decode_on_device, decode_stream, device_refusal, read_for_device
from annotator.errors import ConfigError
from annotator.images import decode_displayed
from annotator.types import Box
from tests.corpus.make_corpus import jpeg_bytes, photo_image

# Stored pixels for each EXIF orientation: the displayed photo put through the inverse of the orientation's transform.
STORED_FROM_DISPLAYED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
SHOWN = (2400, 1600)  # displayed width, height
SQUARE = (1208, 608, 1608, 1008)  # on the displayed photo; edges on multiples of 8, as in tests/bootstrap


def red_box(pixels: np.ndarray) -> Box:
    """The red square found in decoded pixels (JPEG-tolerant threshold), in the array's own frame."""
    a = pixels.astype(int)
    ys, xs = np.nonzero((a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80))
    return Box("caf", xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, score=0.9)


def stored_photo(
    path: Path, orientation: int, shown: tuple[int, int] = SHOWN, square: tuple[int, int, int, int] = SQUARE
) -> Path:
    """Write the displayed photo stored as a camera would for `orientation` (pixels turned, EXIF tag set)."""
    displayed = photo_image(shown, (200, 160, 130), square=square, square_colour=(230, 20, 20))
    op = STORED_FROM_DISPLAYED[orientation]
    stored = displayed if op is None else displayed.transpose(op)
    path.write_bytes(jpeg_bytes(image=stored, orientation=orientation, quality=95))
    return path


def asymmetric_photo(path: Path, orientation: int) -> Path:
    """A small photo no flip or turn maps onto itself: a square off-centre and a gradient."""
    img = photo_image((64, 48), (128, 128, 128), square=(5, 10, 20, 18))
    arr = np.asarray(img).copy()
    arr[..., 2] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    path.write_bytes(jpeg_bytes(image=Image.fromarray(arr), orientation=orientation, quality=95))
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_device_decode_shows_the_photo_as_the_cpu_decoder_does(tmp_path, orientation):
    path = asymmetric_photo(tmp_path / "o.jpg", orientation)
    (decoded,) = decode_on_device([read_for_device(path)], device="cpu", max_side=None)
    expected, ex, ey = decode_displayed(path)
    pixels, sx, sy = decoded
    assert pixels.shape == expected.shape and (sx, sy) == (ex, ey) == (1.0, 1.0)
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_boxes_found_on_a_reduced_device_decode_land_within_one_pixel_of_the_photo(tmp_path, orientation):
    path = stored_photo(tmp_path / "p.jpg", orientation)
    (decoded,) = decode_stream([path], device="cpu", max_side=300)
    pixels, sx, sy = decoded
    assert pixels.shape == (200, 300, 3), "shrunk on the device to the model's size, displayed frame"
    (box,) = boxes_to_photo([red_box(pixels)], sx, sy, *SHOWN)
    assert np.allclose((box.x1, box.y1, box.x2, box.y2), SQUARE, atol=1.0)


def test_at_a_scale_that_is_not_a_whole_number_the_box_lands_within_one_decoded_pixel(tmp_path):
    path = stored_photo(tmp_path / "p.jpg", 6)
    (decoded,) = decode_stream([path], device="cpu", max_side=640)
    pixels, sx, sy = decoded
    assert pixels.shape == (427, 640, 3) and (pixels.shape[1] * sx, pixels.shape[0] * sy) == SHOWN
    (box,) = boxes_to_photo([red_box(pixels)], sx, sy, *SHOWN)
    assert np.allclose((box.x1, box.y1, box.x2, box.y2), SQUARE, atol=max(sx, sy))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


REFUSED = {
    "png": (lambda: jpeg_bytes(fmt="PNG"), "not a JPEG"),
    "progressive": (lambda: _progressive(), "progressive"),
    "cmyk": (lambda: jpeg_bytes(mode="CMYK"), "CMYK"),
    "empty": (lambda: b"", "unreadable header"),
}


def _progressive() -> bytes:
    import io

    out = io.BytesIO()
    photo_image((64, 48)).save(out, "JPEG", quality=90, progressive=True)
    return out.getvalue()


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_the_device_leaves_what_it_should_not_decode_to_the_cpu_decoder(kind):
    make, reason = REFUSED[kind]
    assert reason in (device_refusal(make()) or "")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_the_device_takes_baseline_colour_and_grey_jpegs(mode):
    assert device_refusal(jpeg_bytes(mode=mode)) is None


def test_photos_the_device_refuses_decode_on_the_cpu_with_the_same_result(tmp_path):
    paths = [
        asymmetric_photo(tmp_path / "baseline.jpg", 6),
        _write(tmp_path / "p.png", jpeg_bytes(fmt="PNG")),
        _write(tmp_path / "prog.jpg", _progressive()),
        _write(tmp_path / "cmyk.jpg", jpeg_bytes(mode="CMYK")),
    ]
    counts: Counter[str] = Counter()
    results = list(decode_stream(paths, device="cpu", max_side=640, batch=4, workers=2, counts=counts))
    for path, (pixels, sx, sy) in zip(paths, results, strict=True):
        expected, ex, ey = decode_displayed(path, 640)
        assert (sx, sy) == (ex, ey) and np.abs(pixels.astype(int) - expected.astype(int)).max() <= 2
    assert counts == {"device": 1, "pil": 3}


def test_a_photo_that_fails_to_decode_yields_the_cpu_decoders_error_and_the_others_decode(tmp_path):
    good = jpeg_bytes((64, 48))
    paths = [
        _write(tmp_path / "a.jpg", good),
        _write(tmp_path / "truncated.jpg", good[: len(good) // 2]),
        _write(tmp_path / "b.jpg", good),
        _write(tmp_path / "empty.jpg", b""),
        tmp_path / "gone.jpg",
    ]
    counts: Counter[str] = Counter()
    results = list(decode_stream(paths, device="cpu", max_side=None, batch=8, workers=2, counts=counts))
    assert [isinstance(r, Exception) for r in results] == [False, True, False, True, True]
    assert counts == {"device": 2}, "the truncated file spoilt the batch; the others were decoded one by one"


def test_results_come_in_order_across_batches(tmp_path):
    paths = [stored_photo(tmp_path / f"p{i}.jpg", 1, shown=(96 + 8 * i, 64), square=(8, 8, 16, 16)) for i in range(7)]
    results = list(decode_stream(paths, device="cpu", max_side=None, batch=3, workers=3))
    assert [r[0].shape[1] for r in results] == [96 + 8 * i for i in range(7)]


def test_leaving_the_stream_early_stops_its_threads(tmp_path):
    paths = [stored_photo(tmp_path / f"p{i}.jpg", 1, shown=(64, 48), square=(8, 8, 16, 16)) for i in range(20)]
    stream = decode_stream(paths, device="cpu", max_side=None, batch=2, workers=2)
    next(stream)
    stream.close()
    import threading

    assert not [t for t in threading.enumerate() if t.name == "device-decode"]


# ---- which decoder a pipeline uses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", None, None),
        ("auto", "cpu", None),
        ("pil", None, None),
        ("device", "cpu", "cpu"),
        ("device", None, "cpu"),
        ("device", "0", "cpu"),
    ],
)
def test_without_a_gpu_auto_decodes_with_pil_and_device_decodes_on_the_cpu(monkeypatch, setting, device, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert decode_device(setting, device) == expected


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", None, "cuda:0"),
        ("auto", "1", "cuda:1"),
        ("auto", "cuda:2", "cuda:2"),
        ("auto", "cpu", None),
        ("pil", "0", None),
        ("device", "cpu", "cpu"),
        ("auto", "mps", None),
    ],
)
def test_on_a_gpu_auto_decodes_where_the_model_runs(monkeypatch, setting, device, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert decode_device(setting, device) == expected


def test_the_decode_setting_is_kept_in_annotator_toml(tmp_path):
    save_config(tmp_path, Config(images=tmp_path / "images", predict_decode="device"))
    assert load_config(tmp_path).predict_decode == "device"


def test_an_unknown_decode_setting_is_refused_with_the_choices(tmp_path):
    save_config(tmp_path, Config(images=tmp_path / "images"))
    toml = tmp_path / "annotator.toml"
    toml.write_text(toml.read_text().replace('decode = "auto"', 'decode = "nvjpeg"'))
    with pytest.raises(ConfigError, match="auto, pil, device"):
        load_config(tmp_path)
