"""What the side projects share (the acceptance audit, the label audit): pulling their submitted annotations back,
each the photo's newest reviewed label with its provenance (`ReviewMeta`), stored once per annotation edit.

The caller says which tasks are its own (task id -> photo) and how a review of that task is tagged
(`tag(task, meta) -> meta`: the audit plan, the doubted label). A skipped task is no review; an annotation that
cannot be read is named, not stored; an annotation already stored as it is is not stored again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from annotator.store import Workspace, now_iso
from annotator.types import LabelVersion, Source
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import parse_result
from review_queue.people import is_simulated
from review_queue.review_meta import ReviewMeta

Tag = Callable[[dict[str, Any], ReviewMeta], ReviewMeta]  # (task, the review's record) -> the record, tagged


@dataclass(frozen=True)
class SidePullResult:
    project_id: int
    stored: int  # reviews stored now (new or edited)
    unchanged: int  # reviews already stored as they are
    skipped: int  # tasks skipped by the reviewer (no review)
    problems: tuple[str, ...] = ()  # annotations that could not be read (named, not stored)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pull_side_project(
    ws: Workspace, client: ReviewClient, project_id: int, ours: Mapping[int, str], tag: Tag
) -> SidePullResult:
    """Store the newest submitted annotation of each of `ours` (task id -> photo) as the photo's reviewed label."""
    emails = client.user_emails()
    counts = {"stored": 0, "unchanged": 0}
    skipped, problems = 0, []
    for task in client.tasks_with_annotations(project_id):
        photo = ours.get(int(task["id"]))
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if photo is None:
            continue
        if not done:
            skipped += bool(task.get("annotations"))
            continue
        newest = max(done, key=lambda a: str(a.get("updated_at") or ""))
        outcome = _store(ws, photo, task, newest, project_id=project_id, emails=emails, tag=tag)
        if outcome in counts:
            counts[outcome] += 1
        else:
            problems.append(outcome)
    if counts["stored"]:
        ws.sync_voc_mirror(list(ours.values()))
    return SidePullResult(project_id, counts["stored"], counts["unchanged"], skipped, tuple(problems))


def _store(
    ws: Workspace,
    photo: str,
    task: dict[str, Any],
    ann: dict[str, Any],
    *,
    project_id: int,
    emails: dict[int, str],
    tag: Tag,
) -> str:
    """One annotation as the photo's reviewed label: "stored", "unchanged", or the problem that kept it out."""
    task_id = int(task["id"])
    record = ws.store.labels.image(photo)
    if record is None:
        return f"task {task_id}: photo {photo} is no longer in the workspace"
    classes = ws.config.class_table
    parsed = parse_result(ann.get("result") or [], width=record.width, height=record.height, classes=classes)
    if parsed.problems:
        return f"task {task_id} ({photo}): " + "; ".join(parsed.problems)
    if _already_stored(ws, photo, int(ann["id"]), ann.get("updated_at")):
        return "unchanged"
    who = ann.get("completed_by")
    reviewer = str(who.get("email") if isinstance(who, dict) else emails.get(int(who or 0), f"user {who}"))
    meta = ReviewMeta(
        project_id=project_id,
        task_id=task_id,
        annotation_id=int(ann["id"]),
        lead_time=None if ann.get("lead_time") is None else float(ann["lead_time"]),
        created_at=ann.get("created_at"),
        updated_at=ann.get("updated_at"),
        simulated=is_simulated(reviewer),
        exclude_reasons=tuple(parsed.excluded),
    )
    version = LabelVersion(
        image_path=photo,
        source=Source.REVIEWED,
        boxes=tuple(box for _, box in parsed.regions),
        reviewer=reviewer,
        created_at=now_iso(),
        excluded=bool(parsed.excluded),
        meta=tag(task, meta).to_dict(),
    )
    ws.store.labels.add_label_version(version)
    return "stored"


def _already_stored(ws: Workspace, photo: str, annotation_id: int, updated_at: str | None) -> bool:
    """This edit of this annotation is already one of the photo's reviewed versions."""
    for version in ws.store.labels.history(photo):
        meta = ReviewMeta.from_dict(version.meta) if version.source is Source.REVIEWED else None
        if meta is not None and (meta.annotation_id, meta.updated_at) == (annotation_id, updated_at):
            return True
    return False
