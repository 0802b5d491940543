"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it."""
    atomic_write_many([(path, data)], mode=mode)


def atomic_write_many(
    files: Sequence[tuple[str | os.PathLike, bytes]], *, sync_threads: int = 16, mode: int | None = None
) -> None:
    """`atomic_write_bytes` for many files at once, with the same guarantee for each: written to a temp
    file beside its target (with `mode`, if given), fsynced, then renamed over it.

    Why not a thread pool of `atomic_write_bytes`: the Python part of a write (~0.3 ms) holds the GIL,
    and threads taking turns on it cost more CPU than the writes (4,000 VOC files: 2.4 s of CPU on one
    thread, 7.2 s on four). Only the fsyncs, which wait on the disk and release the GIL, run in
    parallel here: on a disk where each takes milliseconds, they overlap. A failure removes every temp
    file not yet renamed and re-raises; files renamed before it are whole new files."""
    made: list[tuple[int, str, Path]] = []
    folders: set[Path] = set()
    closed = renamed = 0  # made[:closed] have their descriptors closed, made[:renamed] are in place
    try:
        for path, data in files:
            target = Path(path)
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            made.append((fd, tmp, target))
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        descriptors = [fd for fd, _, _ in made]
        if len(made) > 1 and sync_threads > 1:
            with ThreadPoolExecutor(max_workers=min(sync_threads, len(made))) as pool:
                for _ in pool.map(os.fsync, descriptors):  # re-raises a failed fsync
                    pass
        else:
            for fd in descriptors:
                os.fsync(fd)
        for fd, tmp, target in made:
            closed += 1  # counted first: a descriptor is never closed twice (its number may be reused)
            os.close(fd)
            os.replace(tmp, target)
            renamed += 1
    finally:
        for fd, _, _ in made[closed:]:
            try:
                os.close(fd)
            except OSError:
                pass
        for _, tmp, _ in made[renamed:]:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


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
