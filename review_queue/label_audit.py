"""The label audit in Label Studio: the photos whose stored labels the audit doubts (`bootstrap.label_audit`), worst
first, in a project of their own. Each task starts from the photo's current label (the prediction the project
serves, so the reviewer edits it in place), with the model's suggestion as a second prediction and the issue kinds
in the note above the photo. A label is only changed by a person: each annotation pulled back becomes a `reviewed`
label version tagged with the doubted version and the issue kinds (`ReviewMeta.label_audit`); a skipped task
changes nothing.

The tasks live in the store's meta table as {photo: [task id, doubted label version id]}: pushing again adds only
photos without a task for their current label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from annotator.errors import LabelStudioError
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    CONFLICT_FIELD,
    IMAGE_TAG,
    PHOTO_FIELD,
    VERSION_FIELD,
    box_to_result,
    local_file_url,
)
from review_queue.labelstudio.project import (
    LABEL_AUDIT,
    document_prefix,
    ensure_side_project,
    import_tasks,
    stored_project_id,
)
from review_queue.review_meta import ReviewMeta
from review_queue.side_projects import SidePullResult, pull_side_project

LABEL_AUDIT_TASKS_KEY = "review.label_audit_tasks"  # JSON {photo: [task id, doubted label version id]}
CURRENT_LABEL = "current-label"  # the served prediction: the stored label, the reviewer's starting point
SUGGESTION = "label-audit suggestion"  # the model's boxes, shown beside it
ISSUE_FIELD = "issue"  # task data: the issue kinds the audit found (kept with the review)


@dataclass(frozen=True)
class DoubtedLabel:
    """One photo the audit serves: its current label, the model's suggestion and the issue kinds found."""

    photo: str
    label: LabelVersion
    suggestion: tuple[Box, ...]
    issue: str  # "overlooked; swapped class" (empty: the photo scores low without one box below the line)
    score: float


@dataclass(frozen=True)
class LabelAuditPushResult:
    project_id: int
    created: int
    already_there: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_audit_tasks(ws: Workspace) -> dict[str, tuple[int, int]]:
    """photo -> (task id, the label version id it doubts)."""
    stored = json.loads(ws.store.get_meta(LABEL_AUDIT_TASKS_KEY) or "{}")
    return {str(p): (int(v[0]), int(v[1])) for p, v in stored.items()}


def _serve_current_label(client: ReviewClient, project_id: int) -> None:
    """Make the project serve the current label as the starting point (Label Studio accepts the model version
    only once predictions of that version exist, so after the first import)."""
    project = client.call("reading the label audit project", client.sdk.projects.get, project_id)
    if project.model_version != CURRENT_LABEL:
        client.call(
            "setting the project's model version", client.sdk.projects.update, project_id, model_version=CURRENT_LABEL
        )


def task_payload(record: ImageRecord, doubt: DoubtedLabel, document_path: str) -> dict[str, Any]:
    """One task: the photo, the issue note, the current label (served prediction) and the model's suggestion."""

    def prediction(boxes: Sequence[Box], name: str, prefix: str, score: float) -> dict[str, Any]:
        result = [box_to_result(b, record.width, record.height, f"{prefix}{i}") for i, b in enumerate(boxes)]
        return {"model_version": name, "score": score, "result": result}

    note = f"Label audit: {doubt.issue or 'low label score'} (score {doubt.score:.2f}; compare the model's suggestion)"
    current = [replace_score(b) for b in doubt.label.boxes]
    return {
        "data": {
            IMAGE_TAG: local_file_url(document_path),
            PHOTO_FIELD: record.path,
            VERSION_FIELD: doubt.label.id,
            CONFLICT_FIELD: note,
            ISSUE_FIELD: doubt.issue,
        },
        "predictions": [
            prediction(current, CURRENT_LABEL, "c", round(doubt.score, 6)),
            prediction(doubt.suggestion, SUGGESTION, "s", round(doubt.score, 6)),
        ],
    }


def replace_score(box: Box) -> Box:
    """A stored label's box as a prediction region (no model score: a person drew it)."""
    return Box(box.label, box.x1, box.y1, box.x2, box.y2, difficult=box.difficult, truncated=box.truncated)


def push_label_audit(ws: Workspace, client: ReviewClient, doubts: Sequence[DoubtedLabel]) -> LabelAuditPushResult:
    """Serve each doubted photo without a task for its current label, worst first (the order given)."""
    pid = ensure_side_project(ws, client, LABEL_AUDIT)
    tasks = label_audit_tasks(ws)
    new = [d for d in doubts if tasks.get(d.photo, (0, -1))[1] != d.label.id]
    if new:
        prefix = document_prefix(ws, client)
        records = {r.path: r for r in ws.store.labels.images()}
        payload = [task_payload(records[d.photo], d, str(prefix / d.photo)) for d in new]
        ids = import_tasks(
            client, pid, payload, what=f"{len(new)} label audit tasks", rerun="annotator audit labels --push"
        )
        tasks.update({d.photo: (int(t), int(d.label.id or 0)) for d, t in zip(new, ids, strict=True)})
        ws.store.set_meta(LABEL_AUDIT_TASKS_KEY, json.dumps({p: list(v) for p, v in tasks.items()}))
        _serve_current_label(client, pid)
    return LabelAuditPushResult(pid, created=len(new), already_there=len(doubts) - len(new))


def pull_label_audit(ws: Workspace, client: ReviewClient) -> SidePullResult:
    """Store each submitted label audit annotation as a reviewed label version with its provenance (the doubted
    version and the issue kind)."""
    pid = stored_project_id(ws, LABEL_AUDIT)
    if pid is None:
        raise LabelStudioError("no label audit was pushed yet: run `annotator audit labels --push` first")
    tasks = label_audit_tasks(ws)
    doubted = {task_id: version for task_id, version in tasks.values()}

    def tag(task: dict[str, Any], meta: ReviewMeta) -> ReviewMeta:
        issue = str((task.get("data") or {}).get(ISSUE_FIELD) or "")
        return replace(meta, label_audit=doubted[int(task["id"])], label_audit_issue=issue)

    return pull_side_project(ws, client, pid, {task_id: photo for photo, (task_id, _) in tasks.items()}, tag)
