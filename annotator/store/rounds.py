"""The rounds of the loop as the store keeps them: one row per attempt at a round (its stage and
what each stage recorded, as a `RoundRecord`) and each attempt's manifest (the label versions it
trained on, immutable once written)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from annotator.rounds import RoundRecord, Stage, TrainedRound
from annotator.store.database import Database, now_iso


class Rounds:
    """Round records and manifests."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def round_record(self, round_no: int, attempt: int | None = None) -> RoundRecord | None:
        """One attempt at a round (None: the latest attempt); None when there is none."""
        if attempt is None:
            row = self._db.conn.execute(
                "SELECT * FROM rounds WHERE round=? ORDER BY attempt DESC LIMIT 1", (round_no,)
            ).fetchone()
        else:
            row = self._db.conn.execute(
                "SELECT * FROM rounds WHERE round=? AND attempt=?", (round_no, attempt)
            ).fetchone()
        return None if row is None else RoundRecord.from_row(dict(row))

    def rounds(self) -> list[RoundRecord]:
        """The latest attempt of every round, in order."""
        rows = self._db.conn.execute(
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
        acceptance_audit: dict[str, Any] | None = None,
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
            acceptance_audit=acceptance_audit,
        )
        existing = self._db.conn.execute(
            "SELECT metrics, info FROM rounds WHERE round=? AND attempt=?", (round_no, attempt)
        ).fetchone()
        with self._db.transaction() as c:
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
        with self._db.transaction() as c:
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
            for r in self._db.conn.execute(
                "SELECT i.path, m.version_id, m.split FROM manifests m JOIN images i ON i.id=m.image_id "
                "WHERE m.round=? AND m.attempt=? ORDER BY i.id",
                (round_no, attempt),
            )
        ]
