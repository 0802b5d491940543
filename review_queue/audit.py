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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from annotator.boxes import clip_box
from annotator.errors import LabelStudioError
from annotator.store import Workspace, now_iso
from annotator.types import LabelVersion, Source
from review_queue.effort import scratch_seconds
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    IMAGE_TAG,
    PHOTO_FIELD,
    box_to_result,
    local_file_url,
    parse_result,
)
from review_queue.labelstudio.project import (
    ACCEPTANCE_AUDIT,
    create_project,
    document_prefix,
    ensure_photo_storage,
    import_tasks,
    stored_project_id,
)
from review_queue.people import client_as, is_simulated
from review_queue.review_meta import ReviewMeta
from review_queue.reviewer import ReviewerProfile, draw_from_scratch, photo_contrasts

AUDIT_TASKS_KEY = "review.acceptance_audit_tasks"  # JSON {"plan": digest, "tasks": {photo: task id}}
SIMULATED_AUDITOR = "simulated-auditor@annotator.local"


@dataclass(frozen=True)
class AuditPushResult:
    project_id: int
    created: int  # tasks imported now
    already_there: int  # sampled photos that had a task for this plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditPullResult:
    project_id: int
    audits: int  # audits stored now (new or edited)
    unchanged: int  # audits already stored as they are
    skipped: int  # tasks skipped by the auditor (no audit)
    problems: tuple[str, ...] = ()  # annotations that could not be read (named, not stored)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_tasks(ws: Workspace, plan: str) -> dict[str, int]:
    """photo -> task id of the audit `plan` (empty for another plan)."""
    stored = json.loads(ws.store.get_meta(AUDIT_TASKS_KEY) or "{}")
    if stored.get("plan") != plan:
        return {}
    return {str(k): int(v) for k, v in (stored.get("tasks") or {}).items()}


def _audit_project(ws: Workspace, client: ReviewClient) -> int:
    """The acceptance audit project (created on first use)."""
    pid = stored_project_id(ws, ACCEPTANCE_AUDIT)
    if pid is None:
        pid = int(create_project(ws, client, ACCEPTANCE_AUDIT).id)
        ws.store.set_meta(ACCEPTANCE_AUDIT.id_key, str(pid))
        ensure_photo_storage(ws, client, pid)
    return pid


def push_audit(ws: Workspace, client: ReviewClient, *, plan: str, photos: Sequence[str]) -> AuditPushResult:
    """Put each sampled photo of audit `plan` without a task into the audit project: photo only, no
    prediction, no label (blind). The sample's order is kept: Label Studio serves it in that order."""
    pid = _audit_project(ws, client)
    tasks = audit_tasks(ws, plan)
    new = [p for p in photos if p not in tasks]
    if new:
        prefix = document_prefix(ws, client)
        payload = [{"data": {IMAGE_TAG: local_file_url(str(prefix / p)), PHOTO_FIELD: p}} for p in new]
        ids = import_tasks(client, pid, payload, what=f"{len(new)} audit tasks", rerun="annotator audit push")
        tasks.update({p: int(t) for p, t in zip(new, ids, strict=True)})
        ws.store.set_meta(AUDIT_TASKS_KEY, json.dumps({"plan": plan, "tasks": tasks}))
    return AuditPushResult(pid, created=len(new), already_there=len(photos) - len(new))


def pull_audit(ws: Workspace, client: ReviewClient, *, plan: str) -> AuditPullResult:
    """Store every audit of `plan` done in Label Studio as a reviewed label version tagged with the plan
    (an edited audit is stored again; a skipped task is no audit)."""
    pid = stored_project_id(ws, ACCEPTANCE_AUDIT)
    if pid is None:
        raise LabelStudioError("no acceptance audit was pushed yet: run `annotator audit push` first")
    ours = {task_id: photo for photo, task_id in audit_tasks(ws, plan).items()}
    emails = client.user_emails()
    stored, unchanged, skipped, problems = 0, 0, 0, []
    for task in client.tasks_with_annotations(pid):
        photo = ours.get(int(task["id"]))
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if photo is None:
            continue
        if not done:
            skipped += bool(task.get("annotations"))
            continue
        ann = max(done, key=lambda a: str(a.get("updated_at") or ""))
        outcome = _store_audit(ws, photo, ann, plan=plan, project_id=pid, task_id=int(task["id"]), emails=emails)
        stored, unchanged = stored + (outcome == "stored"), unchanged + (outcome == "unchanged")
        if outcome not in ("stored", "unchanged"):
            problems.append(outcome)
    if stored:
        ws.sync_voc_mirror([p for p in ours.values()])
    return AuditPullResult(pid, stored, unchanged, skipped, tuple(problems))


def _store_audit(
    ws: Workspace, photo: str, ann: dict[str, Any], *, plan: str, project_id: int, task_id: int, emails: dict[int, str]
) -> str:
    """Store one audit annotation as the photo's reviewed label: "stored", "unchanged", or a problem."""
    record = ws.store.labels.image(photo)
    if record is None:
        return f"task {task_id}: photo {photo} is no longer in the workspace"
    parsed = parse_result(
        ann.get("result") or [], width=record.width, height=record.height, classes=ws.config.class_table
    )
    if parsed.problems:
        return f"task {task_id} ({photo}): " + "; ".join(parsed.problems)
    previous = _stored_audit(ws, photo, plan)
    if previous is not None and (previous.annotation_id, previous.updated_at) == (
        int(ann["id"]),
        ann.get("updated_at"),
    ):
        return "unchanged"
    who = ann.get("completed_by")
    reviewer = who.get("email") if isinstance(who, dict) else emails.get(int(who or 0), f"user {who}")
    meta = ReviewMeta(
        project_id=project_id,
        task_id=task_id,
        annotation_id=int(ann["id"]),
        lead_time=None if ann.get("lead_time") is None else float(ann["lead_time"]),
        created_at=ann.get("created_at"),
        updated_at=ann.get("updated_at"),
        simulated=is_simulated(str(reviewer)),
        exclude_reasons=tuple(parsed.excluded),
        acceptance_audit=plan,
    )
    ws.store.labels.add_label_version(
        LabelVersion(
            image_path=photo,
            source=Source.REVIEWED,
            boxes=tuple(box for _, box in parsed.regions),
            reviewer=str(reviewer),
            created_at=now_iso(),
            excluded=bool(parsed.excluded),
            meta=meta.to_dict(),
        )
    )
    return "stored"


def _stored_audit(ws: Workspace, photo: str, plan: str) -> ReviewMeta | None:
    """The review record of the newest audit of `photo` for `plan` already stored."""
    for version in reversed(ws.store.labels.history(photo)):
        meta = ReviewMeta.from_dict(version.meta)
        if version.source is Source.REVIEWED and meta.acceptance_audit == plan:
            return meta
    return None


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
