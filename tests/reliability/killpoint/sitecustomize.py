"""A fault-injection point for the crash tests, never loaded by the tool itself: reliability_kit puts
this folder on PYTHONPATH of one `annotator` command it starts, and Python runs this file at start-up.

A kill at a known point of the work, so a test never depends on a poll catching a moment that a fast
machine skips (a pull stores 30 annotations in a few milliseconds). Two kinds, each "SPEC|N|group"
(or "...|main": the main process only):

- ANNOTATOR_TEST_KILL_AT="FOLDER|N|...": SIGKILL just before the command's Nth rename of a file into
  FOLDER; for the VOC mirror under labels/, the moment a label file is about to appear. It watches
  Python's audit events (PEP 578).
- ANNOTATOR_TEST_KILL_AFTER="package.module:function|N|...": SIGKILL as the Nth call of that
  module-level function returns (for `review_queue.labelstudio.pull:_store_annotation`: with N
  annotations committed and the rest not). The function is wrapped as its module is imported.

Either way the tool's code is the one users run, unchanged.
"""

from __future__ import annotations

import importlib.machinery
import os
import signal
import sys

KILL_AT_ENV = "ANNOTATOR_TEST_KILL_AT"
KILL_AFTER_ENV = "ANNOTATOR_TEST_KILL_AFTER"


def _die(scope: str, me: int) -> None:
    if scope == "group":
        os.killpg(0, signal.SIGKILL)
    os.kill(me, signal.SIGKILL)


def _arm_rename() -> None:
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
            _die(scope, me)

    sys.addaudithook(hook)


class _WrapOnImport:
    """A meta path finder that, when `module` is imported, replaces its `function` by a wrapper that
    kills the command as the Nth call returns (calls through the module's globals see the wrapper)."""

    def __init__(self, module: str, function: str, nth: int, scope: str) -> None:
        self.module, self.function, self.left, self.scope = module, function, nth, scope
        self.me = os.getpid()

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module) -> None:  # noqa: ANN001
            run_module(module)
            original = getattr(module, self.function)

            def wrapped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                out = original(*args, **kwargs)
                if os.getpid() == self.me:
                    self.left -= 1
                    if self.left == 0:
                        _die(self.scope, self.me)
                return out

            setattr(module, self.function, wrapped)

        spec.loader.exec_module = exec_module
        return spec


def _arm_after_call() -> None:
    spec = os.environ.pop(KILL_AFTER_ENV, None)
    if not spec:
        return
    target, nth, scope = spec.rsplit("|", 2)
    module, function = target.split(":")
    sys.meta_path.insert(0, _WrapOnImport(module, function, int(nth), scope))


_arm_rename()
_arm_after_call()
