"""`annotator review ...` numeric options: out of its range, an option is refused by the parser with its
name, exit code 2 and no traceback, before the workspace is opened or Label Studio is contacted.
(`review pull` and `review status` take no numeric option.) No server is needed: nothing may run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import Config
from annotator.store import Workspace


def _tree(root) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time: what "nothing ran" leaves unchanged."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "photos").mkdir()
    Workspace.create(tmp_path / "ws", Config(images=tmp_path / "photos")).close()
    return tmp_path / "ws"


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("push", "--batch", "0"),
        ("push", "--batch", "-3"),
        ("simulate", "--count", "0"),
        ("simulate", "--noise", "1.5"),
        ("simulate", "--noise", "-0.1"),
        ("simulate", "--seed", "-1"),
        ("simulate", "--accept-iou", "1.2"),
        ("simulate", "--accept-iou", "-0.5"),
        ("serve", "--port", "0"),
        ("serve", "--port", "70000"),
    ],
)
def test_a_review_option_out_of_range_is_refused_and_nothing_runs(workspace, command, option, value):
    before = _tree(workspace)
    result = CliRunner().invoke(app, ["review", command, "-w", str(workspace), option, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
    assert "Label Studio" not in result.output, "refused before any server is contacted"
    assert _tree(workspace) == before and not (workspace / "label-studio").exists()
