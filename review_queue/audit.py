"""The acceptance audit in Label Studio: the photos an audit plan sampled (`bootstrap.finalize`) go into
a project of their own, WITHOUT predictions (the auditor boxes each photo from scratch, so anchoring on
the model cannot hide its errors); each audit pulled back becomes a `reviewed` label version of the
photo, tagged with the plan it audits (`ReviewMeta.acceptance_audit`), which finalize compares with the
prediction it would accept.

The audit's tasks live in the store's meta table as {"plan": digest, "tasks": {photo: task id}}: pushing
again for the same plan adds only photos without a task; a new plan starts a new set of tasks (the old
plan's tasks stay in Label Studio, and their annotations are no longer read).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from annotator.boxes import clip_box
from annotator.errors import LabelStudioError
from annotator.store import Workspace
from review_queue.effort import scratch_seconds
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    IMAGE_TAG,
    PHOTO_FIELD,
    box_to_result,
    local_file_url,
)
from review_queue.labelstudio.project import (
    ACCEPTANCE_AUDIT,
    document_prefix,
    ensure_side_project,
    import_tasks,
    stored_project_id,
)
from review_queue.people import client_as
from review_queue.reviewer import ReviewerProfile, draw_from_scratch, photo_contrasts
from review_queue.side_projects import SidePullResult, pull_side_project

AUDIT_TASKS_KEY = "review.acceptance_audit_tasks"  # JSON {"plan": digest, "tasks": {photo: task id}}
SIMULATED_AUDITOR = "simulated-auditor@annotator.local"


@dataclass(frozen=True)
class AuditPushResult:
    project_id: int
    created: int  # tasks imported now
    already_there: int  # sampled photos that had a task for this plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_tasks(ws: Workspace, plan: str) -> dict[str, int]:
    """photo -> task id of the audit `plan` (empty for another plan)."""
    stored = json.loads(ws.store.get_meta(AUDIT_TASKS_KEY) or "{}")
    if stored.get("plan") != plan:
        return {}
    return {str(k): int(v) for k, v in (stored.get("tasks") or {}).items()}


def push_audit(ws: Workspace, client: ReviewClient, *, plan: str, photos: Sequence[str]) -> AuditPushResult:
    """Put each sampled photo of audit `plan` without a task into the audit project: photo only, no
    prediction, no label (blind). The sample's order is kept: Label Studio serves it in that order."""
    pid = ensure_side_project(ws, client, ACCEPTANCE_AUDIT)
    tasks = audit_tasks(ws, plan)
    new = [p for p in photos if p not in tasks]
    if new:
        prefix = document_prefix(ws, client)
        payload = [{"data": {IMAGE_TAG: local_file_url(str(prefix / p)), PHOTO_FIELD: p}} for p in new]
        ids = import_tasks(client, pid, payload, what=f"{len(new)} audit tasks", rerun="annotator audit push")
        tasks.update({p: int(t) for p, t in zip(new, ids, strict=True)})
        ws.store.set_meta(AUDIT_TASKS_KEY, json.dumps({"plan": plan, "tasks": tasks}))
    return AuditPushResult(pid, created=len(new), already_there=len(photos) - len(new))


def pull_audit(ws: Workspace, client: ReviewClient, *, plan: str) -> SidePullResult:
    """Store every audit of `plan` done in Label Studio as the photo's reviewed label, tagged with the plan
    (an edited audit is stored again; a skipped task is no audit)."""
    pid = stored_project_id(ws, ACCEPTANCE_AUDIT)
    if pid is None:
        raise LabelStudioError("no acceptance audit was pushed yet: run `annotator audit push` first")
    ours = {task_id: photo for photo, task_id in audit_tasks(ws, plan).items()}
    return pull_side_project(ws, client, pid, ours, lambda task, meta: replace(meta, acceptance_audit=plan))


def simulate_audit(
    ws: Workspace,
    client: ReviewClient,
    *,
    plan: str,
    profile: ReviewerProfile,
    truth_dir: Path,
    count: int | None = None,
    seed: int = 0,
) -> int:
    """SIMULATION: a simulated auditor (its own Label Studio user) boxes the audit tasks Label Studio serves,
    blind, as `profile` draws from scratch (no prediction to anchor on). Returns the photos audited."""
    from review_queue.simulate import read_truth

    pid = stored_project_id(ws, ACCEPTANCE_AUDIT)
    if pid is None:
        raise LabelStudioError("no acceptance audit was pushed yet: run `annotator audit push` first")
    acting = client_as(client, SIMULATED_AUDITOR)
    rng = random.Random(seed * 1000 + 777)
    ours, served, done = set(audit_tasks(ws, plan).values()), set(), 0
    while count is None or done < count:
        task = acting.next_task(pid)
        if task is None or int(task["id"]) in served:
            break
        served.add(int(task["id"]))
        photo = str((task.get("data") or {}).get(PHOTO_FIELD))
        truth, record = read_truth(truth_dir, photo, ws.config.class_table), ws.store.labels.image(photo)
        if int(task["id"]) not in ours or truth is None or record is None:
            acting.postpone(int(task["id"]))
            continue
        truth = [clip_box(b, record.width, record.height) for b in truth]
        contrast = photo_contrasts(ws.image_path(photo), truth) if profile.uses_contrast and truth else None
        boxes = draw_from_scratch(truth, profile, rng, width=record.width, height=record.height, contrast=contrast)
        result = [box_to_result(b, record.width, record.height, f"a{i}") for i, b in enumerate(boxes)]
        acting.annotate(
            int(task["id"]),
            result,
            what=f"auditing task {task['id']}",
            lead_time=round(scratch_seconds(boxes, record.width, record.height), 2),  # modelled, not measured
        )
        done += 1
    return done
