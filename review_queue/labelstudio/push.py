"""Push model pre-annotations to Label Studio as review tasks, in bulk, without ever duplicating a task.

Every photo whose current label is a `model` version gets one task carrying that prediction
(prediction score = 1 - uncertainty, so Label Studio's uncertainty sampling serves the most
doubtful photo first). After a new round, untouched tasks get the new prediction; tasks a
reviewer has annotated (or skipped) are never touched. A push killed half-way is resumed by
the next one: tasks that reached the server but not the store are adopted by their `photo`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from annotator.errors import ConfigError, LabelStudioError
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    PHOTO_FIELD,
    VERSION_FIELD,
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
)

Progress = Callable[[str, int, int], None]  # (step, done, total)
T = TypeVar("T")


@dataclass(frozen=True)
class PushResult:
    project_id: int
    model_version: str | None
    created: int  # tasks imported now
    adopted: int  # tasks an interrupted push had created, now recorded
    replaced: int  # untouched tasks whose prediction was replaced by a newer round's
    kept_annotated: int  # tasks with a newer prediction, left alone because a reviewer already worked on them
    up_to_date: int  # tasks already carrying the current prediction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _silent(step: str, done: int, total: int) -> None:
    pass


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def push(
    ws: Workspace,
    client: ReviewClient,
    *,
    batch: int = 500,
    new_project: bool = False,
    progress: Progress | None = None,
) -> PushResult:
    """Create or update the review tasks of every photo whose current label is a model prediction."""
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1 (got {batch})")
    report = progress or _silent
    check_served_folder(ws)  # before a project is made for photos that must not be served
    project = ensure_project(ws, client, new=new_project)
    pid = int(project.id)
    ensure_photo_storage(ws, client, pid)
    prefix = document_prefix(ws, client)
    records = {r.path: r for r in ws.store.images()}
    model = ws.store.current_labels(sources=[Source.MODEL])

    tasks = ws.store.task_map(pid)
    adopted = 0
    if any(p not in tasks for p in model) and (project.task_number or 0) > len(tasks):
        adopted = _adopt_unrecorded(ws, client, pid, known=set(records))
        tasks = ws.store.task_map(pid)
    pushed = ws.store.pushed_versions()

    # 1. new photos: bulk import, one request per batch, task ids recorded with the batch
    new = [p for p in model if p not in tasks]
    created = 0
    for chunk in _chunks(new, batch):
        payload = [task_payload(records[p], model[p], str(prefix / p)) for p in chunk]
        response = client.call(
            f"importing {len(chunk)} tasks into project {pid}",
            client.sdk.projects.import_tasks,
            pid,
            request=payload,
            return_task_ids=True,
            idempotent=False,
        )
        ids = list(response.task_ids or [])
        if len(ids) != len(chunk):
            raise LabelStudioError(
                f"Label Studio returned {len(ids)} task ids for {len(chunk)} imported tasks; "
                "run `annotator review push` again (it adopts tasks created so far)"
            )
        ws.store.record_tasks(pid, [(p, int(tid), model[p].id) for p, tid in zip(chunk, ids, strict=True)])
        created += len(chunk)
        report("importing tasks", created, len(new))

    # 2. photos with a task but a newer prediction: replace it where nobody has worked on the task
    stale = [p for p in model if p in tasks and pushed.get(p) != model[p].id]
    replaced = kept = 0
    if stale:
        worked_on = _worked_on_task_ids(client, pid)
        todo = [p for p in stale if tasks[p] not in worked_on]
        kept = len(stale) - len(todo)
        for chunk in _chunks(todo, batch):
            ids = [tasks[p] for p in chunk]
            client.call(
                "removing outdated predictions",
                client.sdk.actions.create,
                id="delete_tasks_predictions",
                project=pid,
                selected_items={"all": False, "included": ids},
            )
            predictions = [{"task": tasks[p], **prediction_payload(records[p], model[p])} for p in chunk]
            client.call(
                "importing new predictions",
                client.sdk.projects.import_predictions,
                pid,
                request=predictions,
                idempotent=False,
            )
            ws.store.record_tasks(pid, [(p, tasks[p], model[p].id) for p in chunk])
            replaced += len(chunk)
            report("replacing predictions", replaced, len(todo))

    # 3. the project serves the newest round's predictions, most uncertain first
    newest = _newest_model_version(model.values())
    if newest is not None and (project.model_version != newest or project.sampling != SAMPLING):
        client.call(
            "setting the project's model version",
            client.sdk.projects.update,
            pid,
            model_version=newest,
            sampling=SAMPLING,
        )
    return PushResult(
        project_id=pid,
        model_version=newest or project.model_version or None,
        created=created,
        adopted=adopted,
        replaced=replaced,
        kept_annotated=kept,
        up_to_date=len(model) - len(new) - len(stale),
    )


def _newest_model_version(versions: Iterable[LabelVersion]) -> str | None:
    newest = max(versions, key=lambda v: (v.round if v.round is not None else -1, v.id or 0), default=None)
    if newest is None:
        return None
    return model_version_of(newest)


def _adopt_unrecorded(ws: Workspace, client: ReviewClient, project_id: int, known: set[str]) -> int:
    """Record tasks that exist on the server but not in the store (a push killed after an import)."""
    recorded = ws.store.task_map(project_id)
    recorded_ids = set(recorded.values())
    rows: list[tuple[str, int, int | None]] = []
    seen: set[str] = set(recorded)
    for page in client.task_pages(project_id, include="id,data"):
        for task in page:
            data = task.data or {}
            photo = data.get(PHOTO_FIELD)
            if task.id in recorded_ids or photo not in known or photo in seen:
                continue  # ours already, not our photo, or a second copy (the first listed wins)
            seen.add(photo)
            version = data.get(VERSION_FIELD)
            rows.append((photo, int(task.id), int(version) if version is not None else None))
    ws.store.record_tasks(project_id, rows)
    return len(rows)


def _worked_on_task_ids(client: ReviewClient, project_id: int) -> set[int]:
    """Tasks with any annotation, submitted or skipped: push never changes those."""
    ids: set[int] = set()
    for page in client.task_pages(project_id, include="id,total_annotations,cancelled_annotations"):
        ids.update(int(t.id) for t in page if (t.total_annotations or 0) + (t.cancelled_annotations or 0) > 0)
    return ids
