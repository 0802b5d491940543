"""The VOC mirror's bookkeeping: which label version each photo's file under `labels/` was written
from, so a sync rewrites only what is stale. The files themselves are written by `Workspace`."""

from __future__ import annotations

from collections.abc import Iterable

from annotator.store.database import Database


class VocMirror:
    """Which current labels the VOC mirror has written, and which it has not."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def stale_voc(self) -> list[tuple[str, int]]:
        return [
            (r[0], r[1])
            for r in self._db.conn.execute(
                "SELECT i.path, cl.version_id FROM current_labels cl JOIN images i ON i.id=cl.image_id "
                "WHERE i.voc_version_id IS NOT cl.version_id"
            )
        ]

    def current_version_ids(self) -> list[tuple[str, int]]:
        return [
            (r[0], r[1])
            for r in self._db.conn.execute(
                "SELECT i.path, cl.version_id FROM current_labels cl JOIN images i ON i.id=cl.image_id ORDER BY i.id"
            )
        ]

    def mark_voc_written(self, items: Iterable[tuple[str, int]]) -> None:
        with self._db.transaction() as c:
            c.executemany("UPDATE images SET voc_version_id=? WHERE path=?", [(v, p) for p, v in items])
