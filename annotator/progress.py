"""Progress of long work (a round's training and pre-annotation), drawn the way the reader sees it:
rich bars with their true totals on a terminal; off a terminal (logs, CI, nohup) one plain line per
stage, per epoch and per tenth of the photos, each with the elapsed time, so a five-minute training
is never a single silent line."""

from __future__ import annotations

import time
from types import TracebackType

from rich.markup import escape
from rich.progress import Progress, TaskID

from annotator.console import err_console, progress_bar


class LoopProgress:
    """Callbacks for a round: `stage(text)`, `epoch(done, total)`, `predicted(n, total)`."""

    def __init__(self, *, terminal: bool | None = None) -> None:
        self.terminal = err_console.is_terminal if terminal is None else terminal
        self._started = time.perf_counter()
        self._bar: Progress | None = progress_bar() if self.terminal else None
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._last_logged: dict[str, int] = {}

    def __enter__(self) -> LoopProgress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    def _elapsed(self) -> str:
        seconds = int(time.perf_counter() - self._started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _line(self, text: str) -> None:
        err_console.print(f"[{self._elapsed()}] {escape(text)}", soft_wrap=True, highlight=False)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(f"[bold]{escape(text)}[/]", soft_wrap=True)
        else:
            self._line(text)

    def epoch(self, done: int, total: int) -> None:
        self._advance("training", done, total, absolute=True, every=1)

    def predicted(self, n: int, total: int) -> None:
        self._advance("pre-annotating", n, total, absolute=False, every=max(1, total // 10))

    def _advance(self, what: str, value: int, total: int, *, absolute: bool, every: int) -> None:
        done = value if absolute else self._done.get(what, 0) + value
        self._done[what] = done
        if self._bar is not None:
            if what not in self._tasks:
                self._tasks[what] = self._bar.add_task(what, total=total)
            self._bar.update(self._tasks[what], completed=min(done, total), total=total)
            return
        last = self._last_logged.get(what, 0)
        if done - last >= every or (done >= total and last < total):
            self._last_logged[what] = done
            self._line(f"{what}: {min(done, total)}/{total}")
