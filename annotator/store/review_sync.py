"""Label Studio bookkeeping: which task holds each photo (and which label version was pushed to it),
and which annotations a pull has stored (or found deleted since). Nothing here talks to Label Studio."""

from __future__ import annotations

from collections.abc import Iterable

from annotator.store.database import Database, now_iso


class ReviewSync:
    """The task map, pushed versions, pulled and deleted annotations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def task_map(self, project_id: int | None = None) -> dict[str, int]:
        sql = "SELECT i.path, t.task_id FROM tasks t JOIN images i ON i.id=t.image_id"
        rows = self._db.conn.execute(
            sql + (" WHERE t.project_id=?" if project_id is not None else ""),
            (project_id,) if project_id is not None else (),
        )
        return {r[0]: r[1] for r in rows}

    def pushed_versions(self) -> dict[str, int | None]:
        return {
            r[0]: r[1]
            for r in self._db.conn.execute(
                "SELECT i.path, t.pushed_version_id FROM tasks t JOIN images i ON i.id=t.image_id"
            )
        }

    def record_tasks(self, project_id: int, rows: Iterable[tuple[str, int, int | None]]) -> None:
        """rows: (image path, task id, pushed label-version id)."""
        with self._db.transaction() as c:
            for path, task_id, version_id in rows:
                c.execute(
                    "INSERT INTO tasks(image_id, project_id, task_id, pushed_version_id, pushed_at) "
                    "SELECT id, ?, ?, ?, ? FROM images WHERE path=? ON CONFLICT(image_id) DO UPDATE SET "
                    "project_id=excluded.project_id, task_id=excluded.task_id, "
                    "pushed_version_id=excluded.pushed_version_id, pushed_at=excluded.pushed_at",
                    (project_id, task_id, version_id, now_iso(), path),
                )

    def forget_tasks(self, project_id: int) -> None:
        with self._db.transaction() as c:
            c.execute("DELETE FROM tasks WHERE project_id=?", (project_id,))

    def pulled_annotations(self) -> dict[int, str | None]:
        """annotation id -> the `updated_at` we stored (an edited annotation is pulled again)."""
        return {r[0]: r[1] for r in self._db.conn.execute("SELECT annotation_id, updated_at FROM pulled_annotations")}

    def record_pulled(self, annotation_id: int, path: str, version_id: int | None, updated_at: str | None) -> None:
        with self._db.transaction() as c:
            c.execute(
                "INSERT INTO pulled_annotations(annotation_id, image_id, version_id, updated_at, pulled_at) "
                "SELECT ?, id, ?, ?, ? FROM images WHERE path=? ON CONFLICT(annotation_id) DO UPDATE SET "
                "version_id=excluded.version_id, updated_at=excluded.updated_at, pulled_at=excluded.pulled_at",
                (annotation_id, version_id, updated_at, now_iso(), path),
            )

    def pulled_annotation_tasks(self, project_id: int) -> dict[int, int]:
        """annotation id -> task id, for the annotations of `project_id` pulled and not since deleted in it."""
        return {
            r[0]: r[1]
            for r in self._db.conn.execute(
                "SELECT pa.annotation_id, json_extract(lv.meta, '$.task_id') FROM pulled_annotations pa "
                "JOIN label_versions lv ON lv.id=pa.version_id WHERE pa.deleted_at IS NULL "
                "AND json_extract(lv.meta, '$.project_id')=?",
                (project_id,),
            )
        }

    def mark_annotations_deleted(self, annotation_ids: Iterable[int]) -> None:
        """The reviews stay in the history (nothing is overwritten); their pulled-rows say they were deleted."""
        with self._db.transaction() as c:
            c.executemany(
                "UPDATE pulled_annotations SET deleted_at=? WHERE annotation_id=? AND deleted_at IS NULL",
                [(now_iso(), a) for a in annotation_ids],
            )

    def deleted_annotations(self) -> dict[int, str]:
        """annotation id -> when a pull found it deleted in Label Studio."""
        return {
            r[0]: r[1]
            for r in self._db.conn.execute(
                "SELECT annotation_id, deleted_at FROM pulled_annotations WHERE deleted_at IS NOT NULL"
            )
        }
