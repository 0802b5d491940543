"""The workspace: one SQLite database, the only writer of workspace state.

Holds every photo, every label version (append-only, with provenance), the ingest report,
splits, Label Studio task ids, pulled annotation ids, rounds and their manifests. The current
labels are mirrored as labelImg VOC XML under `labels/`, written atomically after each commit;
a killed command leaves at worst a stale mirror and unrenamed temp files, which the next writer
to open the workspace repairs and removes.

Writers take an exclusive lock (`.annotator.lock`); a second writer gets WorkspaceBusy.

A photo whose label sources disagree (two copies of the same photo with different hand boxes, or
a labelImg file edited after a dermatologist's review) carries an open *conflict*: the review
queue serves those first (`Store.conflicts()`), and a new reviewed label resolves them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.config import Config, load_config, save_config
from annotator.errors import WorkspaceBusy, WorkspaceError
from annotator.formats.voc import voc_xml_bytes, write_voc
from annotator.fsutil import atomic_write_many, remove_temp_files
from annotator.rounds import RoundRecord, Stage, TrainedRound
from annotator.types import Box, DeviceClass, ImageRecord, LabelVersion, Source

DB_NAME = "annotator.db"
LOCK_NAME = ".annotator.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    orientation INTEGER NOT NULL DEFAULT 1,
    make TEXT, model TEXT,
    device_class TEXT NOT NULL DEFAULT 'unknown',
    split TEXT,
    voc_version_id INTEGER,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_sha ON images(sha256);
CREATE TABLE IF NOT EXISTS label_versions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    source TEXT NOT NULL,
    round INTEGER,
    model_version TEXT,
    reviewer TEXT,
    created_at TEXT NOT NULL,
    excluded INTEGER NOT NULL DEFAULT 0,
    uncertainty REAL,
    boxes TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS lv_image ON label_versions(image_id, id);
CREATE TABLE IF NOT EXISTS current_labels (
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    version_id INTEGER NOT NULL REFERENCES label_versions(id)
);
CREATE TABLE IF NOT EXISTS ingest_issues (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    action TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE(path, reason, message)
);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES label_versions(id),
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT,
    UNIQUE(image_id, kind, version_id)
);
CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts(resolved_at, id);
CREATE TABLE IF NOT EXISTS tasks (
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    project_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    pushed_version_id INTEGER,
    pushed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pulled_annotations (
    annotation_id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    version_id INTEGER REFERENCES label_versions(id),
    updated_at TEXT,
    pulled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL,
    model_path TEXT,
    model_version TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    info TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (round, attempt)
);
CREATE TABLE IF NOT EXISTS manifests (
    round INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id),
    version_id INTEGER NOT NULL REFERENCES label_versions(id),
    split TEXT NOT NULL,
    PRIMARY KEY (round, attempt, image_id)
);
"""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _insert_version(c: sqlite3.Connection, image_id: int, lv: LabelVersion) -> int:
    """One label_versions row for `lv` (current or history alike); its id."""
    cur = c.execute(
        "INSERT INTO label_versions(image_id, source, round, model_version, reviewer, created_at, excluded,"
        " uncertainty, boxes, meta) VALUES(?,?,?,?,?,?,?,?,?,?)",
        (
            image_id,
            lv.source.value,
            lv.round,
            lv.model_version,
            lv.reviewer,
            lv.created_at or now_iso(),
            int(lv.excluded),
            lv.uncertainty,
            _boxes_json(lv.boxes),
            json.dumps(lv.meta, default=str),
        ),
    )
    return _inserted_id(cur)


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added (sqlite3 types it Optional; after an INSERT it never is)."""
    assert cur.lastrowid is not None
    return cur.lastrowid


def _boxes_json(boxes: Iterable[Box]) -> str:
    return json.dumps([b.to_dict() for b in boxes], separators=(",", ":"))


def _row_to_image(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        path=row["path"],
        sha256=row["sha256"],
        width=row["width"],
        height=row["height"],
        orientation=row["orientation"],
        make=row["make"],
        model=row["model"],
        device_class=DeviceClass(row["device_class"]),
        id=row["id"],
        split=row["split"],
    )


def _row_to_version(row: sqlite3.Row) -> LabelVersion:
    return LabelVersion(
        image_path=row["path"],
        source=Source(row["source"]),
        boxes=tuple(Box.from_dict(b) for b in json.loads(row["boxes"])),
        round=row["round"],
        model_version=row["model_version"],
        reviewer=row["reviewer"],
        created_at=row["created_at"],
        excluded=bool(row["excluded"]),
        uncertainty=row["uncertainty"],
        meta=json.loads(row["meta"]),
        id=row["id"],
    )


@dataclass(frozen=True)
class Conflict:
    """An open disagreement about a photo's labels, waiting for a person to decide.

    kind: "duplicate-labels" (another copy of the photo brought different hand boxes) or
    "xml-after-review" (a labelImg file changed after a dermatologist reviewed the photo).
    version_id: the label version (in the photo's history, not current) that disagrees.
    """

    path: str
    kind: str
    detail: str
    version_id: int
    created_at: str


_VERSION_COLUMNS = (
    "lv.id, i.path, lv.source, lv.round, lv.model_version, lv.reviewer, lv.created_at, lv.excluded, "
    "lv.uncertainty, lv.boxes, lv.meta"
)


class Store:
    """SQLite access. All multi-row writes go through `transaction()`."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        self.conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(_SCHEMA)
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(pulled_annotations)")}
        if "deleted_at" not in columns:  # workspaces made before pull noticed deleted annotations
            self.conn.execute("ALTER TABLE pulled_annotations ADD COLUMN deleted_at TEXT")
        self._depth = 0

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Nested calls join the outer transaction; the outermost commits or rolls back."""
        if self._depth == 0:
            self.conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self.conn
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.conn.execute("COMMIT")

    # ---- meta --------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # ---- images ------------------------------------------------------------------------
    def add_image(self, rec: ImageRecord) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO images(path, sha256, width, height, orientation, make, model, device_class, added_at)"
                " VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO NOTHING",
                (
                    rec.path,
                    rec.sha256,
                    rec.width,
                    rec.height,
                    rec.orientation,
                    rec.make,
                    rec.model,
                    rec.device_class.value,
                    now_iso(),
                ),
            )
            if cur.rowcount:
                return _inserted_id(cur)
            return int(c.execute("SELECT id FROM images WHERE path=?", (rec.path,)).fetchone()[0])

    def image(self, path: str) -> ImageRecord | None:
        row = self.conn.execute("SELECT * FROM images WHERE path=?", (path,)).fetchone()
        return _row_to_image(row) if row else None

    def image_by_id(self, image_id: int) -> ImageRecord | None:
        row = self.conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        return _row_to_image(row) if row else None

    def path_with_sha(self, sha256: str) -> str | None:
        row = self.conn.execute("SELECT path FROM images WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return row[0] if row else None

    def known_paths(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT path FROM images")}

    def images(self, split: str | None = None) -> list[ImageRecord]:
        if split is None:
            rows = self.conn.execute("SELECT * FROM images ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM images WHERE split=? ORDER BY id", (split,))
        return [_row_to_image(r) for r in rows]

    def set_splits(self, splits: dict[str, str]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE images SET split=? WHERE path=?", [(s, p) for p, s in splits.items()])

    def splits(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT path, split FROM images WHERE split IS NOT NULL")}

    # ---- label versions ----------------------------------------------------------------
    def add_label_version(self, lv: LabelVersion) -> int | None:
        """Append a version and make it current. A model version is refused (None returned)
        when the photo already has a human or accepted label: a model never overwrites them."""
        with self.transaction() as c:
            row = c.execute("SELECT id FROM images WHERE path=?", (lv.image_path,)).fetchone()
            if row is None:
                raise WorkspaceError(f"{lv.image_path}: not in the workspace; run `annotator init` to add it")
            image_id = row[0]
            if lv.source is Source.MODEL:
                cur = c.execute(
                    "SELECT lv.source FROM current_labels cl JOIN label_versions lv ON lv.id=cl.version_id"
                    " WHERE cl.image_id=?",
                    (image_id,),
                ).fetchone()
                if cur is not None and cur[0] != Source.MODEL.value:
                    return None
            version_id = _insert_version(c, image_id, lv)
            c.execute(
                "INSERT INTO current_labels(image_id, version_id) VALUES(?, ?) "
                "ON CONFLICT(image_id) DO UPDATE SET version_id=excluded.version_id",
                (image_id, version_id),
            )
            if lv.source is Source.REVIEWED:  # a dermatologist has looked at the photo again: that is the decision
                c.execute(
                    "UPDATE conflicts SET resolved_at=?, resolution=? WHERE image_id=? AND resolved_at IS NULL",
                    (now_iso(), f"reviewed (version {version_id})", image_id),
                )
            return version_id

    def add_history_version(self, lv: LabelVersion) -> int:
        """Append a version to the history without making it current (superseded annotations)."""
        with self.transaction() as c:
            image_id = c.execute("SELECT id FROM images WHERE path=?", (lv.image_path,)).fetchone()[0]
            return _insert_version(c, image_id, lv)

    def latest_versions_by_xml(self) -> dict[str, dict[str, LabelVersion]]:
        """photo path -> {labelImg file (meta "xml") -> the latest version made from that file}: what a
        re-run of ingest compares each label file with (by the content hash stored in the version's meta)."""
        rows = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM label_versions lv JOIN images i ON i.id=lv.image_id "
            "WHERE lv.source='manual' AND json_extract(lv.meta, '$.xml') IS NOT NULL "
            "ORDER BY lv.id"
        )
        out: dict[str, dict[str, LabelVersion]] = {}
        for row in rows:
            version = _row_to_version(row)
            out.setdefault(version.image_path, {})[str(version.meta["xml"])] = version
        return out

    def classes_in_use(self) -> Counter[str]:
        """Class name -> number of boxes carrying it, over every label version (history included)."""
        return Counter(
            {
                r[0]: r[1]
                for r in self.conn.execute(
                    "SELECT json_extract(b.value, '$.label'), COUNT(*) FROM label_versions lv, json_each(lv.boxes) b "
                    "GROUP BY 1"
                )
            }
        )

    def current_label(self, path: str) -> LabelVersion | None:
        row = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM current_labels cl JOIN label_versions lv ON lv.id=cl.version_id "
            "JOIN images i ON i.id=cl.image_id WHERE i.path=?",
            (path,),
        ).fetchone()
        return _row_to_version(row) if row else None

    def current_labels(self, sources: Iterable[Source] | None = None) -> dict[str, LabelVersion]:
        sql = (
            f"SELECT {_VERSION_COLUMNS} FROM current_labels cl JOIN label_versions lv ON lv.id=cl.version_id "
            "JOIN images i ON i.id=cl.image_id"
        )
        args: tuple = ()
        if sources is not None:
            values = [s.value for s in sources]
            sql += f" WHERE lv.source IN ({','.join('?' * len(values))})"
            args = tuple(values)
        return {r["path"]: _row_to_version(r) for r in self.conn.execute(sql + " ORDER BY i.id", args)}

    def version(self, version_id: int) -> LabelVersion | None:
        row = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM label_versions lv JOIN images i ON i.id=lv.image_id WHERE lv.id=?",
            (version_id,),
        ).fetchone()
        return _row_to_version(row) if row else None

    def history(self, path: str) -> list[LabelVersion]:
        rows = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM label_versions lv JOIN images i ON i.id=lv.image_id "
            "WHERE i.path=? ORDER BY lv.id",
            (path,),
        )
        return [_row_to_version(r) for r in rows]

    def paths_reviewed_by_several(self, minimum: int = 2) -> list[str]:
        """Photos with `reviewed` versions by at least `minimum` different reviewers: one query, so a
        pull on a project of thousands of single-reviewed photos does not read every history."""
        rows = self.conn.execute(
            "SELECT i.path FROM label_versions lv JOIN images i ON i.id=lv.image_id "
            "WHERE lv.source=? AND lv.reviewer IS NOT NULL GROUP BY i.path HAVING COUNT(DISTINCT lv.reviewer) >= ? "
            "ORDER BY i.path",
            (Source.REVIEWED.value, minimum),
        )
        return [r[0] for r in rows]

    def unlabelled_paths(self) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT path FROM images WHERE id NOT IN (SELECT image_id FROM current_labels) ORDER BY id"
            )
        ]

    # ---- ingest report -----------------------------------------------------------------
    def add_issue(self, path: str, reason: str, message: str, action: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO ingest_issues(path, reason, message, action, created_at) VALUES(?,?,?,?,?) "
                "ON CONFLICT DO NOTHING",
                (path, reason, message, action, now_iso()),
            )

    def issues(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT path, reason, message, action, created_at FROM ingest_issues ORDER BY id"
            )
        ]

    # ---- conflicts: label sources that disagree, waiting for a person ---------------------
    def flag_conflict(self, path: str, kind: str, detail: str, version_id: int) -> None:
        """Open a conflict on `path` about the history version `version_id` (flagging it twice is a no-op)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO conflicts(image_id, kind, detail, version_id, created_at) "
                "SELECT id, ?, ?, ?, ? FROM images WHERE path=? ON CONFLICT DO NOTHING",
                (kind, detail, version_id, now_iso(), path),
            )

    def conflicts(self) -> list[Conflict]:
        """Open conflicts, oldest first: the photos the review queue should serve before any other."""
        return [
            Conflict(r[0], r[1], r[2], r[3], r[4])
            for r in self.conn.execute(
                "SELECT i.path, c.kind, c.detail, c.version_id, c.created_at FROM conflicts c "
                "JOIN images i ON i.id=c.image_id WHERE c.resolved_at IS NULL ORDER BY c.id"
            )
        ]

    def resolve_conflicts(self, path: str, resolution: str, *, version_id: int | None = None) -> int:
        """Close the open conflicts of `path` (those about one history version, or all); returns how many."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE conflicts SET resolved_at=?, resolution=? WHERE resolved_at IS NULL AND "
                "image_id=(SELECT id FROM images WHERE path=?) AND (? IS NULL OR version_id=?)",
                (now_iso(), resolution, path, version_id, version_id),
            )
            return cur.rowcount

    # ---- Label Studio bookkeeping ------------------------------------------------------
    def task_map(self, project_id: int | None = None) -> dict[str, int]:
        sql = "SELECT i.path, t.task_id FROM tasks t JOIN images i ON i.id=t.image_id"
        rows = self.conn.execute(
            sql + (" WHERE t.project_id=?" if project_id is not None else ""),
            (project_id,) if project_id is not None else (),
        )
        return {r[0]: r[1] for r in rows}

    def pushed_versions(self) -> dict[str, int | None]:
        return {
            r[0]: r[1]
            for r in self.conn.execute(
                "SELECT i.path, t.pushed_version_id FROM tasks t JOIN images i ON i.id=t.image_id"
            )
        }

    def record_tasks(self, project_id: int, rows: Iterable[tuple[str, int, int | None]]) -> None:
        """rows: (image path, task id, pushed label-version id)."""
        with self.transaction() as c:
            for path, task_id, version_id in rows:
                c.execute(
                    "INSERT INTO tasks(image_id, project_id, task_id, pushed_version_id, pushed_at) "
                    "SELECT id, ?, ?, ?, ? FROM images WHERE path=? ON CONFLICT(image_id) DO UPDATE SET "
                    "project_id=excluded.project_id, task_id=excluded.task_id, "
                    "pushed_version_id=excluded.pushed_version_id, pushed_at=excluded.pushed_at",
                    (project_id, task_id, version_id, now_iso(), path),
                )

    def forget_tasks(self, project_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM tasks WHERE project_id=?", (project_id,))

    def pulled_annotations(self) -> dict[int, str | None]:
        """annotation id -> the `updated_at` we stored (an edited annotation is pulled again)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT annotation_id, updated_at FROM pulled_annotations")}

    def record_pulled(self, annotation_id: int, path: str, version_id: int | None, updated_at: str | None) -> None:
        with self.transaction() as c:
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
            for r in self.conn.execute(
                "SELECT pa.annotation_id, json_extract(lv.meta, '$.task_id') FROM pulled_annotations pa "
                "JOIN label_versions lv ON lv.id=pa.version_id WHERE pa.deleted_at IS NULL "
                "AND json_extract(lv.meta, '$.project_id')=?",
                (project_id,),
            )
        }

    def mark_annotations_deleted(self, annotation_ids: Iterable[int]) -> None:
        """The reviews stay in the history (nothing is overwritten); their pulled-rows say they were deleted."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE pulled_annotations SET deleted_at=? WHERE annotation_id=? AND deleted_at IS NULL",
                [(now_iso(), a) for a in annotation_ids],
            )

    def deleted_annotations(self) -> dict[int, str]:
        """annotation id -> when a pull found it deleted in Label Studio."""
        return {
            r[0]: r[1]
            for r in self.conn.execute(
                "SELECT annotation_id, deleted_at FROM pulled_annotations WHERE deleted_at IS NOT NULL"
            )
        }

    # ---- rounds and manifests ----------------------------------------------------------
    def round_record(self, round_no: int, attempt: int | None = None) -> RoundRecord | None:
        """One attempt at a round (None: the latest attempt); None when there is none."""
        if attempt is None:
            row = self.conn.execute(
                "SELECT * FROM rounds WHERE round=? ORDER BY attempt DESC LIMIT 1", (round_no,)
            ).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM rounds WHERE round=? AND attempt=?", (round_no, attempt)).fetchone()
        return None if row is None else RoundRecord.from_row(dict(row))

    def rounds(self) -> list[RoundRecord]:
        """The latest attempt of every round, in order."""
        rows = self.conn.execute(
            "SELECT r.* FROM rounds r JOIN (SELECT round, MAX(attempt) AS attempt FROM rounds GROUP BY round) latest "
            "USING (round, attempt) ORDER BY r.round"
        ).fetchall()
        return [RoundRecord.from_row(dict(row)) for row in rows]

    def upsert_round(
        self,
        round_no: int,
        attempt: int,
        *,
        stage: Stage,
        model_path: str | None = None,
        model_version: str | None = None,
        trained: TrainedRound | None = None,
        test_split: dict[str, Any] | None = None,
        preannotate: dict[str, Any] | None = None,
        push: dict[str, Any] | None = None,
    ) -> None:
        """Create a round or move it to `stage`, recording what is given; what is not given stays as it was
        (the JSON columns are merged key by key, so a row keeps every key it was ever written with)."""
        update = RoundRecord(
            round_no,
            attempt,
            Stage(stage),
            trained=trained,
            test_split=test_split,
            preannotate=preannotate,
            push=push,
        )
        existing = self.conn.execute(
            "SELECT metrics, info FROM rounds WHERE round=? AND attempt=?", (round_no, attempt)
        ).fetchone()
        with self.transaction() as c:
            if existing is None:
                c.execute(
                    "INSERT INTO rounds(round, attempt, stage, model_path, model_version, metrics, info, "
                    "created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?)",
                    (
                        round_no,
                        attempt,
                        update.stage.value,
                        model_path,
                        model_version,
                        json.dumps(update.metrics()),
                        json.dumps(update.info()),
                        now_iso(),
                        now_iso(),
                    ),
                )
            else:
                c.execute(
                    "UPDATE rounds SET stage=?, model_path=COALESCE(?, model_path), "
                    "model_version=COALESCE(?, model_version), metrics=?, info=?, updated_at=? "
                    "WHERE round=? AND attempt=?",
                    (
                        update.stage.value,
                        model_path,
                        model_version,
                        json.dumps({**json.loads(existing["metrics"]), **update.metrics()}),
                        json.dumps({**json.loads(existing["info"]), **update.info()}),
                        now_iso(),
                        round_no,
                        attempt,
                    ),
                )

    def write_manifest(self, round_no: int, attempt: int, rows: Iterable[tuple[str, int, str]]) -> None:
        """rows: (image path, label-version id, split). Immutable once written."""
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM manifests WHERE round=? AND attempt=? LIMIT 1", (round_no, attempt)).fetchone():
                return
            c.executemany(
                "INSERT INTO manifests(round, attempt, image_id, version_id, split) "
                "SELECT ?, ?, id, ?, ? FROM images WHERE path=?",
                [(round_no, attempt, vid, split, path) for path, vid, split in rows],
            )

    def manifest(self, round_no: int, attempt: int) -> list[tuple[str, int, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self.conn.execute(
                "SELECT i.path, m.version_id, m.split FROM manifests m JOIN images i ON i.id=m.image_id "
                "WHERE m.round=? AND m.attempt=? ORDER BY i.id",
                (round_no, attempt),
            )
        ]

    # ---- VOC mirror ----------------------------------------------------------------------
    def stale_voc(self) -> list[tuple[str, int]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT i.path, cl.version_id FROM current_labels cl JOIN images i ON i.id=cl.image_id "
                "WHERE i.voc_version_id IS NOT cl.version_id"
            )
        ]

    def current_version_ids(self) -> list[tuple[str, int]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT i.path, cl.version_id FROM current_labels cl JOIN images i ON i.id=cl.image_id ORDER BY i.id"
            )
        ]

    def mark_voc_written(self, items: Iterable[tuple[str, int]]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE images SET voc_version_id=? WHERE path=?", [(v, p) for p, v in items])

    # ---- summary -------------------------------------------------------------------------
    def status_counts(self) -> dict[str, Any]:
        images = self.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        by_source: Counter[str] = Counter()
        by_class: Counter[str] = Counter()
        by_round: Counter[str] = Counter()
        photos_per_class: Counter[str] = Counter()
        excluded = 0
        for r in self.conn.execute(
            "SELECT lv.source, lv.round, lv.excluded, lv.boxes FROM current_labels cl "
            "JOIN label_versions lv ON lv.id=cl.version_id"
        ):
            if r["excluded"]:
                excluded += 1
                by_source["excluded"] += 1
                continue
            by_source[r["source"]] += 1
            if r["round"] is not None:
                by_round[str(r["round"])] += 1
            labels = [b["label"] for b in json.loads(r["boxes"])]
            by_class.update(labels)
            photos_per_class.update(set(labels))
        labelled = sum(by_source.values())
        by_source["unlabelled"] = images - labelled
        devices = Counter(
            {r[0]: r[1] for r in self.conn.execute("SELECT device_class, COUNT(*) FROM images GROUP BY device_class")}
        )
        splits = Counter(
            {(r[0] or "pool"): r[1] for r in self.conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split")}
        )
        quarantined = self.conn.execute(
            "SELECT COUNT(DISTINCT path) FROM ingest_issues WHERE action='quarantined' "
            "AND path NOT IN (SELECT path FROM images)"
        ).fetchone()[0]  # a fixed photo is ingested on a later run
        return {
            "images": images,
            "by_status": dict(sorted(by_source.items())),
            "boxes_by_class": dict(sorted(by_class.items())),
            "photos_by_class": dict(sorted(photos_per_class.items())),
            "by_device": dict(sorted(devices.items())),
            "by_split": dict(sorted(splits.items())),
            "labels_by_round": dict(sorted(by_round.items())),
            "quarantined": quarantined,
            "excluded": excluded,
            "conflicts": self.conn.execute(
                "SELECT COUNT(DISTINCT image_id) FROM conflicts WHERE resolved_at IS NULL"
            ).fetchone()[0],
        }


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
        rec = self.store.image(version.image_path)
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
        stale = dict(self.store.stale_voc())
        if paths is not None:
            wanted = set(paths)
            stale = {path: version_id for path, version_id in stale.items() if path in wanted}
        else:
            for path, version_id in self.store.current_version_ids():
                if path not in stale and not self.voc_path(path).exists():  # deleted by hand since it was written
                    stale[path] = version_id
        items = list(stale.items())
        for start in range(0, len(items), 500):
            written, files = [], []
            for path, version_id in items[start : start + 500]:
                version = self.store.version(version_id)
                if version is not None:
                    arguments = self._voc_arguments(version)
                    files.append((arguments.pop("target"), voc_xml_bytes(**arguments)))
                    written.append((path, version_id))
            atomic_write_many(files, sync_threads=8)
            self.store.mark_voc_written(written)
        return len(stale)
