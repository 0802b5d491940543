"""Where the review stands, from the workspace store alone (works with the server down).

Counts pushed / reviewed / excluded / remaining photos and, from the edits recorded with each
pulled annotation, how often reviewers had to correct the model: the correction rate is the
share of predicted boxes moved, relabelled or deleted, overall and per predicted class.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from annotator.store import Workspace
from annotator.types import Source
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import EDIT_KINDS
from review_queue.labelstudio.project import get_project, stored_project_id

_CORRECTIONS = ("moved", "relabelled", "deleted")


def review_status(ws: Workspace, client: ReviewClient | None = None) -> dict[str, Any]:
    """A JSON-ready summary; with a client, also the server's own task counts under `server`."""
    pid = stored_project_id(ws)
    tasks = ws.store.task_map(pid) if pid is not None else {}
    current = ws.store.current_labels()
    reviewed = {p: v for p, v in current.items() if v.source is Source.REVIEWED}
    excluded = sum(1 for v in reviewed.values() if v.excluded)
    remaining = sum(1 for p in tasks if p in current and current[p].source is Source.MODEL)

    edits: Counter[str] = Counter()
    predicted_by_class: Counter[str] = Counter()
    corrected_by_class: Counter[str] = Counter()
    per_class_ops: dict[str, Counter[str]] = defaultdict(Counter)
    lead_times: list[float] = []
    for version in reviewed.values():
        if "edits" not in version.meta:
            continue  # reviewed without a recorded diff (e.g. imported)
        edits.update({k: int(version.meta["edits"].get(k, 0)) for k in EDIT_KINDS})
        if version.meta.get("lead_time") is not None:
            lead_times.append(float(version.meta["lead_time"]))
        for op in version.meta.get("operations", []):
            if op["op"] == "added":
                per_class_ops[op.get("new_label") or "?"]["added"] += 1
                continue
            label = op.get("label") or "?"
            predicted_by_class[label] += 1
            per_class_ops[label][op["op"]] += 1
            if op["op"] in _CORRECTIONS:
                corrected_by_class[label] += 1
    predicted = sum(edits[k] for k in ("accepted",) + _CORRECTIONS)
    with_diff = sum(1 for v in reviewed.values() if "edits" in v.meta)
    out: dict[str, Any] = {
        "project_id": pid,
        "pushed": len(tasks),
        "reviewed": len(reviewed),  # excluded ones included
        "excluded": excluded,
        "remaining": remaining,
        "edits": {k: edits[k] for k in EDIT_KINDS},
        "predicted_boxes": predicted,
        "correction_rate": _rate(sum(edits[k] for k in _CORRECTIONS), predicted),
        "correction_rate_by_class": {c: _rate(corrected_by_class[c], n) for c, n in sorted(predicted_by_class.items())},
        "edits_by_class": {c: dict(sorted(ops.items())) for c, ops in sorted(per_class_ops.items())},
        "boxes_added_per_photo": _rate(edits["added"], with_diff),
        "mean_lead_time_s": round(sum(lead_times) / len(lead_times), 2) if lead_times else None,
        "simulated_reviews": sum(1 for v in reviewed.values() if v.meta.get("simulated")),
    }
    if client is not None and pid is not None:
        project = get_project(client, pid)
        out["server"] = {"url": client.url, "tasks": project.task_number,
                         "finished": project.finished_task_number, "model_version": project.model_version}
    return out


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
