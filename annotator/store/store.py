"""`Store`: the workspace database and its concerns over its one connection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from annotator.store.database import Database
from annotator.store.labels import Labels
from annotator.store.mirror import VocMirror
from annotator.store.review_sync import ReviewSync
from annotator.store.rounds import Rounds


class Store(Database):
    """The workspace database (connection, `transaction()`, meta) with one object per concern, all over
    the same connection: `with store.transaction():` around calls to several concerns is one transaction."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path)
        self.labels = Labels(self)
        self.rounds = Rounds(self)
        self.review = ReviewSync(self)
        self.mirror = VocMirror(self)

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
