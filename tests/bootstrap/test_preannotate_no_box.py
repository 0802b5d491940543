"""A pre-annotation that keeps no box on a photo says so, with the confidence thresholds it applied
(the line `bootstrap` and `retrain` print under "pre-annotated N photos")."""

from __future__ import annotations

import numpy as np
from PIL import Image

from annotator.config import Config
from annotator.store import Workspace
from annotator.types import ImageRecord
from bootstrap.preannotate import preannotate
from tests.bootstrap.test_preannotate import RedSquareFinder, _displayed_photo


def test_photos_that_keep_no_box_are_counted_and_the_thresholds_named(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _displayed_photo().save(images / "lesion.jpg", quality=95)
    for name in ("clear-1.jpg", "clear-2.jpg"):  # nothing red: the finder finds nothing
        Image.fromarray(np.full((1600, 2400, 3), (200, 160, 130), np.uint8)).save(images / name, quality=95)
    ws = Workspace.create(tmp_path / "ws", Config(images=images, thresholds={"mel": 0.4}))
    for name in ("lesion.jpg", "clear-1.jpg", "clear-2.jpg"):
        ws.store.labels.add_image(ImageRecord(path=name, sha256=name, width=2400, height=1600))
    stats = preannotate(
        ws, RedSquareFinder(), ws.store.labels.images(), round_no=0, model_version="round-000", imgsz=300
    )
    ws.close()

    assert (stats.predicted, stats.boxes, stats.no_box) == (3, 1, 2)
    assert stats.thresholds["mel"] == 0.4 and stats.thresholds["sl"] == 0.25
    note = stats.no_box_note()
    assert note is not None
    assert note.startswith("2 photos of 3 kept no box at the confidence thresholds sl 0.25, fre 0.25, mel 0.4")
    assert stats.to_dict()["no_box"] == 2


def test_no_note_when_every_photo_kept_a_box(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _displayed_photo().save(images / "lesion.jpg", quality=95)
    ws = Workspace.create(tmp_path / "ws", Config(images=images))
    ws.store.labels.add_image(ImageRecord(path="lesion.jpg", sha256="x", width=2400, height=1600))
    stats = preannotate(
        ws, RedSquareFinder(), ws.store.labels.images(), round_no=0, model_version="round-000", imgsz=300
    )
    ws.close()
    assert stats.no_box == 0 and stats.no_box_note() is None
