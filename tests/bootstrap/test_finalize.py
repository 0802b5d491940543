"""finalize is safe: misses are corrections, an unknown rate refuses, and the recommended threshold
decides through the `annotator finalize` command itself."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.finalize import FinalizeResult, finalize

LESION = Box("mel", 10, 10, 40, 40)


def _workspace(tmp_path, photos: int) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for i in range(photos):
        ws.store.add_image(ImageRecord(path=f"p{i:03d}.jpg", sha256=str(i), width=100, height=100))
    return ws


def _op(kind: str) -> dict:
    if kind == "added":
        return {"op": "added", "region": "n", "label": None, "new_label": "mel", "after": [10, 10, 40, 40]}
    return {"op": kind, "region": "r", "label": "mel"}


def _reviewed(path: str, ops: list[str], boxes: tuple[Box, ...] = (LESION,)) -> LabelVersion:
    return LabelVersion(
        image_path=path,
        source=Source.REVIEWED,
        boxes=boxes,
        round=0,
        model_version="round-000",
        reviewer="derm@example.org",
        meta={"operations": [_op(k) for k in ops], "lead_time": 10.0},
    )


def _model(path: str, boxes: tuple[Box, ...] = (Box("mel", 5, 5, 20, 20, score=0.8),)) -> LabelVersion:
    return LabelVersion(
        image_path=path, source=Source.MODEL, boxes=boxes, round=0, model_version="round-000", uncertainty=0.2
    )


def test_finalize_refuses_when_the_rate_is_unknown_instead_of_reading_it_as_zero(tmp_path):
    ws = _workspace(tmp_path, 3)
    ws.store.add_label_version(_reviewed("p000.jpg", [], boxes=()))  # nothing predicted, nothing there
    ws.store.add_label_version(_model("p001.jpg", boxes=()))
    ws.store.add_label_version(_model("p002.jpg"))
    with pytest.raises(WorkspaceError, match="correction rate of round 0's reviewed batch is unknown"):
        finalize(ws, threshold=1.0)
    assert ws.store.current_label("p002.jpg").source is Source.MODEL
    ws.close()


def test_a_batch_where_the_model_predicted_nothing_and_reviewers_drew_every_lesion_blocks_finalize(tmp_path):
    ws = _workspace(tmp_path, 10)
    for i in range(5):
        ws.store.add_label_version(_reviewed(f"p{i:03d}.jpg", ["added"]))
    for i in range(5, 10):
        ws.store.add_label_version(_model(f"p{i:03d}.jpg", boxes=()))  # empty predictions on photos with lesions
    with pytest.raises(WorkspaceError, match=r"corrected 100\.0%.*0 of 0 predicted boxes changed, 5 missed"):
        finalize(ws)
    assert all(ws.store.current_label(f"p{i:03d}.jpg").source is Source.MODEL for i in range(5, 10))
    ws.close()


def test_missed_lesions_count_as_corrections(tmp_path):
    ws = _workspace(tmp_path, 5)
    ws.store.add_label_version(_reviewed("p000.jpg", ["accepted", "added"], boxes=(LESION, LESION)))
    ws.store.add_label_version(_reviewed("p001.jpg", ["accepted", "added"], boxes=(LESION, LESION)))
    ws.store.add_label_version(_model("p002.jpg"))
    # no predicted box was changed, yet half the lesions were missed: (0 + 2) / (2 + 2)
    with pytest.raises(WorkspaceError, match=r"corrected 50\.0%.*2 missed lesions added"):
        finalize(ws, threshold=0.4)
    assert finalize(ws, threshold=0.5).correction_rate == pytest.approx(0.5)
    ws.close()


def test_finalize_returns_its_figures_as_a_result_with_a_json_form(tmp_path):
    ws = _workspace(tmp_path, 3)
    ws.store.add_label_version(_reviewed("p000.jpg", ["accepted"]))
    ws.store.add_label_version(_model("p001.jpg"))
    result = finalize(ws, threshold=0.1)
    assert isinstance(result, FinalizeResult) and result.auto_accepted == 1
    assert json.loads(json.dumps(result.to_dict()))["predicted_boxes"] == 1
    ws.close()


def _threshold_case(tmp_path, corrected_photos: int) -> str:
    """90 human boxes, 10 remaining predicted boxes: the recommended threshold is 0.02 * 100 / 10 = 20%.
    The last batch: 10 reviewed photos with one predicted box each, `corrected_photos` of them moved."""
    ws = _workspace(tmp_path, 90)
    for i in range(80):
        ws.store.add_label_version(LabelVersion(image_path=f"p{i:03d}.jpg", source=Source.MANUAL, boxes=(LESION,)))
    for i in range(80, 90):
        ws.store.add_label_version(_reviewed(f"p{i:03d}.jpg", ["moved" if i - 80 < corrected_photos else "accepted"]))
    for i in range(10):
        ws.store.add_image(ImageRecord(path=f"q{i:03d}.jpg", sha256=f"q{i}", width=100, height=100))
        ws.store.add_label_version(_model(f"q{i:03d}.jpg"))
    root = str(ws.root)
    ws.close()
    return root


def test_the_finalize_command_accepts_at_or_below_the_recommended_threshold(tmp_path):
    root = _threshold_case(tmp_path, corrected_photos=2)  # rate 20%
    result = CliRunner().invoke(app, ["finalize", "-w", root, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["recommended_threshold"] == pytest.approx(0.2) and figures["threshold"] == pytest.approx(0.2)
    assert figures["correction_rate"] == pytest.approx(0.2) and figures["auto_accepted"] == 10


def test_the_finalize_command_refuses_above_the_recommended_threshold(tmp_path):
    root = _threshold_case(tmp_path, corrected_photos=3)  # rate 30%
    result = CliRunner().invoke(app, ["finalize", "-w", root])
    assert result.exit_code != 0
    assert "corrected 30.0%" in result.output and "recommended from the data: 20.0%" in result.output
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.store.current_label("q000.jpg").source is Source.MODEL
