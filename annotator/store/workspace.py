"""The workspace folder: annotator.toml, the database, the VOC mirror, reports and rounds.

The current labels are mirrored as labelImg VOC XML under `labels/`, written atomically after each
commit; a killed command leaves at worst a stale mirror and unrenamed temp files, which the next
writer to open the workspace repairs and removes.

Writers take an exclusive lock (`.annotator.lock`); a second writer gets WorkspaceBusy.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.config import Config, load_config, save_config
from annotator.errors import WorkspaceBusy, WorkspaceError
from annotator.formats.voc import voc_xml_bytes, write_voc
from annotator.fsutil import atomic_write_many, remove_temp_files
from annotator.store.database import DB_NAME
from annotator.store.store import Store
from annotator.types import LabelVersion

LOCK_NAME = ".annotator.lock"


class Workspace:
    """A folder holding annotator.toml, the database, the VOC mirror, reports and rounds."""

    def __init__(self, root: Path, config: Config, store: Store, lock_fd: int | None) -> None:
        self.root = root
        self.config = config
        self.store = store
        self._lock_fd = lock_fd

    # layout
    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def round_dir(self, round_no: int, attempt: int = 0) -> Path:
        return self.root / "rounds" / (f"{round_no:03d}" if attempt == 0 else f"{round_no:03d}-attempt{attempt}")

    @property
    def image_root(self) -> Path:
        return self.config.images

    def image_path(self, rel: str) -> Path:
        return self.config.images / PurePosixPath(rel)

    def voc_path(self, rel: str) -> Path:
        return self.labels_dir / PurePosixPath(rel).with_suffix(".xml")

    # lifecycle
    @classmethod
    def create(cls, root: Path, config: Config) -> Workspace:
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "annotator.toml").exists():
            save_config(root, config)
        return cls.open(root, write=True)

    @classmethod
    def open(cls, root: Path, *, write: bool = False) -> Workspace:
        root = root.resolve()
        config = load_config(root)
        if not (root / DB_NAME).exists() and not write:
            raise WorkspaceError(f"{root / DB_NAME} not found: run `annotator init {root} --images DIR` first")
        lock_fd = None
        if write:
            lock_fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                raise WorkspaceBusy(
                    f"{root}: workspace busy, another annotator command is writing to it; "
                    "wait for it to finish and run this again"
                ) from None
        ws = cls(root, config, Store(root / DB_NAME), lock_fd)
        if write:  # under the lock: no other writer can own a temp file now
            remove_temp_files(ws.labels_dir, "*.xml")
            remove_temp_files(ws.reports_dir)
            ws.sync_voc_mirror()
        return ws

    def close(self) -> None:
        self.store.close()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_config(self, config: Config) -> None:
        save_config(self.root, config)
        self.config = config

    # the VOC mirror
    def write_voc_for(self, version: LabelVersion) -> None:
        write_voc(**self._voc_arguments(version))

    def _voc_arguments(self, version: LabelVersion) -> dict[str, Any]:
        rec = self.store.labels.image(version.image_path)
        assert rec is not None
        provenance = {
            "source": version.source.value,
            "round": version.round,
            "model_version": version.model_version,
            "reviewer": version.reviewer,
            "created_at": version.created_at,
            "uncertainty": None if version.uncertainty is None else f"{version.uncertainty:.4f}",
            "excluded": "yes" if version.excluded else None,
            "version_id": version.id,
        }
        return dict(
            target=self.voc_path(rec.path),
            filename=PurePosixPath(rec.path).name,
            path=str(self.image_path(rec.path)),
            width=rec.width,
            height=rec.height,
            depth=None,
            boxes=version.boxes,
            provenance=provenance,
            verified=version.source.is_human,
            folder=PurePosixPath(rec.path).parent.name or self.config.images.name,
        )

    def sync_voc_mirror(self, paths: Iterable[str] | None = None) -> int:
        """Write every current label whose VOC mirror is missing or stale. Returns the count.

        A file is marked written only once it is on disk (each write is fsynced), 500 at a time through
        `atomic_write_many`: the XML is made and written on this thread, only the fsyncs run in parallel
        (8,000 files: half the CPU of a 16-thread pool of single writes, and ~20% less time).
        paths: only these photos' stale labels, without looking for files deleted by hand (a pull
        mirrors each chunk of reviews as it stores them, then syncs everything once)."""
        stale = dict(self.store.mirror.stale_voc())
        if paths is not None:
            wanted = set(paths)
            stale = {path: version_id for path, version_id in stale.items() if path in wanted}
        else:
            for path, version_id in self.store.mirror.current_version_ids():
                if path not in stale and not self.voc_path(path).exists():  # deleted by hand since it was written
                    stale[path] = version_id
        items = list(stale.items())
        for start in range(0, len(items), 500):
            written, files = [], []
            for path, version_id in items[start : start + 500]:
                version = self.store.labels.version(version_id)
                if version is not None:
                    arguments = self._voc_arguments(version)
                    files.append((arguments.pop("target"), voc_xml_bytes(**arguments)))
                    written.append((path, version_id))
            atomic_write_many(files, sync_threads=8)
            self.store.mirror.mark_voc_written(written)
        return len(stale)
