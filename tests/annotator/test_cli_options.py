"""`synth` and `export` as a user types them: a numeric option out of its range is refused by the
parser with the option's name, exit code 2 and no traceback, before anything is written; `export`
links the photos by default and copies them with --copy."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.cli import app


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "option, value",
    [
        ("--images", "0"),
        ("--images", "-5"),
        ("--labelled", "1.5"),
        ("--labelled", "-0.1"),
        ("--seed", "-1"),
        ("--workers", "0"),
    ],
)
def test_synth_refuses_a_numeric_option_out_of_range_and_writes_nothing(tmp_path, option, value):
    result = _invoke("synth", tmp_path / "data", option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists(), "a refused option must not start writing photos"


def test_export_links_by_default_and_copies_with_copy(folder, tmp_path):
    folder.controls()
    assert _invoke("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels).exit_code == 0
    linked = _invoke("export", tmp_path / "linked", "-w", tmp_path / "ws")
    assert linked.exit_code == 0 and "photos linked to the originals" in linked.output
    copied = _invoke("export", tmp_path / "copied", "--format", "yolo", "--copy", "-w", tmp_path / "ws", "--json")
    assert copied.exit_code == 0, copied.output
    assert json.loads(copied.stdout)["photo_files"] == "copied"
    (photo,) = (tmp_path / "copied" / "images").iterdir()
    (link,) = (tmp_path / "linked" / "JPEGImages").iterdir()
    assert link.is_symlink() and not photo.is_symlink() and photo.read_bytes() == link.read_bytes()
