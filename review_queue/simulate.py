"""A simulated dermatologist: reviews the queue through the real Label Studio API.

It takes tasks one at a time in the order Label Studio serves a dermatologist in its label stream
(`GET /api/projects/{id}/next`: the project's uncertainty sampling, lowest prediction score =
most uncertain first, or whatever the server decides for several annotators), compares each
prediction with the ground truth in `truth/` and fixes it as its reviewer profile says
(`review_queue.reviewer`: `plan_review`). The careful profile (the default here, and in tests) is an
oracle: a predicted box that matches a true lesion (IoU >= MATCH_IOU, same class) is verified when it
is as good as a hand-drawn box (IoU with the true box >= `accept_iou`, by default the one ACCEPT_IOU of
`review_queue.constants` that pull's diff and the correction rate use), else moved onto the true lesion
(`accept_iou=None`: a pixel-exact reviewer who moves any box off by more than half a pixel); a box on a
true lesion with the wrong class is relabelled (and moved if needed); a box on no lesion is deleted; a
missed lesion is drawn. The realistic profile (the benchmarks' and the CLI's default) boxes lesions as
a second dermatologist would, overlooks small and faint ones, confuses melasma with Hori's nevus and
solar lentigo with freckles, and anchors on the predictions (docs/reviewer-profiles.md). Kept regions
keep the prediction's region id, so every edit is traceable after `pull`. THIS IS A SIMULATION:
annotations are made by the Label Studio user `simulated-reviewer@annotator.local`, never by a real
reviewer's account.

Time: each annotation's `lead_time` is the one time model (`review_queue.effort`) applied to the
edit diff of what the reviewer submitted, exactly as review status and the learning curve will
price it after `pull`; it is a model, not a measurement.

Noise (the careful reviewer's slips, seeded, on top of any profile): with probability `noise` a box the
reviewer keeps, moves or draws ends up with edges off by up to 5% of its size; with probability noise/4
a missed lesion is overlooked, and with probability noise/4 a false positive is left in place.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.boxes import clip_box, voc_to_box
from annotator.classes import ClassTable
from annotator.errors import ConfigError, InputFileError, LabelStudioError
from annotator.formats.voc import read_voc
from annotator.store import Workspace
from annotator.types import Box, ImageRecord
from review_queue.constants import ACCEPT_IOU
from review_queue.corrections import diff_regions
from review_queue.edits import EditKind
from review_queue.effort import LOOK_S, draw_seconds, review_seconds
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import (
    ARM_FIELD,
    CONTROL_ARM,
    SIMULATED_REVIEWER,
    box_to_result,
    parse_result,
)
from review_queue.labelstudio.project import get_project, require_project_id
from review_queue.people import client_as, simulated_reviewer
from review_queue.reviewer import (
    CAREFUL,
    ReviewAction,
    ReviewerProfile,
    draw_from_scratch,
    photo_contrasts,
    plan_review,
)

__all__ = [
    "ReviewAction",
    "SimulationResult",
    "plan_review",
    "queue_query",
    "read_truth",
    "simulate",
]

Progress = Callable[[str, int, int], None]  # (step, done, total)


@dataclass(frozen=True)
class SimulationResult:
    annotated: int
    task_ids: list[int] = field(default_factory=list)
    missing_truth: list[str] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    lead_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_truth(truth_dir: Path, photo: str, classes: ClassTable) -> list[Box] | None:
    """Ground-truth boxes of a photo from `<truth>/<path>.xml` or `<truth>/<stem>.xml`; None if absent."""
    rel = PurePosixPath(photo)
    for candidate in (truth_dir / rel.with_suffix(".xml"), truth_dir / f"{rel.stem}.xml"):
        if candidate.is_file():
            voc = read_voc(candidate)
            boxes = []
            for obj in voc.objects:
                label = classes.normalise(obj.name)
                if label is None:
                    raise InputFileError(str(candidate), "unknown-class", f"unknown class {obj.name!r}")
                boxes.append(voc_to_box(label, obj.xmin, obj.ymin, obj.xmax, obj.ymax))
            return boxes
    return None


def simulate(
    ws: Workspace,
    client: ReviewClient,
    *,
    count: int,
    truth_dir: Path | None = None,
    noise: float = 0.0,
    seed: int = 0,
    accept_iou: float | None = ACCEPT_IOU,
    progress: Progress | None = None,
    reviewer: int | None = None,
    profile: ReviewerProfile = CAREFUL,
) -> SimulationResult:
    """Annotate the next `count` tasks Label Studio serves (`/next`) as the simulated reviewer.

    reviewer: None for THE simulated reviewer (annotating through the administrator's client); 1, 2, ...
    for the reviewers of a double review, each its own Label Studio user (`review_queue.people`) served
    by its own label stream, with its own slips (the seed is mixed with the number).
    profile: how the reviewer reviews (`review_queue.reviewer.PROFILES`); careful by default, so tests and
    callers keep today's oracle; a profile that judges faint lesions reads each photo once.

    The stream is the one Label Studio serves to the user whose token the client holds; a photo
    without ground truth is postponed in that stream (left unannotated, served again only after
    every other task), and the simulation stops when the server has nothing new to serve.
    accept_iou changes only what the simulated reviewer does; what counts as changed is always
    `review_queue.constants.ACCEPT_IOU` (a stricter reviewer's nudges are priced as verifications).
    """
    if count < 0 or not 0.0 <= noise <= 1.0:
        raise ConfigError("--count must be >= 0 and --noise between 0 and 1")
    pid = require_project_id(ws)
    project = get_project(client, pid)
    truth_root = Path(truth_dir) if truth_dir else Path(ws.image_root).parent / "truth"
    if not truth_root.is_dir():
        raise ConfigError(f"{truth_root}: no ground-truth folder; pass --truth DIR (VOC XML named like the photos)")
    classes = ws.config.class_table
    records = {r.path: r for r in ws.store.labels.images()}
    rng = random.Random(seed if reviewer is None else seed * 1000 + reviewer)
    user_id: int | None = None
    acting = client if reviewer is None else client_as(client, simulated_reviewer(reviewer))

    done: list[int] = []
    missing: list[str] = []
    tally: Counter[str] = Counter()
    total_s = 0.0
    more = lambda: len(done) < count  # noqa: E731  (checked before each task is asked for)
    for task, record, truth in _served_with_truth(acting, pid, records, truth_root, classes, missing, more):
        prediction = _current_prediction(task, project.model_version)
        predicted = []
        if prediction is not None:
            predicted = list(
                parse_result(
                    _get(prediction, "result") or [], width=record.width, height=record.height, classes=classes
                ).regions
            )
        if (task.get("data") or {}).get(ARM_FIELD) == CONTROL_ARM:  # the effort study's arm: no prediction shown
            regions, actions = _draw_blind(ws, record, truth, rng, profile=profile)
        else:
            regions, actions = _plan(
                ws, record, predicted, truth, rng, noise=noise, accept_iou=accept_iou, profile=profile
            )
        # priced as pull will price it: the one time model over the edit diff of what is submitted, as stored
        ops = [op.as_stored() for op in diff_regions(predicted, regions)]
        lead_time = round(review_seconds(ops, record.width, record.height), 2)
        result = [box_to_result(b, record.width, record.height, rid) for rid, b in regions]
        parent: dict[str, Any] = {"parent_prediction": int(_get(prediction, "id"))} if prediction is not None else {}
        if user_id is None and reviewer is None:
            user_id = _simulated_user(client)
        author: dict[str, Any] = {"completed_by": user_id} if reviewer is None else {}
        acting.annotate(
            int(task["id"]), result, what=f"annotating task {task['id']}", lead_time=lead_time, **author, **parent
        )
        done.append(int(task["id"]))
        tally.update(a.kind.action for a in actions)
        total_s += lead_time
        if progress:
            progress("simulated review", len(done), count)
    return SimulationResult(
        annotated=len(done), task_ids=done, missing_truth=missing, actions=dict(tally), lead_time_s=round(total_s, 2)
    )


def queue_query() -> str:
    """The Data Manager's view of the review queue (what a person browsing the task list sees):
    unannotated tasks, ascending prediction score. The simulated reviewer follows `/next` instead."""
    unworked = [
        {"filter": f"filter:tasks:{col}", "operator": "equal", "type": "Number", "value": 0}
        for col in ("total_annotations", "cancelled_annotations")
    ]
    return json.dumps({"filters": {"conjunction": "and", "items": unworked}, "ordering": ["tasks:predictions_score"]})


def _served_with_truth(
    acting: ReviewClient,
    project_id: int,
    records: dict[str, ImageRecord],
    truth_root: Path,
    classes: ClassTable,
    missing: list[str],
    more: Callable[[], bool],
) -> Iterator[tuple[dict[str, Any], ImageRecord, list[Box]]]:
    """Tasks in the order Label Studio serves them to `acting` (`/next`), each with its photo and ground
    truth. A task without either is postponed and its photo added to `missing`; the stream ends when
    `more()` says enough (asked before each task, so no task is served and left), nothing is left, or
    only what was postponed comes back."""
    served: set[int] = set()
    while more():
        task = acting.next_task(project_id)
        if task is None or int(task["id"]) in served:
            return
        served.add(int(task["id"]))
        photo = (task.get("data") or {}).get("photo")
        record = records.get(photo) if isinstance(photo, str) else None
        truth = read_truth(truth_root, record.path, classes) if record else None
        if record is None or truth is None:
            missing.append(str(photo))
            acting.postpone(int(task["id"]))
            continue
        yield task, record, truth


def _plan(
    ws: Workspace,
    record: ImageRecord,
    predicted: Sequence[tuple[str, Box]],
    truth: list[Box],
    rng: random.Random,
    *,
    noise: float,
    accept_iou: float | None,
    profile: ReviewerProfile,
) -> tuple[list[tuple[str, Box]], list[ReviewAction]]:
    """What the reviewer submits for one served photo (`plan_review`), the truth fitted to the photo and, when
    the profile's misses depend on it, how faint each lesion is read from the photo."""
    truth = [clip_box(b, record.width, record.height) for b in truth]
    contrast = photo_contrasts(ws.image_path(record.path), truth) if profile.uses_contrast and truth else None
    return plan_review(
        predicted,
        truth,
        width=record.width,
        height=record.height,
        rng=rng,
        noise=noise,
        accept_iou=accept_iou,
        profile=profile,
        contrast=contrast,
    )


def blind_boxes(
    ws: Workspace, record: ImageRecord, truth: Sequence[Box], rng: random.Random, *, profile: ReviewerProfile
) -> tuple[Box, ...]:
    """The boxes a reviewer of `profile` draws on a photo shown without predictions (the truth clipped to the
    frame, each lesion's contrast read from the photo when the profile uses it)."""
    clipped = [clip_box(b, record.width, record.height) for b in truth]
    contrast = photo_contrasts(ws.image_path(record.path), clipped) if profile.uses_contrast and clipped else None
    return draw_from_scratch(clipped, profile, rng, width=record.width, height=record.height, contrast=contrast)


def _draw_blind(
    ws: Workspace, record: ImageRecord, truth: list[Box], rng: random.Random, *, profile: ReviewerProfile
) -> tuple[list[tuple[str, Box]], list[ReviewAction]]:
    """What the reviewer boxes on a photo served without predictions (`draw_from_scratch`: no anchoring)."""
    boxes = blind_boxes(ws, record, truth, rng, profile=profile)
    regions = [(f"drawn-{i}", box) for i, box in enumerate(boxes)]
    return regions, [
        ReviewAction(EditKind.ADDED, rid, draw_seconds(box, record.width, record.height)) for rid, box in regions
    ]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _current_prediction(task: Any, model_version: str | None) -> Any:
    predictions = list(_get(task, "predictions") or [])
    same = [p for p in predictions if _get(p, "model_version") == model_version]
    pool = same or predictions
    return max(pool, key=lambda p: _get(p, "id") or 0) if pool else None


def _simulated_user(client: ReviewClient) -> int:
    """The Label Studio user the simulation annotates as (created on first use)."""
    users = client.call("listing users", client.sdk.users.list)
    for user in users:
        if getattr(user, "email", None) == SIMULATED_REVIEWER:
            return int(user.id)
    try:
        user = client.call(
            "creating the simulated reviewer's user",
            client.sdk.users.create,
            idempotent=False,
            username="simulated-reviewer",
            email=SIMULATED_REVIEWER,
            first_name="Simulated",
            last_name="reviewer (simulation)",
        )
    except LabelStudioError as exc:
        raise LabelStudioError(
            f"cannot create the simulated reviewer's account ({exc}); use an administrator's token"
        ) from None
    return int(user.id)


def simulate_adjudication(
    ws: Workspace,
    client: ReviewClient,
    *,
    truth_dir: Path | None = None,
    noise: float = 0.0,
    seed: int = 0,
    count: int | None = None,
    profile: ReviewerProfile = CAREFUL,
) -> SimulationResult:
    """SIMULATION: the adjudicator (Label Studio user `simulated-adjudicator@annotator.local`) takes the
    adjudication tasks in the order the server serves them, starts from the review closer to the truth
    (box F1 at IoU 0.5 with class) and corrects it as `profile` says (careful by default), with its own
    seeded slips."""
    from review_queue.adjudication import ensure_adjudication_project
    from review_queue.agreement import compare
    from review_queue.people import SIMULATED_ADJUDICATOR

    pid = ensure_adjudication_project(ws, client)
    truth_root = Path(truth_dir) if truth_dir else Path(ws.image_root).parent / "truth"
    classes = ws.config.class_table
    records = {r.path: r for r in ws.store.labels.images()}
    rng = random.Random(seed * 1000 + 999)
    acting = client_as(client, SIMULATED_ADJUDICATOR)
    done: list[int] = []
    missing: list[str] = []
    tally: Counter[str] = Counter()
    total_s = 0.0
    more = lambda: count is None or len(done) < count  # noqa: E731
    for task, record, truth in _served_with_truth(acting, pid, records, truth_root, classes, missing, more):
        truth = [clip_box(b, record.width, record.height) for b in truth]
        reviews = [
            parse_result(_get(p, "result") or [], width=record.width, height=record.height, classes=classes).regions
            for p in _get(task, "predictions") or []
        ]
        start = max(reviews, key=lambda r: compare("", "", [b for _, b in r], "", truth).f1) if reviews else []
        regions, actions = _plan(ws, record, start, truth, rng, noise=noise, accept_iou=ACCEPT_IOU, profile=profile)
        ops = [op.as_stored() for op in diff_regions(start, regions)]
        lead_time = round(LOOK_S + review_seconds(ops, record.width, record.height), 2)  # two reviews to compare
        result = [box_to_result(b, record.width, record.height, rid) for rid, b in regions]
        acting.annotate(int(task["id"]), result, what=f"adjudicating task {task['id']}", lead_time=lead_time)
        done.append(int(task["id"]))
        tally.update(a.kind.action for a in actions)
        total_s += lead_time
    return SimulationResult(
        annotated=len(done), task_ids=done, missing_truth=missing, actions=dict(tally), lead_time_s=round(total_s, 2)
    )
