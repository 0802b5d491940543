"""The engine with `[predict] decode = "device"`: photos decoded where the model runs (here the CPU, the code a GPU
runs less nvJPEG), and the boxes still land on the full-resolution displayed photo within 1 px."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.config import Config
from annotator.images import inspect_photo
from annotator.store import Workspace
from annotator.types import ImageRecord, Source
from bootstrap.preannotate import preannotate
from tests.annotator.test_device_decode import stored_photo
from tests.bootstrap.test_preannotate import SQUARE, RedSquareFinder


def _workspace(tmp_path, orientations, **config) -> Workspace:
    images = tmp_path / "images"
    images.mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=images, **config))
    for o in orientations:
        info = inspect_photo(stored_photo(images / f"o{o}.jpg", o))
        ws.store.labels.add_image(
            ImageRecord(
                path=f"o{o}.jpg", sha256=info.sha256, width=info.width, height=info.height, orientation=info.orientation
            )
        )
    return ws


@pytest.mark.parametrize("orientation", range(1, 9))
def test_boxes_from_the_device_decode_match_the_full_resolution_displayed_photo(tmp_path, orientation):
    ws = _workspace(tmp_path, [orientation])
    finder = RedSquareFinder()
    stats = preannotate(
        ws,
        finder,
        ws.store.labels.images(),
        round_no=0,
        model_version="round-000",
        imgsz=300,
        batch=4,
        workers=1,
        device="cpu",
        decode="device",
    )
    assert stats.decoders == {"device": 1}
    assert finder.seen_shapes == [(200, 300, 3)], "shrunk to the model's size on the device, displayed frame"
    version = ws.store.labels.current_label(f"o{orientation}.jpg")
    assert version is not None and version.source is Source.MODEL
    (box,) = version.boxes
    assert np.allclose((box.x1, box.y1, box.x2, box.y2), SQUARE, atol=1.0)
    ws.close()


def test_the_workspace_setting_chooses_the_decoder(tmp_path):
    ws = _workspace(tmp_path, [1, 6, 8], predict_decode="device")
    stats = preannotate(
        ws,
        RedSquareFinder(),
        ws.store.labels.images(),
        round_no=0,
        model_version="round-000",
        imgsz=300,
        device="cpu,cpu",
    )  # two pipelines, each with its own device decoder
    assert stats.predicted == 3 and stats.decoders == {"device": 3}
    ws.close()


def test_auto_decodes_with_pil_when_the_model_runs_on_the_cpu(tmp_path):
    ws = _workspace(tmp_path, [1, 6])
    stats = preannotate(
        ws, RedSquareFinder(), ws.store.labels.images(), round_no=0, model_version="round-000", imgsz=300, device="cpu"
    )
    assert ws.config.predict_decode == "auto" and stats.decoders == {"pil": 2}
    ws.close()
