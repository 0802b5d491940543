"""The labels of the workspace: photos and their splits, label versions (append-only, with
provenance; one of them current per photo), the ingest report and conflicts.

A photo whose label sources disagree (two copies of the same photo with different hand boxes, or
a labelImg file edited after a dermatologist's review) carries an open *conflict*: the review
queue serves those first (`Labels.conflicts()`), and a new reviewed label resolves them.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from annotator.errors import WorkspaceError
from annotator.store.database import Database, inserted_id, now_iso
from annotator.types import Box, DeviceClass, ImageRecord, LabelVersion, Source


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
    return inserted_id(cur)


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


class Labels:
    """Photos, splits, label versions and their history, ingest issues and conflicts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- images --------------------------------------------------------------------------
    def add_image(self, rec: ImageRecord) -> int:
        with self._db.transaction() as c:
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
                return inserted_id(cur)
            return int(c.execute("SELECT id FROM images WHERE path=?", (rec.path,)).fetchone()[0])

    def image(self, path: str) -> ImageRecord | None:
        row = self._db.conn.execute("SELECT * FROM images WHERE path=?", (path,)).fetchone()
        return _row_to_image(row) if row else None

    def image_by_id(self, image_id: int) -> ImageRecord | None:
        row = self._db.conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        return _row_to_image(row) if row else None

    def path_with_sha(self, sha256: str) -> str | None:
        row = self._db.conn.execute("SELECT path FROM images WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return row[0] if row else None

    def known_paths(self) -> set[str]:
        return {r[0] for r in self._db.conn.execute("SELECT path FROM images")}

    def images(self, split: str | None = None) -> list[ImageRecord]:
        if split is None:
            rows = self._db.conn.execute("SELECT * FROM images ORDER BY id")
        else:
            rows = self._db.conn.execute("SELECT * FROM images WHERE split=? ORDER BY id", (split,))
        return [_row_to_image(r) for r in rows]

    def set_splits(self, splits: dict[str, str]) -> None:
        with self._db.transaction() as c:
            c.executemany("UPDATE images SET split=? WHERE path=?", [(s, p) for p, s in splits.items()])

    def splits(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.conn.execute("SELECT path, split FROM images WHERE split IS NOT NULL")}

    # ---- label versions ------------------------------------------------------------------
    def add_label_version(self, lv: LabelVersion) -> int | None:
        """Append a version and make it current. A model version is refused (None returned)
        when the photo already has a human or accepted label: a model never overwrites them."""
        with self._db.transaction() as c:
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
        with self._db.transaction() as c:
            image_id = c.execute("SELECT id FROM images WHERE path=?", (lv.image_path,)).fetchone()[0]
            return _insert_version(c, image_id, lv)

    def latest_versions_by_xml(self) -> dict[str, dict[str, LabelVersion]]:
        """photo path -> {labelImg file (meta "xml") -> the latest version made from that file}: what a
        re-run of ingest compares each label file with (by the content hash stored in the version's meta)."""
        rows = self._db.conn.execute(
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
                for r in self._db.conn.execute(
                    "SELECT json_extract(b.value, '$.label'), COUNT(*) FROM label_versions lv, json_each(lv.boxes) b "
                    "GROUP BY 1"
                )
            }
        )

    def current_label(self, path: str) -> LabelVersion | None:
        row = self._db.conn.execute(
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
        return {r["path"]: _row_to_version(r) for r in self._db.conn.execute(sql + " ORDER BY i.id", args)}

    def version(self, version_id: int) -> LabelVersion | None:
        row = self._db.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM label_versions lv JOIN images i ON i.id=lv.image_id WHERE lv.id=?",
            (version_id,),
        ).fetchone()
        return _row_to_version(row) if row else None

    def history(self, path: str) -> list[LabelVersion]:
        rows = self._db.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM label_versions lv JOIN images i ON i.id=lv.image_id "
            "WHERE i.path=? ORDER BY lv.id",
            (path,),
        )
        return [_row_to_version(r) for r in rows]

    def paths_reviewed_by_several(self, minimum: int = 2) -> list[str]:
        """Photos with `reviewed` versions by at least `minimum` different reviewers: one query, so a
        pull on a project of thousands of single-reviewed photos does not read every history."""
        rows = self._db.conn.execute(
            "SELECT i.path FROM label_versions lv JOIN images i ON i.id=lv.image_id "
            "WHERE lv.source=? AND lv.reviewer IS NOT NULL GROUP BY i.path HAVING COUNT(DISTINCT lv.reviewer) >= ? "
            "ORDER BY i.path",
            (Source.REVIEWED.value, minimum),
        )
        return [r[0] for r in rows]

    def unlabelled_paths(self) -> list[str]:
        return [
            r[0]
            for r in self._db.conn.execute(
                "SELECT path FROM images WHERE id NOT IN (SELECT image_id FROM current_labels) ORDER BY id"
            )
        ]

    # ---- ingest report -------------------------------------------------------------------
    def add_issue(self, path: str, reason: str, message: str, action: str) -> None:
        with self._db.transaction() as c:
            c.execute(
                "INSERT INTO ingest_issues(path, reason, message, action, created_at) VALUES(?,?,?,?,?) "
                "ON CONFLICT DO NOTHING",
                (path, reason, message, action, now_iso()),
            )

    def issues(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self._db.conn.execute(
                "SELECT path, reason, message, action, created_at FROM ingest_issues ORDER BY id"
            )
        ]

    # ---- conflicts: label sources that disagree, waiting for a person --------------------
    def flag_conflict(self, path: str, kind: str, detail: str, version_id: int) -> None:
        """Open a conflict on `path` about the history version `version_id` (flagging it twice is a no-op)."""
        with self._db.transaction() as c:
            c.execute(
                "INSERT INTO conflicts(image_id, kind, detail, version_id, created_at) "
                "SELECT id, ?, ?, ?, ? FROM images WHERE path=? ON CONFLICT DO NOTHING",
                (kind, detail, version_id, now_iso(), path),
            )

    def conflicts(self) -> list[Conflict]:
        """Open conflicts, oldest first: the photos the review queue should serve before any other."""
        return [
            Conflict(r[0], r[1], r[2], r[3], r[4])
            for r in self._db.conn.execute(
                "SELECT i.path, c.kind, c.detail, c.version_id, c.created_at FROM conflicts c "
                "JOIN images i ON i.id=c.image_id WHERE c.resolved_at IS NULL ORDER BY c.id"
            )
        ]

    def resolve_conflicts(self, path: str, resolution: str, *, version_id: int | None = None) -> int:
        """Close the open conflicts of `path` (those about one history version, or all); returns how many."""
        with self._db.transaction() as c:
            cur = c.execute(
                "UPDATE conflicts SET resolved_at=?, resolution=? WHERE resolved_at IS NULL AND "
                "image_id=(SELECT id FROM images WHERE path=?) AND (? IS NULL OR version_id=?)",
                (now_iso(), resolution, path, version_id, version_id),
            )
            return cur.rowcount
