"""Shared terminal output: one rich console, progress bars, JSON output, error lines.

Rich reads `[...]` as markup, so `visit [red] 1.jpg` would print as `visit  1.jpg`. One rule keeps
every file name and message whole: text we did not write ourselves (file names, paths, class names,
exception messages) is either passed to the plain-text helpers here (`say`, `tagged`; the CLI's
`fail`), which never parse markup, or interpolated through `escape` into markup we wrote.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["console", "err_console", "escape", "print_json", "progress_bar", "say", "tagged"]

# Piped output (logs, CI) gets 120 columns rather than rich's 80, so tables are not cut.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)


def progress_bar(transient: bool = False) -> Progress:
    """The progress bar every long loop uses (goes to stderr so --json stdout stays clean)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=not err_console.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return os.environ.get("ANNOTATOR_PROGRESS", "") == "1"


def tagged(tag: str, style: str, text: str) -> Text:
    """`tag` in `style`, a space, then `text` exactly as written (no markup is read in either)."""
    return Text.assemble((tag, style), " ", text)


def say(message: str | Text, *, style: str | None = None) -> None:
    """A step announcement on stderr (keeps stdout for results and --json). `message` is plain text,
    printed as written (brackets included), in `style` if given; a rich Text keeps its own styles."""
    err_console.print(message, style=style, markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
