"""The workspace: one SQLite database, the only writer of workspace state.

Holds every photo, every label version (append-only, with provenance), the ingest report,
splits, Label Studio task ids, pulled annotation ids, rounds and their manifests, over one
connection (database.py), split by concern:

- `store.labels` (labels.py): photos, splits, label versions and their history, ingest issues, conflicts;
- `store.rounds` (rounds.py): round records and manifests;
- `store.review` (review_sync.py): Label Studio bookkeeping (task map, pushed versions, pulled annotations);
- `store.mirror` (mirror.py): which current labels the VOC mirror has written.

`Store` (store.py) keeps the connection, `transaction()`, the meta table and the status summary;
`Workspace` (workspace.py) is the folder around it: layout, lifecycle, the writer's lock and the
VOC mirror's files.
"""

from __future__ import annotations

from annotator.store.database import DB_NAME, Database, now_iso
from annotator.store.labels import Conflict, Labels
from annotator.store.mirror import VocMirror
from annotator.store.review_sync import ReviewSync
from annotator.store.rounds import Rounds
from annotator.store.store import Store
from annotator.store.workspace import LOCK_NAME, Workspace

__all__ = [
    "DB_NAME",
    "LOCK_NAME",
    "Conflict",
    "Database",
    "Labels",
    "ReviewSync",
    "Rounds",
    "Store",
    "VocMirror",
    "Workspace",
    "now_iso",
]
