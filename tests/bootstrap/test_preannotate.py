"""Pre-annotations land on the full-resolution displayed photo, whatever the decode did."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.config import Config
from annotator.images import inspect_photo
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, Source
from bootstrap.preannotate import preannotate
from training.detectors.base import Detector

# A red square on the photo as displayed, edges on multiples of 8 (JPEG blocks), so a 1/8 DCT decode
# keeps the edges exactly and any error comes from our coordinate mapping, not the decoder.
SQUARE = (1208, 608, 1608, 1008)  # x1, y1, x2, y2 on the displayed 2400x1600 photo


class RedSquareFinder(Detector):
    """Finds red pixels in whatever array it is given: a detector whose right answer is known."""

    family = "test"

    def __init__(self) -> None:
        super().__init__(("caf",))
        self.seen_shapes: list[tuple[int, ...]] = []

    def predict_arrays(
        self, images: Sequence[np.ndarray], *, conf: float = 0.01, imgsz: int = 640, device: str | None = None
    ) -> list[list[Box]]:
        out = []
        for arr in images:
            self.seen_shapes.append(arr.shape)
            red = (arr[..., 0] > 180) & (arr[..., 1] < 80) & (arr[..., 2] < 80)
            ys, xs = np.nonzero(red)
            out.append([Box("caf", xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, score=0.9)] if len(xs) else [])
        return out

    def train(self, *a, **k):  # not used here
        raise NotImplementedError

    def validate(self, *a, **k):  # not used here
        raise NotImplementedError

    def save(self, path: Path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, classes):
        raise NotImplementedError

    @property
    def parameter_count(self) -> int:
        return 0


def _displayed_photo() -> Image.Image:
    arr = np.full((1600, 2400, 3), (200, 160, 130), np.uint8)
    x1, y1, x2, y2 = SQUARE
    arr[y1:y2, x1:x2] = (230, 20, 20)
    return Image.fromarray(arr)


def _save(img: Image.Image, path: Path, orientation: int) -> None:
    stored = img
    if orientation == 6:  # stored pixels are the displayed ones turned back 90 degrees
        stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [1, 6])
def test_boxes_from_a_reduced_decode_match_the_full_resolution_displayed_photo(tmp_path, orientation):
    images = tmp_path / "images"
    images.mkdir()
    _save(_displayed_photo(), images / "p.jpg", orientation)
    info = inspect_photo(images / "p.jpg")
    assert (info.width, info.height) == (2400, 1600)
    ws = Workspace.create(tmp_path / "ws", Config(images=images))
    ws.store.labels.add_image(
        ImageRecord(
            path="p.jpg", sha256=info.sha256, width=info.width, height=info.height, orientation=info.orientation
        )
    )
    finder = RedSquareFinder()
    stats = preannotate(
        ws, finder, ws.store.labels.images(), round_no=0, model_version="round-000", imgsz=300, batch=4, workers=1
    )
    assert stats.predicted == 1
    assert max(finder.seen_shapes[0][:2]) < 2400 / 2, "the photo was decoded at reduced size"
    version = ws.store.labels.current_label("p.jpg")
    assert version is not None and version.source is Source.MODEL
    (box,) = version.boxes
    assert np.allclose((box.x1, box.y1, box.x2, box.y2), SQUARE, atol=1.0)
    ws.close()


def test_a_photo_that_no_longer_decodes_is_reported_and_the_rest_are_predicted(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _save(_displayed_photo(), images / "good.jpg", 1)
    (images / "gone.jpg").write_bytes(b"")
    ws = Workspace.create(tmp_path / "ws", Config(images=images))
    info = inspect_photo(images / "good.jpg")
    ws.store.labels.add_image(ImageRecord(path="good.jpg", sha256=info.sha256, width=2400, height=1600))
    ws.store.labels.add_image(ImageRecord(path="gone.jpg", sha256="0", width=2400, height=1600))
    stats = preannotate(
        ws, RedSquareFinder(), ws.store.labels.images(), round_no=0, model_version="round-000", imgsz=300
    )
    assert stats.predicted == 1
    assert [p for p, _ in stats.failed] == ["gone.jpg"]
    ws.close()


def test_several_devices_share_the_photos_and_every_photo_is_predicted_once(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=images))
    for i in range(7):
        _save(_displayed_photo(), images / f"p{i}.jpg", 1)
        ws.store.labels.add_image(ImageRecord(path=f"p{i}.jpg", sha256=f"{i}", width=2400, height=1600))
    stats = preannotate(
        ws,
        RedSquareFinder(),
        ws.store.labels.images(),
        round_no=0,
        model_version="round-000",
        imgsz=300,
        batch=2,
        device="cpu,cpu",
    )  # two pipelines, as with two GPUs
    assert stats.predicted == 7 and not stats.failed
    assert all(len(ws.store.labels.history(f"p{i}.jpg")) == 1 for i in range(7))
    ws.close()
