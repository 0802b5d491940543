"""Push model pre-annotations to Label Studio as review tasks, in bulk, without ever duplicating a task.

Every photo whose current label is a `model` version gets one task carrying that prediction
(prediction score = 1 - uncertainty, so Label Studio's uncertainty sampling serves the most
doubtful photo first; with `[review] queue_order = "random"`, a score fixed per photo and round
that serves a fair sample instead, see docs/queue-order.md). A photo with an open label conflict
(`Labels.conflicts()`: copies with other hand boxes, XML edited after a review) is served before
all of them: its task carries its current label as the prediction to check (score 0), the
disagreeing labels beside it, and the conflict's text. After a new round, untouched tasks get the
new prediction; tasks a reviewer has annotated (or skipped) are never touched. A push killed
half-way is resumed by the next one: tasks that reached the server but not the store are adopted
by their `photo`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, TypeVar

from annotator.errors import ConfigError
from annotator.store import Workspace
from annotator.types import EVAL_SPLIT, ImageRecord, LabelVersion, Source
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    CONFLICT_FIELD,
    CURRENT_LABEL_VERSION,
    PHOTO_FIELD,
    VERSION_FIELD,
    conflict_note,
    conflict_task_payload,
    control_task_payload,
    in_control_arm,
    model_version_of,
    prediction_payload,
    task_payload,
)
from review_queue.labelstudio.project import (
    SAMPLING,
    check_served_folder,
    document_prefix,
    ensure_photo_storage,
    ensure_project,
    import_tasks,
    set_overlap,
)
from review_queue.queue import PushResult

Progress = Callable[[str, int, int], None]  # (step, done, total)
T = TypeVar("T")
CONTROL_PHOTOS_KEY = "review.control_photos"  # JSON [photo]: the effort study's draw-from-scratch arm


@dataclass(frozen=True)
class _Conflicting:
    """A photo with open label conflicts, as its review task shows it."""

    record: ImageRecord
    current: LabelVersion  # the label to check (the prediction the reviewer starts from)
    waiting: tuple[LabelVersion, ...]  # the disagreeing labels kept in the history
    note: str  # why it is served first (task data `conflict`)


def _silent(step: str, done: int, total: int) -> None:
    pass


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def push(
    ws: Workspace,
    client: ReviewClient,
    *,
    batch: int = 1000,
    new_project: bool = False,
    progress: Progress | None = None,
    reviewers: int | None = None,
    overlap: float = 1.0,
    control: float = 0.0,
    control_seed: int = 0,
) -> PushResult:
    """Create or update the review tasks of every photo whose current label is a model prediction.

    reviewers: independent reviews per task on `overlap` of the tasks (None: leave the project's setting);
    control: the share of NEW tasks served without prediction, as "draw from scratch" (the effort study's
    control arm, drawn per photo with `control_seed`, recorded; a control task never gets a prediction)."""
    if batch < 1:
        raise ConfigError(f"batch must be at least 1 (got {batch})")
    if not 0.0 <= control < 1.0:
        raise ConfigError(f"the control share must lie in [0, 1) (got {control})")
    report = progress or _silent
    project = _open_project(ws, client, new=new_project, reviewers=reviewers, overlap=overlap)
    plan = _with_control_arm(ws, _plan(ws, client, project), share=control, seed=control_seed)
    created = _import_new(ws, client, plan, batch=batch, report=report)
    replaced, kept = _replace_stale(ws, client, plan, batch=batch, report=report)
    # conflicting photos go under the version the project will serve, so they sort first
    newest = _newest_model_version(plan.model.values())
    served = newest or project.model_version or CURRENT_LABEL_VERSION
    version_changed = (project.model_version or "") != served
    outcome = _push_conflicts(
        ws, client, plan, served_version=served, version_changed=version_changed, batch=batch, report=report
    )
    _serve_version(client, project, served, changed=newest is not None or bool(plan.conflicting))
    return PushResult(
        project_id=plan.project_id,
        model_version=newest or (served if plan.conflicting else project.model_version) or None,
        created=created + outcome.created,
        adopted=plan.adopted,
        replaced=replaced + outcome.replaced,
        kept_annotated=kept + outcome.kept,
        up_to_date=len(plan.model) - len(plan.new) - len(plan.stale) + outcome.up_to_date,
        conflicts=outcome.served,
        control=len([p for p in plan.new if p in plan.control]),
    )


@dataclass(frozen=True)
class _Plan:
    """What a push works from: the labels to serve and the project's tasks as the store knows them
    (after adopting tasks an interrupted push left unrecorded), read once before anything is sent."""

    project_id: int
    prefix: PurePosixPath  # the image root under the server's document root
    records: dict[str, ImageRecord]
    model: dict[str, LabelVersion]  # photo -> its current model prediction (photos without an open conflict)
    conflicting: dict[str, _Conflicting]
    tasks: dict[str, int]  # photo -> its task
    pushed: dict[str, int | None]  # photo -> the label version its task shows
    adopted: int  # tasks adopted now
    control: frozenset[str] = frozenset()  # photos served without prediction (the effort study's control arm)

    @property
    def new(self) -> list[str]:
        """Photos with a model prediction and no task yet."""
        return [p for p in self.model if p not in self.tasks]

    @property
    def stale(self) -> list[str]:
        """Photos whose task shows an older prediction."""
        return [
            p
            for p in self.model
            if p in self.tasks and p not in self.control and self.pushed.get(p) != self.model[p].id
        ]


def _open_project(ws: Workspace, client: ReviewClient, *, new: bool, reviewers: int | None, overlap: float) -> Any:
    """The review project (made on first use, or when `new`), asking for `reviewers` reviews a task, photos attached."""
    check_served_folder(ws)  # before a project is made for photos that must not be served
    project = ensure_project(ws, client, new=new)
    if reviewers is not None:
        project = set_overlap(client, project, reviewers=reviewers, fraction=overlap)
    ensure_photo_storage(ws, client, int(project.id))
    return project


def _plan(ws: Workspace, client: ReviewClient, project: Any) -> _Plan:
    """Read the labels to serve and the recorded tasks; adopt the tasks a killed push left unrecorded."""
    pid = int(project.id)
    prefix = document_prefix(ws, client)
    records = {r.path: r for r in ws.store.labels.images()}
    conflicting = _conflicting(ws, records)
    held_out = {p for p, split in ws.store.labels.splits().items() if split == EVAL_SPLIT}  # the fixed evaluation set
    model = {
        p: v
        for p, v in ws.store.labels.current_labels(sources=[Source.MODEL]).items()
        if p not in conflicting and p not in held_out
    }
    tasks = ws.store.review.task_map(pid)
    adopted = 0
    pushed = ws.store.review.pushed_versions()
    untasked = [p for p in (*model, *conflicting) if p not in tasks]
    retasked = [p for p, c in conflicting.items() if pushed.get(p) != c.current.id]  # may get a conflict task
    if (untasked or retasked) and (project.task_number or 0) > len(tasks):
        adopted = _adopt_unrecorded(ws, client, pid, known=set(records))
        tasks = ws.store.review.task_map(pid)
        pushed = ws.store.review.pushed_versions()
    return _Plan(pid, prefix, records, model, conflicting, tasks, pushed, adopted)


def _with_control_arm(ws: Workspace, plan: _Plan, *, share: float, seed: int) -> _Plan:
    """The plan with its control arm: the photos recorded there before, plus the new photos drawn into it
    now (recorded before any task is made, so a killed push draws the same photos again)."""
    recorded = frozenset(json.loads(ws.store.get_meta(CONTROL_PHOTOS_KEY) or "[]"))
    drawn = frozenset(p for p in plan.new if share and in_control_arm(p, share, seed))
    if drawn - recorded:
        ws.store.set_meta(CONTROL_PHOTOS_KEY, json.dumps(sorted(recorded | drawn)))
    return replace(plan, control=recorded | drawn)


def _import_new(ws: Workspace, client: ReviewClient, plan: _Plan, *, batch: int, report: Progress) -> int:
    """Import a task for each new photo, one request per batch, recording the task ids with the batch.

    One thread sends the batches in order while this one builds the next payload and records the last
    batch's task ids: Label Studio's import (~1.2 ms a task, one core) is the limit, so the ~0.2 ms a task
    here hides behind it."""
    pid, new, model = plan.project_id, plan.new, plan.model
    created = 0

    def payload_of(chunk: Sequence[str]) -> list[dict[str, Any]]:
        return [
            control_task_payload(plan.records[p], model[p], str(plan.prefix / p))
            if p in plan.control
            else task_payload(plan.records[p], model[p], str(plan.prefix / p), ws.config.queue_order)
            for p in chunk
        ]

    def send(payload: list[dict[str, Any]]) -> list[int]:
        rerun = "annotator review push (it adopts tasks created so far)"
        return import_tasks(client, pid, payload, what=f"{len(payload)} tasks", rerun=rerun)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import") as importer:
        sent: deque[tuple[Sequence[str], Future[list[int]]]] = deque()
        for chunk in (*_chunks(new, batch), None):
            if chunk is not None:
                sent.append((chunk, importer.submit(send, payload_of(chunk))))
            while sent and (chunk is None or len(sent) > 1):  # the one before the batch just sent
                # re-raises a failed import; the one batch sent after it may reach Label Studio unrecorded,
                # and the next push adopts it like any task a killed push left
                done, ids = sent[0][0], sent[0][1].result()
                sent.popleft()
                ws.store.review.record_tasks(
                    pid, [(p, int(tid), model[p].id) for p, tid in zip(done, ids, strict=True)]
                )
                created += len(done)
                report("importing tasks", created, len(new))
    return created


def _replace_stale(
    ws: Workspace, client: ReviewClient, plan: _Plan, *, batch: int, report: Progress
) -> tuple[int, int]:
    """Give the untouched tasks of photos with a newer prediction that prediction; (replaced, kept annotated)."""
    stale, tasks, model = plan.stale, plan.tasks, plan.model
    if not stale:
        return 0, 0
    worked_on = _worked_on_task_ids(client, plan.project_id)
    todo = [p for p in stale if tasks[p] not in worked_on]
    replaced = 0
    for chunk in _chunks(todo, batch):
        predictions = [
            {"task": tasks[p], **prediction_payload(plan.records[p], model[p], ws.config.queue_order)} for p in chunk
        ]
        _replace_predictions(client, plan.project_id, [tasks[p] for p in chunk], predictions, what="new predictions")
        ws.store.review.record_tasks(plan.project_id, [(p, tasks[p], model[p].id) for p in chunk])
        replaced += len(chunk)
        report("replacing predictions", replaced, len(todo))
    return replaced, len(stale) - len(todo)


def _serve_version(client: ReviewClient, project: Any, served: str, *, changed: bool) -> None:
    """Make the project serve the newest round's predictions (and the conflicts before them), most uncertain
    first; `changed`: there is a model version or a conflict to serve."""
    if changed and (project.model_version != served or project.sampling != SAMPLING):
        client.call(
            "setting the project's model version",
            client.sdk.projects.update,
            int(project.id),
            model_version=served,
            sampling=SAMPLING,
        )


def _conflicting(ws: Workspace, records: dict[str, ImageRecord]) -> dict[str, _Conflicting]:
    """Photos with open label conflicts, oldest conflict first, each with its labels and the reviewer's note."""
    by_photo: dict[str, list[Any]] = {}
    for conflict in ws.store.labels.conflicts():
        if conflict.path in records:
            by_photo.setdefault(conflict.path, []).append(conflict)
    out: dict[str, _Conflicting] = {}
    for path, conflicts in by_photo.items():
        waiting = tuple(v for v in (ws.store.labels.version(c.version_id) for c in conflicts) if v is not None)
        current = ws.store.labels.current_label(path) or (waiting[0] if waiting else None)
        if current is None:
            continue  # nothing to show the reviewer; cannot happen with labels made by ingest
        note = conflict_note((c.kind, c.detail) for c in conflicts)
        out[path] = _Conflicting(records[path], current, waiting, note)
    return out


@dataclass(frozen=True)
class _ConflictOutcome:
    created: int = 0
    replaced: int = 0
    kept: int = 0
    up_to_date: int = 0

    @property
    def served(self) -> int:
        return self.created + self.replaced + self.up_to_date


def _push_conflicts(
    ws: Workspace,
    client: ReviewClient,
    plan: _Plan,
    *,
    served_version: str,
    version_changed: bool,
    batch: int,
    report: Progress,
) -> _ConflictOutcome:
    """Give every conflicting photo a task that is served first.

    No task yet: one is created. An untouched task is brought up to date (its prediction, the note,
    the served model version). A task a reviewer worked on is left alone when it already showed
    this conflict (its review waits to be pulled, or it was skipped); when it showed an earlier
    label (say, the model's, reviewed before the XML was edited), the photo gets a new task.
    """
    pid, conflicting, tasks, pushed, prefix = plan.project_id, plan.conflicting, plan.tasks, plan.pushed, plan.prefix
    if not conflicting:
        return _ConflictOutcome()
    states = _task_states(client, pid, {tasks[p] for p in conflicting if p in tasks})
    new: list[str] = []
    stale: list[str] = []
    kept = current = 0
    for path, item in conflicting.items():
        state = states.get(tasks[path]) if path in tasks else None
        shows_this_label = pushed.get(path) == item.current.id
        if state is None:
            new.append(path)
        elif state.worked_on:
            if shows_this_label:
                kept += 1
            else:
                new.append(path)
        elif not shows_this_label or version_changed or state.note != item.note:
            stale.append(path)
        else:
            current += 1

    def payload(path: str) -> dict[str, Any]:
        item = conflicting[path]
        return conflict_task_payload(
            item.record, item.current, item.waiting, item.note, str(prefix / path), served_version
        )

    for done, chunk in enumerate(_chunks(new, batch), 1):
        ids = import_tasks(
            client, pid, [payload(p) for p in chunk], what=f"{len(chunk)} conflict tasks", rerun="annotator review push"
        )
        ws.store.review.record_tasks(
            pid, [(p, int(t), conflicting[p].current.id) for p, t in zip(chunk, ids, strict=True)]
        )
        report("serving conflicts first", min(done * batch, len(new)), len(new))

    for chunk in _chunks(stale, batch):
        for p in chunk:  # the note and the label version it shows
            client.call("updating a conflict task", client.sdk.tasks.update, str(tasks[p]), data=payload(p)["data"])
        predictions = [{"task": tasks[p], **prediction} for p in chunk for prediction in payload(p)["predictions"]]
        _replace_predictions(client, pid, [tasks[p] for p in chunk], predictions, what="conflict predictions")
        ws.store.review.record_tasks(pid, [(p, tasks[p], conflicting[p].current.id) for p in chunk])
    return _ConflictOutcome(created=len(new), replaced=len(stale), kept=kept, up_to_date=current)


def _replace_predictions(
    client: ReviewClient, project_id: int, task_ids: list[int], predictions: list[dict[str, Any]], *, what: str
) -> None:
    """Remove the tasks' outdated predictions, then import their new ones (a rerun redoes both)."""
    client.call(
        "removing outdated predictions",
        client.sdk.actions.create,
        id="delete_tasks_predictions",
        project=project_id,
        selected_items={"all": False, "included": task_ids},
    )
    client.call(
        f"importing {what}",
        client.request_json,  # plain JSON: the SDK's encoder walks every value
        "POST",
        f"api/projects/{project_id}/import/predictions",
        body=predictions,
        idempotent=False,
    )


@dataclass(frozen=True)
class _TaskState:
    data: dict[str, Any]
    worked_on: bool

    @property
    def note(self) -> str:
        return str(self.data.get(CONFLICT_FIELD) or "")


def _task_states(client: ReviewClient, project_id: int, ids: set[int]) -> dict[int, _TaskState]:
    """Data and whether anyone annotated or skipped it, for the tasks `ids` (those still on the server)."""
    if not ids:
        return {}
    states: dict[int, _TaskState] = {}
    for page in client.task_rows(project_id, include="id,data,total_annotations,cancelled_annotations"):
        for t in page:
            if int(t["id"]) in ids:
                states[int(t["id"])] = _TaskState(dict(t.get("data") or {}), _worked_on(t))
    return states


def _newest_model_version(versions: Iterable[LabelVersion]) -> str | None:
    newest = max(versions, key=lambda v: (v.round if v.round is not None else -1, v.id or 0), default=None)
    if newest is None:
        return None
    return model_version_of(newest)


def _adopt_unrecorded(ws: Workspace, client: ReviewClient, project_id: int, known: set[str]) -> int:
    """Record tasks that exist on the server but not in the store (a push killed after an import).

    A photo has one task, the first listed; except a later conflict task (see `_push_conflicts`),
    which takes over from the photo's recorded task."""
    recorded = ws.store.review.task_map(project_id)
    recorded_ids = set(recorded.values())
    rows: list[tuple[str, int, int | None]] = []
    seen: set[str] = set(recorded)
    for page in client.task_rows(project_id, include="id,data"):
        for task in page:
            task_id = int(task["id"])
            data = task.get("data") or {}
            photo = data.get(PHOTO_FIELD)
            if task_id in recorded_ids or photo not in known:
                continue  # ours already, or not our photo
            takes_over = bool(data.get(CONFLICT_FIELD)) and photo in recorded and task_id > recorded[photo]
            if photo in seen and not takes_over:
                continue  # a second copy (the first listed wins)
            seen.add(photo)
            version = data.get(VERSION_FIELD)
            rows.append((photo, task_id, int(version) if version is not None else None))
    ws.store.review.record_tasks(project_id, rows)
    return len(rows)


def _worked_on_task_ids(client: ReviewClient, project_id: int) -> set[int]:
    """Tasks with any annotation, submitted or skipped: push never changes those."""
    ids: set[int] = set()
    for page in client.task_rows(project_id, include="id,total_annotations,cancelled_annotations"):
        ids.update(int(t["id"]) for t in page if _worked_on(t))
    return ids


def _worked_on(task: dict[str, Any]) -> bool:
    return int(task.get("total_annotations") or 0) + int(task.get("cancelled_annotations") or 0) > 0
