"""Shared terminal output: one rich console, progress bars, JSON output, error lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

# Piped output (logs, CI) gets 120 columns rather than rich's 80, so tables are not cut.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)


def progress_bar(transient: bool = False) -> Progress:
    """The progress bar every long loop uses (goes to stderr so --json stdout stays clean)."""
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=transient,
                    disable=not err_console.is_terminal and not _force_progress())


def _force_progress() -> bool:
    import os
    return os.environ.get("ANNOTATOR_PROGRESS", "") == "1"


def say(message: str) -> None:
    """A step announcement on stderr (keeps stdout for results and --json)."""
    err_console.print(message)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
