"""What every CLI command shares: the workspace option, --json, and turning errors into one line."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from annotator.console import err_console, tagged
from annotator.errors import AnnotatorError

WorkspaceOption = Annotated[
    Path, typer.Option("-w", "--workspace", help="Workspace folder (default: current folder).", file_okay=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` (plain text: file names with brackets print as written) as one red error line."""
    err_console.print(tagged("error:", "bold red", message), soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """User mistakes become one red line and a non-zero exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AnnotatorError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            message = "interrupted; everything finished so far is saved, run the same command again to continue"
            raise fail(message, 130) from None
        except sqlite3.DatabaseError as exc:
            raise fail(f"the workspace database cannot be used ({exc}); is another program writing to it?", 5) from None

    return wrapper  # type: ignore[return-value]
