"""Text the tool did not write itself (file names, paths, class names, error messages) prints exactly
as written: rich would otherwise read `[red]` or `[classes.aliases]` as markup and drop it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from annotator.console import console as stdout_console
from annotator.console import say, tagged
from tests.corpus.make_corpus import Obj

try:
    from annotator.cli import app
    from annotator.cli.common import fail
except ModuleNotFoundError as exc:  # a stage package still being written by a teammate
    if (exc.name or "").split(".")[0] in ("bootstrap", "review_queue", "training"):
        pytest.skip(f"annotator.cli does not import yet: {exc}", allow_module_level=True)
    raise

BRACKETED = "visit [red] 1.jpg"


def run(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_a_photo_name_with_square_brackets_prints_whole_in_the_init_summary(folder, tmp_path):
    folder.controls()
    folder.photo(BRACKETED, b"")
    code, out, _ = run("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels)
    assert code == 0
    assert f"quarantined {BRACKETED}: " in out
    assert BRACKETED in (tmp_path / "ws" / "reports" / "ingest.txt").read_text()


def test_the_unknown_class_hint_keeps_its_table_name(folder, tmp_path):
    folder.controls()
    folder.pair("x.jpg", [Obj("nevus [spilus]", 1, 1, 5, 5)])
    code, out, _ = run("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels)
    assert code == 0
    assert "add an alias under [classes.aliases] in annotator.toml" in out
    assert "'nevus [spilus]'" in out


def test_an_error_line_keeps_brackets_in_the_path(tmp_path):
    missing = tmp_path / "photos [old]"
    code, _, err = run("init", tmp_path / "ws", "--images", missing)
    assert code != 0
    assert f"error: --images {missing}: no such folder" in " ".join(err.split())


def test_status_prints_class_names_with_brackets(folder, tmp_path):
    folder.pair("x.jpg", [Obj("[b]old", 1, 1, 5, 5)])
    run("init", tmp_path / "ws", "--images", folder.images, "--labels", folder.labels, "--classes", "[b]old")
    code, out, _ = run("status", "-w", tmp_path / "ws")
    assert code == 0
    assert "[b]old: 1" in out


def test_say_and_fail_take_plain_text(capsys):
    say("benchmarking [bold] on /data/[x]")
    fail("cannot read /data/[red]/a.xml")
    say(tagged("note:", "yellow", "annotator.toml sets [review] url"))
    err = capsys.readouterr().err
    assert "benchmarking [bold] on /data/[x]" in err
    assert "error: cannot read /data/[red]/a.xml" in err
    assert "note: annotator.toml sets [review] url" in err


def test_a_tagged_line_keeps_the_text_whole(capsys):
    stdout_console.print(tagged("  quarantined", "red", f"{BRACKETED}: [/] is not a tag"))
    assert f"quarantined {BRACKETED}: [/] is not a tag" in capsys.readouterr().out
