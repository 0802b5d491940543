"""The workspace database: one SQLite connection, its schema (and the one migration of older
workspaces), transactions and the meta table.

Every concern of the store (labels, rounds, review sync, the VOC mirror) works over this one
connection: a `with db.transaction():` spanning several of them is one SQLite transaction, and a
nested `transaction()` joins the outer one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

DB_NAME = "annotator.db"

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


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added (sqlite3 types it Optional; after an INSERT it never is)."""
    assert cur.lastrowid is not None
    return cur.lastrowid


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a workspace made by an older version up to the schema."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(pulled_annotations)")}
    if "deleted_at" not in columns:  # workspaces made before pull noticed deleted annotations
        conn.execute("ALTER TABLE pulled_annotations ADD COLUMN deleted_at TEXT")


class Database:
    """SQLite access. All multi-row writes go through `transaction()`."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        self.conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(_SCHEMA)
        _migrate(self.conn)
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

    # ---- meta ----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
