"""The `annotator` command for the core steps (synth, init, status, export): --json prints valid
JSON whose counts match the data, and a user's mistake is one error line, a non-zero exit code
and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app  # a stage that does not import is a failure here, never a skip
from annotator.formats.voc import read_voc
from annotator.store import Workspace
from tests.corpus.make_corpus import Obj
from tests.corpus.psl_testkit import CARD_CLASSES, PLAYING_CARDS, ROOT

EXE = Path(sys.executable).with_name("annotator")


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def cli_json(*args: str) -> dict:
    return json.loads(cli(*args, "--json").stdout)


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert "Traceback" not in stderr and lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0]


# ---- the happy path --------------------------------------------------------------------------------


def test_synth_then_init_then_status_counts_match_what_was_generated(tmp_path):
    made = cli_json("synth", tmp_path / "data", "--images", 30, "--labelled", 0.4, "--seed", 5)
    labels = {p.stem: read_voc(p) for p in (tmp_path / "data" / "labels").glob("*.xml")}
    assert made["images"] == 30 and made["labelled"] == len(labels) == 12

    init = cli_json(
        "init", tmp_path / "ws", "--images", tmp_path / "data" / "images", "--labels", tmp_path / "data" / "labels"
    )
    assert (init["added"], init["labelled"], init["unlabelled"], init["lines"]) == (30, 12, 18, [])

    status = cli_json("status", "-w", tmp_path / "ws")
    assert status["images"] == made["images"]
    assert status["by_status"] == {"manual": made["labelled"], "unlabelled": made["images"] - made["labelled"]}
    photos_by_class: dict[str, int] = {}
    for ann in labels.values():
        for name in {o.name for o in ann.objects}:
            photos_by_class[name] = photos_by_class.get(name, 0) + 1
    assert status["photos_by_class"] == dict(sorted(photos_by_class.items()))
    assert status["boxes_by_class"] == dict(
        sorted({c: sum(o.name == c for a in labels.values() for o in a.objects) for c in photos_by_class}.items())
    )
    assert status["by_device"] == {
        k: v for k, v in {"dslr": made["images"] - made["phone"], "phone": made["phone"]}.items() if v
    }
    assert status["quarantined"] == 0


@pytest.mark.skipif(not PLAYING_CARDS.is_dir(), reason=f"{PLAYING_CARDS} not present")
def test_init_on_the_playing_cards_with_custom_classes(tmp_path):
    init = cli_json("init", tmp_path / "ws", "--images", PLAYING_CARDS, "--classes", ",".join(CARD_CLASSES))
    assert (init["added"], init["labelled"], init["boxes"], init["lines"]) == (67, 67, 143, [])
    status = cli_json("status", "-w", tmp_path / "ws")
    assert sum(status["boxes_by_class"].values()) == 143
    assert set(status["boxes_by_class"]) == set(CARD_CLASSES)


def test_rerunning_init_adds_nothing_new(folder, tmp_path):
    folder.controls()
    args = ("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels)
    first = cli_json(*args)
    folder.pair("new.jpg", [Obj("mel", 1, 1, 9, 9)])
    second = cli_json(*args)
    third = cli_json(*args)
    assert (first["added"], second["added"], third["added"]) == (2, 1, 0)
    assert third["already_known"] == 3


def test_init_reports_problems_in_json(folder, tmp_path):
    folder.controls()
    folder.photo("broken.jpg", b"")
    init = cli_json("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels)
    assert init["quarantined"] == 1
    assert init["lines"] == [
        {"path": "broken.jpg", "reason": "empty-photo", "action": "quarantined", "message": init["lines"][0]["message"]}
    ]


def test_init_prints_a_readable_summary(folder, tmp_path):
    folder.controls()
    folder.photo("broken.jpg", b"")
    out = cli("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels).stdout
    assert "3 photos: 2 added (1 hand-labelled with 2 boxes, 1 unlabelled)" in out
    assert "quarantined broken.jpg" in out


def test_export_json(folder, tmp_path):
    folder.controls()
    cli("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels)
    for fmt in ("voc", "yolo", "coco"):
        data = cli_json("export", tmp_path / fmt, "--format", fmt, "-w", tmp_path / "ws")
        assert (data["format"], data["photos"], data["boxes"]) == (fmt, 1, 2)


# ---- mistakes: one line, non-zero exit, no traceback ------------------------------------------------


def test_status_on_a_folder_that_is_not_a_workspace(tmp_path):
    result = cli("status", "-w", tmp_path, "--json", code=2)
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "annotator init")


def test_init_with_a_missing_image_folder(tmp_path):
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws"), "--images", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert_one_error_line(result.stderr, "nope")
    assert not (tmp_path / "ws").exists(), "a failed init leaves no half-made workspace"


def test_init_with_a_missing_label_folder(folder, tmp_path):
    folder.controls()
    result = cli("init", tmp_path / "ws", "--images", folder.images, "--labels", tmp_path / "lables", code=2)
    assert_one_error_line(result.stderr, "lables")


def test_init_of_a_workspace_with_other_photos(folder, tmp_path):
    folder.controls()
    cli("init", tmp_path / "ws", "--images", folder.images)
    other = tmp_path / "other"
    other.mkdir()
    result = cli("init", tmp_path / "ws", "--images", other, code=2)
    assert_one_error_line(result.stderr, "already ingests")


def test_a_second_writer_exits_with_busy(folder, tmp_path):
    folder.controls()
    cli("init", tmp_path / "ws", "--images", folder.images)
    with Workspace.open(tmp_path / "ws", write=True):
        result = cli("init", tmp_path / "ws", "--images", folder.images, code=3)
    assert_one_error_line(result.stderr, "busy")


def test_export_with_an_unknown_format(folder, tmp_path):
    folder.controls()
    cli("init", tmp_path / "ws", "--images", folder.images)
    result = cli("export", tmp_path / "out", "--format", "csv", "-w", tmp_path / "ws", code=2)
    assert_one_error_line(result.stderr, "csv")


def test_a_broken_config_file_is_one_line(folder, tmp_path):
    folder.controls()
    cli("init", tmp_path / "ws", "--images", folder.images)
    (tmp_path / "ws" / "annotator.toml").write_text("[workspace\nimages = ")
    result = cli("status", "-w", tmp_path / "ws", code=2)
    assert_one_error_line(result.stderr, "annotator.toml")


@pytest.mark.skipif(not EXE.exists(), reason="the annotator entry point is not installed in this environment")
def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [str(EXE), "status", "-w", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_error_line(proc.stderr, "annotator init")
