"""A simulated careful dermatologist: reviews the queue through the real Label Studio API.

It takes unannotated tasks in the order Label Studio serves them (prediction score ascending
= most uncertain first), compares each prediction with the ground truth in `truth/` and fixes
it like a careful reviewer would: a predicted box that matches a true lesion (IoU >= 0.5, same
class) is verified when it is as good as a hand-drawn box (IoU with the true box >= `accept_iou`,
0.7 by default: about the agreement between two people boxing the same lesion), else moved onto
the true lesion (`accept_iou=None`: a pixel-exact reviewer who moves any box off by more than half
a pixel); a box on a true lesion with the wrong class is relabelled (and moved if needed); a box
on no lesion is deleted; a missed lesion is drawn. Kept regions keep the prediction's region
id, so every edit is traceable after `pull`. THIS IS A SIMULATION: annotations are made by
the Label Studio user `simulated-reviewer@annotator.local`, never by a real reviewer's account.

Time model (seconds, used as the annotation's `lead_time`; a model, not a measurement):
  verify a box 2 (Papadopoulos et al. 2016, "We don't need no bounding-boxes": ~1.6-2 s per
  box-verification answer); move/resize a box 6; relabel 3; delete 2; draw a new box 7 to 35,
  growing with the box's size relative to the photo (7 s: extreme clicking, Papadopoulos et al.
  2017; 35 s: conventional drawing with quality control, ~34.5 s per box in the same paper,
  after Su et al. 2012) - small crisp lesions are quick, large diffuse patches (melasma) are
  slow; plus 3 per photo to look at the face and submit.

Noise (the reviewer's own slips, seeded): with probability `noise` a box the reviewer keeps,
moves or draws ends up with edges off by up to 5% of its size; with probability noise/4 a
missed lesion is overlooked, and with probability noise/4 a false positive is left in place.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.boxes import clip_box, iou, match_boxes, voc_to_box
from annotator.classes import ClassTable
from annotator.errors import ConfigError, InputFileError, LabelStudioError
from annotator.formats.voc import read_voc
from annotator.store import Workspace
from annotator.types import Box
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import SIMULATED_REVIEWER, box_to_result, parse_result
from review_queue.labelstudio.project import get_project, require_project_id

Progress = Callable[[str, int, int], None]  # (step, done, total)

SECONDS = {"verify": 2.0, "adjust": 6.0, "relabel": 3.0, "delete": 2.0, "photo": 3.0}
DRAW_MIN_S, DRAW_MAX_S = 7.0, 35.0
ACCEPT_IOU = 0.7  # a predicted box this close to the lesion's true box is left as it is
_SMALL, _LARGE = 0.02, 0.30  # box side relative to the photo's (sqrt of area share): fastest / slowest draw


@dataclass(frozen=True)
class ReviewAction:
    kind: str  # verify | adjust | relabel | delete | draw | photo
    region: str
    seconds: float


@dataclass(frozen=True)
class SimulationResult:
    annotated: int
    task_ids: list[int] = field(default_factory=list)
    missing_truth: list[str] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    lead_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_seconds(box: Box, width: int, height: int) -> float:
    """Time to draw a new box: 7 s for a small lesion to 35 s for a large diffuse patch."""
    side = math.sqrt(max(box.area, 0.0) / float(width * height))
    t = (side - _SMALL) / (_LARGE - _SMALL)
    return DRAW_MIN_S + (DRAW_MAX_S - DRAW_MIN_S) * min(1.0, max(0.0, t))


def plan_review(
    predicted: Sequence[tuple[str, Box]],
    truth: Sequence[Box],
    *,
    width: int,
    height: int,
    rng: random.Random,
    noise: float = 0.0,
    tolerance_px: float = 0.5,
    accept_iou: float | None = ACCEPT_IOU,
) -> tuple[list[tuple[str, Box]], list[ReviewAction]]:
    """What the careful reviewer submits for one photo: (regions, actions). Pure given `rng`."""
    boxes = [b for _, b in predicted]
    result: list[tuple[str, Box]] = []
    actions: list[ReviewAction] = [ReviewAction("photo", "", SECONDS["photo"])]
    used_p: set[int] = set()
    used_t: set[int] = set()

    def keep(i: int, target: Box, relabel: bool) -> None:
        rid, before = predicted[i]
        if relabel:
            actions.append(ReviewAction("relabel", rid, SECONDS["relabel"]))
        off = max(
            abs(a - b)
            for a, b in zip(
                (before.x1, before.y1, before.x2, before.y2), (target.x1, target.y1, target.x2, target.y2), strict=True
            )
        )
        good_enough = accept_iou is not None and iou(before, target) >= accept_iou
        if off > tolerance_px and not good_enough:
            actions.append(ReviewAction("adjust", rid, SECONDS["adjust"]))
            after = Box(target.label, target.x1, target.y1, target.x2, target.y2)
        else:
            if not relabel:
                actions.append(ReviewAction("verify", rid, SECONDS["verify"]))
            after = Box(target.label, before.x1, before.y1, before.x2, before.y2)
        result.append((rid, _slip(after, rng, noise, width, height)))

    for i, j, _ in match_boxes(boxes, list(truth), iou_threshold=0.5, class_aware=True):
        keep(i, truth[j], relabel=False)
        used_p.add(i)
        used_t.add(j)
    rest_p = [i for i in range(len(boxes)) if i not in used_p]
    rest_t = [j for j in range(len(truth)) if j not in used_t]
    for a, b, _ in match_boxes(
        [boxes[i] for i in rest_p], [truth[j] for j in rest_t], iou_threshold=0.5, class_aware=False
    ):
        keep(rest_p[a], truth[rest_t[b]], relabel=True)
        used_p.add(rest_p[a])
        used_t.add(rest_t[b])
    for i, (rid, box) in enumerate(predicted):
        if i in used_p:
            continue
        if noise and rng.random() < noise / 4:  # slip: a false positive left in place
            actions.append(ReviewAction("verify", rid, SECONDS["verify"]))
            result.append((rid, Box(box.label, box.x1, box.y1, box.x2, box.y2)))
        else:
            actions.append(ReviewAction("delete", rid, SECONDS["delete"]))
    for j, target in enumerate(truth):
        if j in used_t:
            continue
        if noise and rng.random() < noise / 4:  # slip: a missed lesion overlooked
            continue
        rid = f"s{rng.getrandbits(40):010x}"
        actions.append(ReviewAction("draw", rid, draw_seconds(target, width, height)))
        result.append(
            (rid, _slip(Box(target.label, target.x1, target.y1, target.x2, target.y2), rng, noise, width, height))
        )
    return result, actions


def _slip(box: Box, rng: random.Random, noise: float, width: int, height: int) -> Box:
    if not noise or rng.random() >= noise:
        return box
    dx, dy = 0.05 * box.width, 0.05 * box.height
    moved = Box(
        box.label,
        box.x1 + rng.uniform(-dx, dx),
        box.y1 + rng.uniform(-dy, dy),
        box.x2 + rng.uniform(-dx, dx),
        box.y2 + rng.uniform(-dy, dy),
    )
    return clip_box(moved, width, height)


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
) -> SimulationResult:
    """Annotate the next `count` tasks of the review queue as the simulated reviewer."""
    if count < 0 or not 0.0 <= noise <= 1.0:
        raise ConfigError("--count must be >= 0 and --noise between 0 and 1")
    pid = require_project_id(ws)
    project = get_project(client, pid)
    truth_root = Path(truth_dir) if truth_dir else Path(ws.image_root).parent / "truth"
    if not truth_root.is_dir():
        raise ConfigError(f"{truth_root}: no ground-truth folder; pass --truth DIR (VOC XML named like the photos)")
    classes = ws.config.class_table
    records = {r.path: r for r in ws.store.images()}
    rng = random.Random(seed)
    queue = _queue(client, pid, count)
    user_id = _simulated_user(client) if queue else None

    done: list[int] = []
    missing: list[str] = []
    tally: Counter[str] = Counter()
    total_s = 0.0
    for n, task in enumerate(queue, 1):
        photo = (task.data or {}).get("photo")
        record = records.get(photo) if isinstance(photo, str) else None
        truth = read_truth(truth_root, record.path, classes) if record else None
        if record is None or truth is None:
            missing.append(str(photo))
            continue
        prediction = _current_prediction(task, project.model_version)
        predicted = []
        if prediction is not None:
            predicted = list(
                parse_result(
                    _get(prediction, "result") or [], width=record.width, height=record.height, classes=classes
                ).regions
            )
        truth = [clip_box(b, record.width, record.height) for b in truth]
        regions, actions = plan_review(
            predicted, truth, width=record.width, height=record.height, rng=rng, noise=noise, accept_iou=accept_iou
        )
        lead_time = round(sum(a.seconds for a in actions), 2)
        result = [box_to_result(b, record.width, record.height, rid) for rid, b in regions]
        parent: dict[str, Any] = {"parent_prediction": int(_get(prediction, "id"))} if prediction is not None else {}
        client.call(
            f"annotating task {task.id}",
            client.sdk.annotations.create,
            task.id,
            idempotent=False,
            result=result,
            lead_time=lead_time,
            completed_by=user_id,
            was_cancelled=False,
            ground_truth=False,
            **parent,
        )
        done.append(int(task.id))
        tally.update(a.kind for a in actions if a.kind != "photo")
        total_s += lead_time
        if progress:
            progress("simulated review", n, len(queue))
    return SimulationResult(
        annotated=len(done), task_ids=done, missing_truth=missing, actions=dict(tally), lead_time_s=round(total_s, 2)
    )


def queue_query() -> str:
    """Label Studio's task query for the review queue: unannotated, ascending prediction score."""
    unworked = [
        {"filter": f"filter:tasks:{col}", "operator": "equal", "type": "Number", "value": 0}
        for col in ("total_annotations", "cancelled_annotations")
    ]
    return json.dumps({"filters": {"conjunction": "and", "items": unworked}, "ordering": ["tasks:predictions_score"]})


def _queue(client: ReviewClient, project_id: int, count: int) -> list[Any]:
    """The first `count` queued tasks, fetched before annotating (annotating changes the filter)."""
    queue: list[Any] = []
    if count == 0:
        return queue
    for page in client.task_pages(project_id, fields="all", query=queue_query(), page_size=min(count, 200)):
        queue.extend(page)
        if len(queue) >= count:
            break
    return queue[:count]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _current_prediction(task: Any, model_version: str | None) -> Any:
    predictions = list(task.predictions or [])
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
