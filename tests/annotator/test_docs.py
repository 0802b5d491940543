"""The CLI reference in docs/ is generated from the typer app and kept in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_the_commands():
    typer_bin = Path(sys.executable).with_name("typer")
    generated = subprocess.run(
        [str(typer_bin), "annotator.cli", "utils", "docs", "--name", "annotator"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert generated.strip() == (REPO / "docs" / "cli.md").read_text().strip(), "docs/cli.md is stale: run `make docs`"
