"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_temp_files(folder: str | os.PathLike, names: str = "*") -> int:
    """Delete, under `folder`, the temp files of atomic writes a killed process never renamed
    (`.<name>.<random>.tmp`, `<name>` matching `names`). Returns the count. Only for folders no
    other process is writing to (the caller holds the workspace lock)."""
    root = Path(folder)
    if not root.is_dir():
        return 0
    removed = 0
    for leftover in root.rglob(f".{names}.*.tmp"):
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def is_within(child: Path, root: Path) -> bool:
    """True when `child` (after resolving symlinks) lies inside `root`."""
    try:
        child.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False
