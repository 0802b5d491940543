"""Pull reviewed annotations from Label Studio into the workspace as `reviewed` label versions.

Snapshot exports give every annotated task with its annotations (reviewer email, times,
lead time, parent prediction) and full predictions: a full pull exports the project in chunks
of 1,000 task ids, Label Studio exporting the next chunk while this process stores the last
(the two take about as long: in sequence, 8,000 tasks took ~28 s). Skipped ("cancelled")
annotations are counted, never stored: the photo stays in the queue. Each submitted annotation
is checked, converted to boxes on the displayed photo, diffed against the prediction it started
from (`review_queue.corrections`), and stored in
its own transaction together with its `pulled_annotations` row: a pull killed at any point
leaves a consistent store, and the next pull skips what is stored and finishes the rest.
The VOC mirror of the new current labels is written after each chunk and checked at the end, by
a few threads (every file is fsynced, so the disk is the limit); a kill before that leaves a
stale mirror, which the next pull, or the next command opening the workspace for writing, repairs.
Annotations that cannot be merged are listed in reports/pull-issues.json, never guessed at; a
reviewed box outside the photo or under a pixel is clipped or dropped by the one rule ingest
applies too (`annotator.boxes.fit_box`), listed there under "fixed", and the review is stored.
A review of a photo served for a label conflict started from a person's label, not the model's:
it is stored with the conflict's note and without an edit diff, so it stays out of the
correction statistic.

Incremental: a snapshot export of all 8,000 tasks costs Label Studio ~10 s even when nothing changed,
so after a first full pull one cheap listing reads every task's id and `updated_at` (no results), and
only the tasks whose time is not the one the last pull listed are exported (a Data Manager tab filtered on
`updated_at` from the oldest of them, made for the export and deleted after it). An annotation created,
edited or deleted moves its task's `updated_at`, so such a task brings every annotation it still has.
The rule compares times with the last listing, never with a clock: a write committed late, stamped before
the last pull, still changed its task's time since that listing, and is read (an earlier rule, "changed
after the last export less a 10 s overlap", lost a transaction held longer than the overlap; see
docs/performance.md, "The watermark"). `full=True`, a workspace without a watermark (or with an older
one, or another project's) or a failed listing make a full pull. A stored annotation that is gone from its
task (or, on a full pull, from the project) is marked deleted and reported; its review stays in the history.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from annotator.classes import ClassTable
from annotator.errors import LabelStudioError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace, now_iso
from annotator.types import Box, ImageRecord, LabelVersion, Source
from review_queue.corrections import diff_regions
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    ARM_FIELD,
    CONFLICT_FIELD,
    CONTROL_ARM,
    PHOTO_FIELD,
    BoxFix,
    parse_result,
    region_id,
)
from review_queue.labelstudio.project import require_project_id
from review_queue.people import is_simulated
from review_queue.queue import PullResult
from review_queue.review_meta import ReviewMeta

Progress = Callable[[str, int, int], None]  # (step, done, total)
ISSUES_FILE = "pull-issues.json"
SERIALIZATION = {"predictions": {"only_id": False}, "annotations__completed_by": {"only_id": False}}
# Every task with any annotation, skipped ones included: Label Studio's `annotated` filter and its
# default annotation filter both drop skips, which would leave them uncounted.
TASK_FILTER = {"only_with_annotations": True}
# Ground truth too: Label Studio marks annotations imported with tasks (and starred ones) as ground truth.
ANNOTATION_FILTER = {"usual": True, "skipped": True, "ground_truth": True}
# Tasks per export of a full pull (chunks of the task ids we know): the next chunk is exported while one is stored.
EXPORT_CHUNK = 1000
# store meta: {"project_id": P, "seen": {task id: updated_at as the last pull listed it}}; an older watermark
# ({"updated_at": ..., "recent": ...}, the time-overlap rule) has no "seen" and makes one full pull
WATERMARK_KEY = "labelstudio_pull_watermark"


@dataclass(frozen=True)
class _Export:
    """The tasks of one snapshot export, and when Label Studio began it (its own clock; None if it did not say)."""

    tasks: list[dict[str, Any]]
    began: dt.datetime | None


@dataclass(frozen=True)
class _Prepared:
    version: LabelVersion
    annotation_id: int
    updated_at: str | None
    current: bool
    fixes: tuple[BoxFix, ...] = ()


def pull(
    ws: Workspace,
    client: ReviewClient,
    *,
    full: bool = False,
    progress: Progress | None = None,
    export_timeout: float = 600.0,
) -> PullResult:
    """Store every new or edited annotation of the workspace's project. Safe to rerun at any time.
    Double reviews are settled by the queue's pull (`review_queue.queue`), not here.

    full: export every annotated task, not only those changed since the last pull."""
    pid = require_project_id(ws)
    task_of_photo = ws.store.review.task_map(pid)
    listed = _list_tasks(client, pid)  # before any export: a write committed after this is seen by the next pull
    exports, reason = _changed_tasks(
        ws, client, pid, listed, full=full, timeout=export_timeout, known=task_of_photo.values()
    )
    run = _Run.start(ws, pid, task_of_photo, full=reason != "incremental")
    for export in exports:  # a full pull's next chunk is exported by Label Studio while this one is stored
        _store_export(ws, run, export)
        if progress:
            progress("storing annotations", len(run.tasks), len(run.tasks))
        if run.full:  # the VOC files of this chunk's new reviews, written while Label Studio exports the next chunk
            ws.sync_voc_mirror(paths=run.stored_now)
        run.stored_now.clear()
    deleted = _mark_deleted(ws, pid, run.tasks, full=run.full)
    if not run.full:  # annotations not read again are as they were: their problems still stand
        run.issues[:0] = _unread_issues(ws, pid, {int(t["id"]) for t in run.tasks})
    ws.sync_voc_mirror()  # the new reviews, and whatever an interrupted pull left stale
    _save_watermark(ws, pid, listed)  # last: a pull killed before this exports the same tasks again
    issues_file = _write_issues(ws, run, reason=reason, deleted=deleted)
    return PullResult(
        project_id=pid,
        tasks=len(run.tasks),
        current=run.counts["current"],
        history=run.counts["history"],
        already_pulled=run.counts["already"],
        skipped=run.counts["skipped"],
        issues=run.issues,
        issues_file=str(issues_file),
        fixed=run.fixed,
        full=run.full,
        reason=reason,
        deleted=deleted,
    )


@dataclass
class _Run:
    """One pull's reading of the store and what it has stored so far (filled export by export)."""

    project_id: int
    full: bool  # a full re-sync (else an incremental pull of the changed tasks)
    photo_of_task: dict[int, str]
    records: dict[str, ImageRecord]
    pulled: dict[int, str | None]  # annotation id -> its updated_at when stored
    pushed: dict[str, int | None]  # photo -> the label version its task showed
    classes: ClassTable
    # photo -> its current label when that is a review (else None), kept up to date as reviews are stored: read in
    # one query for a full pull, photo by photo for an incremental one (a few reviews need not read 8,000 labels)
    reviewed_now: dict[str, LabelVersion | None]
    issues: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"current": 0, "history": 0, "already": 0, "skipped": 0})
    tasks: list[dict[str, Any]] = field(default_factory=list)  # every task read
    stored_now: set[str] = field(default_factory=set)  # photos whose current label this chunk changed

    @classmethod
    def start(cls, ws: Workspace, project_id: int, task_of_photo: dict[str, int], *, full: bool) -> _Run:
        """Read what the pull compares the exports with: tasks, photos, pulled annotations, pushed versions."""
        reviewed = dict(ws.store.labels.current_labels(sources=[Source.REVIEWED])) if full else {}
        return cls(
            project_id=project_id,
            full=full,
            photo_of_task={tid: path for path, tid in task_of_photo.items()},
            records={r.path: r for r in ws.store.labels.images()},
            pulled=ws.store.review.pulled_annotations(),
            pushed=ws.store.review.pushed_versions(),
            classes=ws.config.class_table,
            reviewed_now=dict(reviewed),
        )

    def reviewed_current(self, ws: Workspace, path: str) -> LabelVersion | None:
        """The photo's current label when it is a review, else None."""
        if not self.full and path not in self.reviewed_now:
            current = ws.store.labels.current_label(path)
            self.reviewed_now[path] = current if current is not None and current.source is Source.REVIEWED else None
        return self.reviewed_now.get(path)


def _store_export(ws: Workspace, run: _Run, export: _Export) -> None:
    """Store the new or edited annotations of one export's tasks, each in its own transaction."""
    run.tasks.extend(export.tasks)
    for task in export.tasks:
        path = run.photo_of_task.get(task["id"]) or (task.get("data") or {}).get(PHOTO_FIELD)
        record = run.records.get(path) if path else None
        if record is None:
            run.issues.append(_issue(task, None, path, "the task's photo is not in this workspace; not merged"))
            continue
        annotations = task.get("annotations") or []
        run.counts["skipped"] += sum(1 for a in annotations if a.get("was_cancelled"))
        submitted = sorted(
            (a for a in annotations if not a.get("was_cancelled")),
            key=lambda a: (a.get("updated_at") or "", a["id"]),
        )
        for ann in submitted:
            _store_one(ws, run, task, ann, record, last=ann is submitted[-1])


def _store_one(
    ws: Workspace, run: _Run, task: dict[str, Any], ann: dict[str, Any], record: ImageRecord, *, last: bool
) -> None:
    """Store one submitted annotation (unless stored already), as the current label when it is the task's last
    and no later review of the photo is current, else as history; a problem is reported, never stored."""
    if ann["id"] in run.pulled and run.pulled[ann["id"]] == ann.get("updated_at"):
        run.counts["already"] += 1
        return
    path = record.path
    current = last and not _newer_review_is_current(run.reviewed_current(ws, path), ann)
    prepared, problems = _prepare(ws, run.project_id, task, ann, record, run.pushed.get(path), run.classes, current)
    if prepared is None:
        run.issues.extend(_issue(task, ann, path, p) for p in problems)
        return
    _store_annotation(ws, prepared)
    if prepared.current:
        run.reviewed_now[path] = prepared.version
        run.stored_now.add(path)
    run.fixed.extend(_fixed(task, ann, path, f) for f in prepared.fixes)
    run.pulled[prepared.annotation_id] = prepared.updated_at
    run.counts["current" if prepared.current else "history"] += 1


def _write_issues(ws: Workspace, run: _Run, *, reason: str, deleted: list[dict[str, Any]]) -> Path:
    """reports/pull-issues.json: the annotations not merged, the boxes fixed and the reviews deleted."""
    issues_file = ws.reports_dir / ISSUES_FILE
    report = {"pulled_at": now_iso(), "project_id": run.project_id, "full": run.full, "reason": reason}
    report.update(issues=run.issues, fixed=run.fixed, deleted=deleted)
    atomic_write_text(issues_file, json.dumps(report, indent=2) + "\n")
    return issues_file


def pending_annotations(ws: Workspace, client: ReviewClient, *, export_timeout: float = 600.0) -> int:
    """How many submitted annotations in Label Studio are new or edited since the last pull."""
    pid = require_project_id(ws)
    pulled = ws.store.review.pulled_annotations()
    exports, _ = _changed_tasks(ws, client, pid, _list_tasks(client, pid), full=False, timeout=export_timeout)
    return sum(
        1
        for export in exports
        for task in export.tasks
        for ann in task.get("annotations") or []
        if not ann.get("was_cancelled") and pulled.get(ann["id"], "\0") != ann.get("updated_at")
    )


def _issue(task: dict[str, Any], ann: dict[str, Any] | None, path: str | None, problem: str) -> dict[str, Any]:
    return {
        "task_id": task.get("id"),
        "annotation_id": ann.get("id") if ann else None,
        "photo": path,
        "reviewer": _reviewer(ann) if ann else None,
        "problem": problem,
    }


def _reviewer(ann: dict[str, Any]) -> str | None:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or (str(who["id"]) if "id" in who else None)
    return None if who is None else f"user {who}"


# ---- what changed since the last pull ----------------------------------------------------------


@dataclass(frozen=True)
class _Watermark:
    """Every task's `updated_at` as the last pull listed it, before its exports read."""

    seen: dict[int, dt.datetime]


def _list_tasks(client: ReviewClient, project_id: int) -> dict[int, dt.datetime | None] | str:
    """task id -> updated_at of every task of the project (ids and times only, by id so that writes during the
    listing move no task across pages), or why the listing failed."""
    query = json.dumps({"ordering": ["tasks:id"]})
    try:
        return {
            int(t["id"]): _parse_time(t.get("updated_at"))
            for page in client.task_rows(project_id, include="id,updated_at", query=query)
            for t in page
        }
    except LabelStudioError as exc:
        return f"listing the tasks failed ({exc})"


def _changed_tasks(
    ws: Workspace,
    client: ReviewClient,
    project_id: int,
    listed: dict[int, dt.datetime | None] | str,
    *,
    full: bool,
    timeout: float,
    known: Iterable[int] = (),
) -> tuple[Iterable[_Export], str]:
    """(the exports, one or a full pull's chunks, "incremental" or why the export was full).

    listed: this pull's listing (`_list_tasks`); known: the project's task ids in the store, to cut a full
    export into chunks."""
    mark = _watermark(ws, project_id)
    if full:
        reason = "asked for (--full)"
    elif mark is None:
        reason = "first pull of this project"
    elif isinstance(listed, str):
        reason = listed
    else:
        moved = [t for tid, t in listed.items() if mark.seen.get(tid) != t]
        if not moved:
            return [], "incremental"  # every task's time is the one the last pull listed
        if any(t is None for t in moved):
            reason = "Label Studio listed a task without updated_at"
        else:
            # from the oldest moved task on (a late commit's old stamp included); unmoved tasks in that span are
            # read again, harmlessly: an annotation already stored is not stored twice
            start = min(t for t in moved if t is not None) - dt.timedelta(microseconds=1)
            return [_export_changed(client, project_id, since=start, timeout=timeout)], "incremental"
    return _export_all(client, project_id, timeout=timeout, known=known), reason


def _since_filter(since: dt.datetime) -> dict[str, Any]:
    value = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # microseconds and Z, else HTTP 500
    item = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}
    return {"conjunction": "and", "items": [item]}


def _export_changed(client: ReviewClient, project_id: int, *, since: dt.datetime, timeout: float) -> _Export:
    """Tasks whose updated_at is after `since`, annotated or not (a task whose last annotation was
    deleted has none left)."""
    return _export_tab(client, project_id, _since_filter(since), timeout=timeout)


def _export_all(client: ReviewClient, project_id: int, *, timeout: float, known: Iterable[int]) -> Iterator[_Export]:
    """Every annotated task of the project, in chunks of task ids: EXPORT_CHUNK of the `known` ids each,
    the first and last chunks open-ended (so tasks we do not know are exported too).

    Label Studio exports on one core at ~1.5 ms a task, and storing the reviews takes as long again:
    one background thread has Label Studio export chunk after chunk while the caller stores the
    last one, so the two overlap instead of adding up."""
    ids = sorted(set(known))
    bounds: list[int | None] = list(ids[EXPORT_CHUNK - 1 : -1 : EXPORT_CHUNK])  # upper ends, but the last
    if not bounds:
        yield _export(client, project_id, timeout=timeout, task_filter=TASK_FILTER)
        return
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export") as pool:
        chunks = [pool.submit(_export_id_range, client, project_id, lo, hi, timeout) for lo, hi in ranges]
        try:
            for chunk in chunks:
                yield chunk.result()
        finally:
            for chunk in chunks:
                chunk.cancel()


def _export_id_range(
    client: ReviewClient, project_id: int, low: int | None, high: int | None, timeout: float
) -> _Export:
    """Annotated tasks with low < id <= high (None: no bound). A task outside the range (a filter the
    server ignored) is dropped here, so chunks never overlap."""
    items = [
        {"filter": "filter:tasks:id", "operator": op, "type": "Number", "value": bound}
        for op, bound in (("greater", low), ("less_or_equal", high))
        if bound is not None
    ]
    export = _export_tab(client, project_id, {"conjunction": "and", "items": items}, timeout=timeout, annotated=True)
    inside = [t for t in export.tasks if (low is None or t["id"] > low) and (high is None or t["id"] <= high)]
    return replace(export, tasks=inside)


def _export_tab(
    client: ReviewClient, project_id: int, filters: dict[str, Any], *, timeout: float, annotated: bool = False
) -> _Export:
    """The tasks a Data Manager filter selects (only those with annotations when `annotated`), through
    a tab made for the export and deleted after it."""
    view = client.call(
        "making a tab of the tasks to export",
        client.sdk.views.create,
        project=project_id,
        data={"title": "annotator pull (temporary)", "filters": filters},
        idempotent=False,
    )
    try:
        task_filter: dict[str, Any] = {"view": int(view.id), **(TASK_FILTER if annotated else {})}
        return _export(client, project_id, timeout=timeout, task_filter=task_filter)
    finally:
        try:
            client.call("deleting the temporary tab", client.sdk.views.delete, str(view.id))
        except LabelStudioError:
            pass  # a leftover tab is harmless; the next pull makes its own


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _watermark(ws: Workspace, project_id: int) -> _Watermark | None:
    """The last pull's listing of this project; None: pull everything."""
    try:
        saved = json.loads(ws.store.get_meta(WATERMARK_KEY) or "null")
    except ValueError:
        return None
    if not isinstance(saved, dict) or saved.get("project_id") != project_id or not isinstance(saved.get("seen"), dict):
        return None
    seen = {int(k): _parse_time(v) for k, v in saved["seen"].items()}
    return _Watermark({k: v for k, v in seen.items() if v is not None})


def _save_watermark(ws: Workspace, project_id: int, listed: dict[int, dt.datetime | None] | str) -> None:
    """Keep this pull's listing (taken before its exports) for the next pull to compare with. A failed listing
    leaves the last one: the next pull then reads again whatever moved since that one."""
    if isinstance(listed, str):
        return
    seen = {str(k): v.isoformat() for k, v in listed.items() if v is not None}
    ws.store.set_meta(WATERMARK_KEY, json.dumps({"project_id": project_id, "seen": seen}))


def _unread_issues(ws: Workspace, project_id: int, read: set[int]) -> list[dict[str, Any]]:
    """The last report's unmerged annotations on tasks this pull did not read again."""
    try:
        last = json.loads((ws.reports_dir / ISSUES_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(last, dict) or last.get("project_id") != project_id:
        return []
    return [i for i in last.get("issues") or [] if isinstance(i, dict) and i.get("task_id") not in read]


def _mark_deleted(ws: Workspace, project_id: int, tasks: list[dict[str, Any]], *, full: bool) -> list[dict[str, Any]]:
    """Stored reviews whose annotation is gone from Label Studio: marked deleted (kept) and reported.

    Incremental: annotations missing from a task that was exported. Full: from the whole project."""
    present = {int(a["id"]) for t in tasks for a in t.get("annotations") or []}
    exported = {int(t["id"]) for t in tasks}
    stored = ws.store.review.pulled_annotation_tasks(project_id)
    gone = {a: task_id for a, task_id in stored.items() if a not in present and (full or task_id in exported)}
    if not gone:
        return []
    ws.store.review.mark_annotations_deleted(gone)
    photo_of_task = {tid: path for path, tid in ws.store.review.task_map(project_id).items()}
    return [
        {
            "task_id": task_id,
            "annotation_id": a,
            "photo": photo_of_task.get(task_id),
            "problem": "deleted in Label Studio after it was pulled; its review is kept in the photo's history",
        }
        for a, task_id in sorted(gone.items())
    ]


# ---- export --------------------------------------------------------------------------------


def _export(client: ReviewClient, project_id: int, *, timeout: float, task_filter: dict[str, Any]) -> _Export:
    """A snapshot export (JSON) of the project's tasks that `task_filter` selects, every annotation
    (skips included), full predictions and reviewers."""
    sdk = client.sdk
    export = client.call(
        "starting an export",
        sdk.projects.exports.create,
        project_id,
        idempotent=False,
        title=f"annotator pull {now_iso()}",
        serialization_options=SERIALIZATION,
        task_filter_options=task_filter,
        annotation_filter_options=ANNOTATION_FILTER,
    )
    deadline = time.monotonic() + timeout
    delay = 0.1
    status = str(getattr(export, "status", None) or "")  # without a job queue, Label Studio exports in the request
    while not status.endswith("completed"):
        if status.endswith("failed"):
            raise LabelStudioError(
                f"Label Studio at {client.url} failed to export project {project_id}; see its "
                "log and run `annotator review pull` again"
            )
        if time.monotonic() > deadline:
            raise LabelStudioError(
                f"the export of project {project_id} took over {timeout:.0f} s; run `annotator review pull` again later"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
        status = str(client.call("waiting for the export", sdk.projects.exports.get, project_id, export.id).status)
    body = client.call(
        "downloading the export",
        lambda: b"".join(sdk.projects.exports.download(project_id, export.id, export_type="JSON")),
    )
    try:
        client.call("deleting the export file", sdk.projects.exports.delete, project_id, export.id)
    except LabelStudioError:
        pass  # a leftover export file on the server is harmless
    try:
        tasks = json.loads(body)
    except ValueError:
        raise LabelStudioError(
            f"Label Studio at {client.url} sent an export that is not JSON; run `annotator review pull` again"
        ) from None
    return _Export(sorted(tasks, key=lambda t: t["id"]), _parse_time(getattr(export, "created_at", None)))


# ---- one annotation ---------------------------------------------------------------------------


def _prepare(
    ws: Workspace,
    project_id: int,
    task: dict[str, Any],
    ann: dict[str, Any],
    record: ImageRecord,
    pushed_version_id: int | None,
    classes: ClassTable,
    current: bool,
) -> tuple[_Prepared | None, list[str]]:
    """Check and convert one annotation; (None, problems) when it cannot be merged.

    current: it becomes the photo's current label (else it is stored as history)."""
    parsed = parse_result(ann.get("result") or [], width=record.width, height=record.height, classes=classes)
    if parsed.problems:
        return None, [f"{p}; fix it in Label Studio and pull again" for p in parsed.problems]
    reviewed = [(rid, Box(b.label, b.x1, b.y1, b.x2, b.y2)) for rid, b in parsed.regions]  # human boxes: no score

    predicted, model_version, round_no, pred_version_id = _parent_prediction(
        ws, task, ann, record, pushed_version_id, classes
    )
    reviewer = _reviewer(ann)
    meta = ReviewMeta(
        project_id=project_id,
        task_id=task["id"],
        annotation_id=ann["id"],
        lead_time=ann.get("lead_time"),
        created_at=ann.get("created_at"),
        updated_at=ann.get("updated_at"),
        parent_prediction=ann.get("parent_prediction"),
        prediction_version_id=pred_version_id,
        operations=tuple(diff_regions(predicted, reviewed)),
        simulated=is_simulated(reviewer),
        exclude_reasons=tuple(parsed.excluded),
    )
    meta = _with_notes(meta, task, parsed.fixes)
    decided_conflict = meta.conflict is not None  # started from a person's label, not from a round's model
    version = LabelVersion(
        image_path=record.path,
        source=Source.REVIEWED,
        boxes=tuple(b for _, b in reviewed),
        round=None if decided_conflict else round_no,
        model_version=None if decided_conflict else model_version,
        reviewer=reviewer,
        excluded=bool(parsed.excluded),
        meta=meta.to_dict(),
    )
    return _Prepared(version, int(ann["id"]), ann.get("updated_at"), current=current, fixes=parsed.fixes), []


def _with_notes(meta: ReviewMeta, task: dict[str, Any], fixes: tuple[BoxFix, ...]) -> ReviewMeta:
    """The review's meta with what the report says about it: boxes the one rule clipped or dropped
    (`box_fixes`), and the conflict it decided. A review of a task served for a label conflict
    (push's `conflict` note) started from a person's label, so its edits say nothing about the model:
    it keeps no edit diff (the correction statistic counts it unmeasured)."""
    meta = replace(meta, box_fixes=fixes)
    if (task.get("data") or {}).get(ARM_FIELD) == CONTROL_ARM:  # drawn from scratch: no edit of a prediction
        return replace(meta, operations=None, arm=CONTROL_ARM)
    note = (task.get("data") or {}).get(CONFLICT_FIELD)
    if not note:
        return meta
    return replace(meta, operations=None, conflict=str(note))


def _fixed(task: dict[str, Any], ann: dict[str, Any], path: str | None, fix: BoxFix) -> dict[str, Any]:
    """A report entry for a box the one rule clipped or dropped in a stored review."""
    entry = {**_issue(task, ann, path, fix.message), **fix.to_dict()}
    del entry["problem"]  # it is the message: the review was merged
    return entry


def _parent_prediction(
    ws: Workspace,
    task: dict[str, Any],
    ann: dict[str, Any],
    record: ImageRecord,
    pushed_version_id: int | None,
    classes: ClassTable,
) -> tuple[list[tuple[str, Box]], str | None, int | None, int | None]:
    """(regions, model_version, round, label-version id) of the prediction the reviewer started from:
    the annotation's parent prediction, else the label version pushed with the task."""
    history = ws.store.labels.history(record.path)
    model_versions = [v for v in history if v.source is Source.MODEL]
    parent_id = ann.get("parent_prediction")
    parent = next((p for p in task.get("predictions") or [] if isinstance(p, dict) and p.get("id") == parent_id), None)
    if parent is None and isinstance(ann.get("prediction"), dict) and "result" in ann["prediction"]:
        parent = ann["prediction"]
    if parent is not None:
        parsed = parse_result(parent.get("result") or [], width=record.width, height=record.height, classes=classes)
        mv = parent.get("model_version")
        match = next((v for v in reversed(model_versions) if v.model_version == mv), None)
        return list(parsed.regions), mv, match.round if match else None, match.id if match else None
    fallback = next((v for v in reversed(model_versions) if v.id == pushed_version_id), None) or (
        model_versions[-1] if model_versions else None
    )
    if fallback is None:
        return [], None, None, None
    regions = [(region_id(fallback.id, i), b) for i, b in enumerate(fallback.boxes)]
    return regions, fallback.model_version, fallback.round, fallback.id


def _newer_review_is_current(current: LabelVersion | None, ann: dict[str, Any]) -> bool:
    """A later annotation (of any task of this photo) is already the current label (`current`: the
    photo's current label when it is a review, else None)."""
    if current is None or current.source is not Source.REVIEWED:
        return False
    meta = ReviewMeta.from_dict(current.meta)
    if meta.annotation_id == ann["id"]:
        return False
    return str(meta.updated_at or "") > str(ann.get("updated_at") or "")


def _store_annotation(ws: Workspace, item: _Prepared) -> int:
    """Store one annotation and its pulled-row in one transaction: both or neither."""
    with ws.store.transaction():
        if item.current:
            version_id = ws.store.labels.add_label_version(item.version)
        else:
            version_id = ws.store.labels.add_history_version(item.version)
        assert version_id is not None  # a reviewed version is never refused
        ws.store.review.record_pulled(item.annotation_id, item.version.image_path, version_id, item.updated_at)
    return version_id
