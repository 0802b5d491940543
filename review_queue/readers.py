"""The reader study: dermatologists read the fixed test split blinded, in Label Studio, and their reads
come back as the reader (DOCTOR) rows of `annotator benchmark`.

Push puts every photo of the test split (`Labels.splits() == "test"`) into a readers' project of its
own, WITHOUT predictions or any label (blinded), asking for `readers` reads per photo, one per Label
Studio user: each reader is served every photo once by the label stream and never sees another's
read. A read is image-level: the lesion types the reader ticks (several allowed, "no lesion" for none);
boxes are optional, and a boxed lesion names its class too (a read is the union of both).
Pull writes every reader's reads as a reader CSV (`photo`, `reader`, `classes` joined by ';': the format
`training.readers` reads) where the caller says; the CLI writes `training.readers.READER_READS_FILE` under
reports/, where `annotator benchmark` picks it up by default.
The readers' project id and its tasks live in the store's meta table; pushing again adds only photos
that have no task yet.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from annotator.classes import ClassTable
from annotator.errors import ConfigError, LabelStudioError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace
from annotator.types import Box
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import CLASSES_TAG, IMAGE_TAG, NO_LESION, PHOTO_FIELD, local_file_url
from review_queue.labelstudio.project import (
    READERS,
    document_prefix,
    ensure_side_project,
    get_project,
    import_tasks,
    stored_project_id,
)
from review_queue.reviewer import ReviewerProfile

READERS_TASKS_KEY = "review.readers_tasks"  # JSON {photo: task id}


@dataclass(frozen=True)
class ReadersPushResult:
    project_id: int
    created: int  # tasks imported now
    already_there: int  # test photos that had a task
    readers: int  # reads asked per photo

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReadersPullResult:
    project_id: int
    photos: int  # test photos in the readers' project
    reads: dict[str, int]  # reader -> photos read
    reads_file: str
    unknown_photos: list[str] = field(default_factory=list)  # tasks naming photos no longer in the workspace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tasks(ws: Workspace) -> dict[str, int]:
    return {str(k): int(v) for k, v in json.loads(ws.store.get_meta(READERS_TASKS_KEY) or "{}").items()}


def study_photos(ws: Workspace) -> list[str]:
    """The fixed test split, in path order."""
    return sorted(p for p, s in ws.store.labels.splits().items() if s == "test")


def ensure_readers_project(ws: Workspace, client: ReviewClient, *, readers: int) -> int:
    """The readers' project (created on first use), asking for `readers` reads of every photo."""
    if readers < 1:
        raise ConfigError(f"--readers must be at least 1 (got {readers})")
    if stored_project_id(ws, READERS) is None:
        return ensure_side_project(ws, client, READERS, reads=readers)
    pid = int(stored_project_id(ws, READERS) or 0)
    project = get_project(client, pid, missing=f"the readers' project {pid} is gone from Label Studio at {client.url}")
    if project.maximum_annotations != readers:
        client.call("asking for one read per reader", client.sdk.projects.update, pid, **READERS.settings(readers))
    return pid


def push_readers(ws: Workspace, client: ReviewClient, *, readers: int = 2) -> ReadersPushResult:
    """Put every test photo without a task into the readers' project: image only, no prediction."""
    photos = study_photos(ws)
    if not photos:
        raise ConfigError(
            "the workspace has no test split yet: run `annotator bootstrap` or `annotator benchmark` (either makes "
            "the fixed splits) before the reader study"
        )
    pid = ensure_readers_project(ws, client, readers=readers)
    tasks = _tasks(ws)
    new = [p for p in photos if p not in tasks]
    if new:
        prefix = document_prefix(ws, client)
        payload = [{"data": {IMAGE_TAG: local_file_url(str(prefix / p)), PHOTO_FIELD: p}} for p in new]
        ids = import_tasks(
            client, pid, payload, what=f"{len(new)} reader-study tasks", rerun="annotator review readers push"
        )
        tasks.update({p: int(t) for p, t in zip(new, ids, strict=True)})
        ws.store.set_meta(READERS_TASKS_KEY, json.dumps(tasks))
    return ReadersPushResult(pid, created=len(new), already_there=len(photos) - len(new), readers=readers)


def read_classes(result: Sequence[dict[str, Any]], classes: ClassTable) -> frozenset[str]:
    """The lesion types one read names: ticked choices and the classes of any boxes drawn."""
    named: set[str] = set()
    for item in result:
        value = item.get("value") or {}
        for raw in [*(value.get("choices") or []), *(value.get("rectanglelabels") or [])]:
            label = classes.normalise(str(raw))
            if label is not None:
                named.add(label)
    return frozenset(named)


def pull_readers(ws: Workspace, client: ReviewClient, *, out: Path) -> ReadersPullResult:
    """Write every reader's latest read of each test photo as a reader CSV at `out` (rewritten whole)."""
    pid = stored_project_id(ws, READERS)
    if pid is None:
        raise LabelStudioError("no reader study was pushed yet: run `annotator review readers push` first")
    known = set(ws.store.labels.splits())
    classes = ws.config.class_table
    emails = client.user_emails()
    latest: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}  # (reader, photo) -> (updated_at, classes)
    unknown: list[str] = []
    for task in client.tasks_with_annotations(pid):
        photo = str((task.get("data") or {}).get(PHOTO_FIELD))
        if photo not in known:
            unknown.append(photo)
            continue
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue  # a skip is no read
            who = ann.get("completed_by")
            reader = who.get("email") if isinstance(who, dict) else emails.get(int(who or 0), f"user {who}")
            stamp = str(ann.get("updated_at") or "")
            key = (str(reader), photo)
            if key not in latest or stamp >= latest[key][0]:
                latest[key] = (stamp, read_classes(ann.get("result") or [], classes))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["photo", "reader", "classes"])
    for (reader, photo), (_, named) in sorted(latest.items()):
        writer.writerow([photo, reader, ";".join(sorted(named))])
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, buffer.getvalue())
    reads = Counter(reader for reader, _ in latest)
    return ReadersPullResult(pid, len(_tasks(ws)), dict(sorted(reads.items())), str(target), sorted(set(unknown)))


def simulated_reader(number: int) -> str:
    """The email of simulated reader `number` (1, 2, ...) of the reader study."""
    return f"simulated-reader-{number}@annotator.local"


def simulate_readers(
    ws: Workspace,
    client: ReviewClient,
    *,
    readers: int = 2,
    truth_dir: Path | None = None,
    noise: float = 0.0,
    seed: int = 0,
    profile: ReviewerProfile | None = None,
) -> dict[str, int]:
    """SIMULATION: readers 1..`readers` (their own Label Studio users) read every photo the label stream
    serves them from the ground truth's classes; with probability `noise` a read misses one present class
    or, on a photo without one, names a random class. With a reviewer `profile` instead, a read is the classes
    of what that reviewer boxes on the photo shown blind (`draw_from_scratch`: its misses by size and contrast,
    its confusions; `noise` is then not used). Returns reader -> photos read."""
    from review_queue.people import client_as
    from review_queue.simulate import read_truth

    pid = stored_project_id(ws, READERS)
    if pid is None:
        raise LabelStudioError("no reader study was pushed yet: run `annotator review readers push` first")
    truth_root = Path(truth_dir) if truth_dir else Path(ws.image_root).parent / "truth"
    classes = ws.config.class_table
    done: dict[str, int] = {}
    for number in range(1, readers + 1):
        email = simulated_reader(number)
        acting = client_as(client, email)
        rng = random.Random(seed * 1000 + 500 + number)
        served: set[int] = set()
        done[email] = 0
        while True:
            task = acting.next_task(pid)
            if task is None or int(task["id"]) in served:
                break
            served.add(int(task["id"]))
            photo = str((task.get("data") or {}).get(PHOTO_FIELD))
            truth = read_truth(truth_root, photo, classes)
            if truth is None:
                acting.postpone(int(task["id"]))
                continue
            named = sorted({b.label for b in truth})
            if profile is not None:
                named = _blind_read(ws, photo, truth, profile, rng)
            elif noise and rng.random() < noise:
                if named:
                    named.remove(rng.choice(named))
                else:
                    named = [rng.choice(classes.names)]
            value = {"choices": named or [NO_LESION]}
            result = [{"from_name": CLASSES_TAG, "to_name": IMAGE_TAG, "type": "choices", "value": value}]
            acting.annotate(int(task["id"]), result, what=f"reading task {task['id']}")
            done[email] += 1
    return done


def _blind_read(
    ws: Workspace, photo: str, truth: Sequence[Box], profile: ReviewerProfile, rng: random.Random
) -> list[str]:
    """The classes a reviewer of `profile` names on a photo shown without predictions: those of the boxes it
    draws there (the reader study is blinded, so nothing anchors it)."""
    from review_queue.simulate import blind_boxes

    record = ws.store.labels.image(photo)
    if record is None:
        raise ConfigError(f"{photo}: a reader-study photo the workspace does not know; run `annotator init`")
    return sorted({b.label for b in blind_boxes(ws, record, truth, rng, profile=profile)})
