"""Today's simulated reviewer before reviewer profiles, frozen (review_queue/simulate.py at 36b82e0): the careful
profile (`review_queue.reviewer.CAREFUL`) must reproduce its outputs and its random draws exactly. A spec, not
code to call: nothing outside the tests imports it."""

from __future__ import annotations

import random
from collections.abc import Sequence

from annotator.boxes import clip_box, iou, match_boxes
from annotator.types import Box
from review_queue.constants import ACCEPT_IOU, MATCH_IOU
from review_queue.edits import EditKind
from review_queue.effort import EDIT_SECONDS, draw_seconds
from review_queue.reviewer import ReviewAction


def legacy_plan_review(
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
    """What the careful reviewer submits for one photo: (regions, actions on its boxes; the look at the
    photo, LOOK_S, is no action). Pure given `rng`."""
    boxes = [b for _, b in predicted]
    result: list[tuple[str, Box]] = []
    actions: list[ReviewAction] = []
    used_p: set[int] = set()
    used_t: set[int] = set()

    def act(kind: EditKind, rid: str) -> None:
        actions.append(ReviewAction(kind, rid, EDIT_SECONDS[kind]))

    def keep(i: int, target: Box, relabel: bool) -> None:
        rid, before = predicted[i]
        if relabel:
            act(EditKind.RELABELLED, rid)
        off = max(
            abs(a - b)
            for a, b in zip(
                (before.x1, before.y1, before.x2, before.y2), (target.x1, target.y1, target.x2, target.y2), strict=True
            )
        )
        good_enough = accept_iou is not None and iou(before, target) >= accept_iou
        if off > tolerance_px and not good_enough:
            act(EditKind.MOVED, rid)
            after = Box(target.label, target.x1, target.y1, target.x2, target.y2)
        else:
            if not relabel:
                act(EditKind.ACCEPTED, rid)
            after = Box(target.label, before.x1, before.y1, before.x2, before.y2)
        result.append((rid, _slip(after, rng, noise, width, height)))

    for i, j, _ in match_boxes(boxes, list(truth), iou_threshold=MATCH_IOU, class_aware=True):
        keep(i, truth[j], relabel=False)
        used_p.add(i)
        used_t.add(j)
    rest_p = [i for i in range(len(boxes)) if i not in used_p]
    rest_t = [j for j in range(len(truth)) if j not in used_t]
    for a, b, _ in match_boxes(
        [boxes[i] for i in rest_p], [truth[j] for j in rest_t], iou_threshold=MATCH_IOU, class_aware=False
    ):
        keep(rest_p[a], truth[rest_t[b]], relabel=True)
        used_p.add(rest_p[a])
        used_t.add(rest_t[b])
    for i, (rid, box) in enumerate(predicted):
        if i in used_p:
            continue
        if noise and rng.random() < noise / 4:  # slip: a false positive left in place
            act(EditKind.ACCEPTED, rid)
            result.append((rid, Box(box.label, box.x1, box.y1, box.x2, box.y2)))
        else:
            act(EditKind.DELETED, rid)
    for j, target in enumerate(truth):
        if j in used_t:
            continue
        if noise and rng.random() < noise / 4:  # slip: a missed lesion overlooked
            continue
        rid = f"s{rng.getrandbits(40):010x}"
        actions.append(ReviewAction(EditKind.ADDED, rid, draw_seconds(target, width, height)))
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
