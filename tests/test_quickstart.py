"""docs/quickstart.md, followed as a new user would, on a real labelImg set the tool has never seen
(67 photos of playing cards with their own six classes, 143 boxes): init, status, bootstrap, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app

CARDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "labelimg-playingcards"
CLASSES = "ace,jack,king,nine,queen,ten"

pytestmark = pytest.mark.skipif(not CARDS.is_dir(), reason=f"the shared labelImg sample is not at {CARDS}")


def _run(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_the_quickstart_on_a_real_labelimg_set(tmp_path):
    ws = str(tmp_path / "ws")
    ingested = _run("init", ws, "--images", str(CARDS), "--classes", CLASSES)
    assert (ingested["added"], ingested["labelled"], ingested["boxes"], ingested["quarantined"]) == (67, 67, 143, 0)

    status = _run("status", "-w", ws)
    assert status["images"] == 67
    assert sum(status["boxes_by_class"].values()) == 143
    assert status["boxes_by_class"] == {"ace": 26, "jack": 24, "king": 23, "nine": 26, "queen": 26, "ten": 18}

    round0 = _run("bootstrap", "-w", ws, "--epochs", "1", "--imgsz", "64", "--batch", "8")
    assert round0["round"] == 0 and round0["test"]["images"] > 0
    assert round0["preannotate"]["predicted"] == 0, "every photo is hand-labelled: nothing to pre-annotate"

    for fmt in ("voc", "yolo", "coco"):
        exported = _run("export", str(tmp_path / fmt), "--format", fmt, "-w", ws)
        assert (exported["photos"], exported["boxes"]) == (67, 143), fmt
    yolo_lines = [line for f in (tmp_path / "yolo" / "labels").rglob("*.txt") for line in f.read_text().splitlines()]
    assert len(yolo_lines) == 143
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == CLASSES.split(",")
