"""Long work shows its true progress: bars with real totals on a terminal, timed plain lines off it."""

from __future__ import annotations

import re

import pytest

from annotator import progress as progress_module
from annotator.progress import LoopProgress


@pytest.fixture
def captured_stderr(monkeypatch):
    from rich.console import Console

    console = Console(record=True, force_terminal=False, width=120)
    monkeypatch.setattr(progress_module, "err_console", console)
    return console


def test_off_a_terminal_every_epoch_and_every_tenth_of_the_photos_is_a_timed_line(captured_stderr):
    with LoopProgress(terminal=False) as progress:
        progress.stage("round 0: training from yolo11n.yaml")
        for epoch in range(1, 4):
            progress.epoch(epoch, 3)
        for _ in range(100):
            progress.predicted(1, 100)
    lines = captured_stderr.export_text().splitlines()
    assert all(re.match(r"\[\d+:\d\d\] ", line) for line in lines), lines
    assert [line.split("] ", 1)[1] for line in lines[:4]] == [
        "round 0: training from yolo11n.yaml",
        "training: 1/3",
        "training: 2/3",
        "training: 3/3",
    ]
    photo_lines = [line.split("] ", 1)[1] for line in lines[4:]]
    assert photo_lines == [f"pre-annotating: {n}/100" for n in range(10, 101, 10)]


def test_square_brackets_in_a_stage_text_are_printed_not_swallowed_as_markup(captured_stderr):
    with LoopProgress(terminal=False) as progress:
        progress.stage("pre-annotating visit [red] 1.jpg")
    assert "visit [red] 1.jpg" in captured_stderr.export_text()


def test_on_a_terminal_the_bars_carry_the_true_totals_and_never_run_past_them():
    progress = LoopProgress(terminal=True)
    with progress:
        progress.epoch(4, 3)  # Ultralytics may report one more epoch than it planned
        progress.predicted(7, 20)
        progress.predicted(13, 20)
        bar = progress._bar
        assert bar is not None
        tasks = {task.description: task for task in bar.tasks}
    assert (tasks["training"].completed, tasks["training"].total) == (3, 3)
    assert (tasks["pre-annotating"].completed, tasks["pre-annotating"].total) == (20, 20)
