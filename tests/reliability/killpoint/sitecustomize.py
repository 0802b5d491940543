"""A fault-injection point for the crash tests, never loaded by the tool itself: reliability_kit puts
this folder on PYTHONPATH of one `annotator` command it starts, and Python runs this file at start-up.

With ANNOTATOR_TEST_KILL_AT="FOLDER|N|group" (or "...|main"), the command SIGKILLs itself (its whole
process group, or its main process only) just before its Nth rename of a file into FOLDER: for the
VOC mirror under labels/, the moment a label file is about to appear. A kill at a known point of the
work, so a test never depends on a poll catching a moment that a fast machine skips. It watches
Python's audit events (PEP 578), so the tool's code is the one users run, unchanged.
"""

from __future__ import annotations

import os
import signal
import sys

KILL_AT_ENV = "ANNOTATOR_TEST_KILL_AT"


def _arm() -> None:
    spec = os.environ.pop(KILL_AT_ENV, None)  # popped: processes this command starts are never armed
    if not spec:
        return
    folder, nth, scope = spec.rsplit("|", 2)
    inside = os.path.join(os.path.realpath(folder), "")
    left = int(nth)
    me = os.getpid()  # a forked worker inherits the hook, not the job

    def hook(event: str, args: tuple) -> None:
        nonlocal left
        if event != "os.rename" or os.getpid() != me or not isinstance(args[1], (str, bytes, os.PathLike)):
            return
        if not os.path.realpath(os.fsdecode(args[1])).startswith(inside):
            return
        left -= 1
        if left == 0:
            if scope == "group":
                os.killpg(0, signal.SIGKILL)
            os.kill(me, signal.SIGKILL)

    sys.addaudithook(hook)


_arm()
