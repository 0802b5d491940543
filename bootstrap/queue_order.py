"""Which order of the pool finishes the data set with the fewest reviewer seconds?

The loop serves the pool in some order; reviewers work through it in batches; after each batch
`finalize` decides, by its own rule, whether the rest can be auto-accepted. An order that serves
easy photos first shows a low correction rate early, so finalize accepts early and the hard photos
left over go in unchecked; an order that serves hard photos first keeps the rate high until what is
left is easy. The question (issue 11) is which order reaches a finished set with box F1 >= 0.95
against the truth for the fewest reviewer seconds.

This module answers it on one round's predictions, with the model held fixed: every photo is
reviewed by a simulated reviewer (`review_queue.reviewer.plan_review`: the careful one, the IoU 0.7 rule,
by default; the benchmark's is realistic), with the same draws for a photo in every order, its edits
diffed by `review_queue.corrections` and priced by the one effort model
(`review_queue.effort`), each batch gated by finalize's own rule (`bootstrap.finalize`). It leaves
out what retraining between batches would add (an order that feeds the model its mistakes sooner
may earn a better model); the loop benchmark measures the loop with retraining, in uncertainty order.

Pure functions: photos in, outcomes out. `benchmarks/queue_order.py` feeds it a workspace.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from annotator.boxes import match_boxes
from annotator.types import Box, LabelVersion, Source
from review_queue.corrections import correction_summary, diff_regions
from review_queue.reviewer import CAREFUL, ReviewerProfile, plan_review

# The stopping rule this comparison uses: the correction-rate rule finalize used before it audited
# (a batch's rate against 2% of all boxes, diluted by the human ones). It lets a small remainder pass at
# any rate, so finalize no longer uses it; here it only makes the orders comparable with earlier runs.
TOLERATED_ERROR_SHARE = 0.02


def recommend_threshold(
    remaining_boxes: int, human_boxes: int, tolerated_error_share: float = TOLERATED_ERROR_SHARE
) -> float:
    """The correction rate below which the old rule accepted the rest (information only)."""
    if remaining_boxes <= 0:
        return 1.0
    return float(min(1.0, tolerated_error_share * (remaining_boxes + human_boxes) / remaining_boxes))


def expected_remaining_boxes(remaining_predicted: int, remaining_photos: int, boxes_per_reviewed_photo: float) -> int:
    """The boxes the photos left should hold: what the model predicted, or what reviewers found per photo."""
    return max(remaining_predicted, round(remaining_photos * boxes_per_reviewed_photo))


UNCERTAINTY_FIRST = "uncertainty-first"
RANDOM = "random"
MOST_CONFIDENT_FIRST = "most-confident-first"
CLASS_BALANCED = "class-balanced"
ORDERS = (UNCERTAINTY_FIRST, RANDOM, MOST_CONFIDENT_FIRST, CLASS_BALANCED)
NO_PREDICTION = ""  # the class-balanced order's group for photos the model left empty
TARGET_F1 = 0.95


@dataclass(frozen=True)
class PoolPhoto:
    """One unlabelled photo as the queue sees it (the model's kept boxes and score) and the truth."""

    path: str
    width: int
    height: int
    predicted: tuple[Box, ...]
    uncertainty: float
    truth: tuple[Box, ...]


@dataclass(frozen=True)
class OrderOutcome:
    """How one order finished the pool."""

    order: str
    seed: int | None  # the shuffle's seed (random order only)
    reviewed_photos: int  # when finalize accepted the rest (or the whole pool, when it never did)
    auto_accepted: int
    reviewer_seconds: float  # the effort model over the reviewed photos
    scratch_seconds: float  # drawing the same reviewed photos from scratch, same model
    finished_by: str  # "finalize after N photos" or "every photo reviewed"
    pool_f1: float  # box F1 at IoU 0.5 (with class) of the finished pool against the truth
    oracle_photos: int  # the fewest reviewed photos in this order after which accepting the rest gives TARGET_F1
    oracle_seconds: float  # what reviewing those cost

    @property
    def meets_target(self) -> bool:
        return self.pool_f1 >= TARGET_F1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "meets_target": self.meets_target}


def order_pool(photos: Sequence[PoolPhoto], order: str, *, seed: int = 0) -> list[PoolPhoto]:
    """The pool in the order the queue would serve it. Ties break by path, so every order is deterministic.

    uncertainty-first: most uncertain first (the tool's queue: Label Studio's uncertainty sampling).
    most-confident-first: the reverse. random: a seeded shuffle. class-balanced: round-robin over the
    classes the model predicted, rarest class first, most uncertain first within a class; a photo joins
    the group of its rarest predicted class; photos with no prediction form a group of their own."""
    by_path = sorted(photos, key=lambda p: p.path)
    if order == UNCERTAINTY_FIRST:
        return sorted(by_path, key=lambda p: -p.uncertainty)
    if order == MOST_CONFIDENT_FIRST:
        return sorted(by_path, key=lambda p: p.uncertainty)
    if order == RANDOM:
        shuffled = list(by_path)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    if order == CLASS_BALANCED:
        frequency = Counter(label for p in by_path for label in {b.label for b in p.predicted})
        groups: dict[str, list[PoolPhoto]] = {}
        for photo in by_path:
            labels = {b.label for b in photo.predicted}
            key = min(labels, key=lambda c: (frequency[c], c)) if labels else NO_PREDICTION
            groups.setdefault(key, []).append(photo)
        queues = [
            sorted(groups[k], key=lambda p: -p.uncertainty)
            for k in sorted(groups, key=lambda c: (frequency.get(c, 0), c))
        ]
        out: list[PoolPhoto] = []
        while any(queues):
            for q in queues:
                if q:
                    out.append(q.pop(0))
        return out
    raise ValueError(f"unknown queue order {order!r}; known: {', '.join(ORDERS)}")


@dataclass(frozen=True)
class _Reviewed:
    version: LabelVersion
    seconds: float
    scratch: float


def _review(photo: PoolPhoto, rng: random.Random, profile: ReviewerProfile) -> _Reviewed:
    """The simulated reviewer on one photo, diffed and priced as a pulled review would be."""
    predicted = [(f"p{i}", box) for i, box in enumerate(photo.predicted)]
    regions, _ = plan_review(predicted, photo.truth, width=photo.width, height=photo.height, rng=rng, profile=profile)
    ops = [op.to_dict() for op in diff_regions(predicted, regions)]
    version = LabelVersion(
        image_path=photo.path,
        source=Source.REVIEWED,
        boxes=tuple(box for _, box in regions),
        round=0,
        meta={"operations": ops},
    )
    one = correction_summary([version], sizes={photo.path: (photo.width, photo.height)}).effort
    return _Reviewed(version, one.reviewer_seconds, one.scratch_seconds)


Counts = tuple[int, int, int]  # true positives, false positives, false negatives


def _counts(boxes: Sequence[Box], truth: Sequence[Box]) -> Counts:
    matched = len(match_boxes(list(boxes), list(truth), 0.5))
    return matched, len(boxes) - matched, len(truth) - matched


def _add(a: Counts, b: Counts) -> Counts:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def simulate_order(
    photos: Sequence[PoolPhoto],
    order: str,
    *,
    batch: int,
    human_boxes: int,
    seed: int = 0,
    profile: ReviewerProfile = CAREFUL,
) -> OrderOutcome:
    """Review the pool in `order`, `batch` photos at a time, until finalize's rule accepts the rest.

    human_boxes: boxes already labelled by people outside the pool (the seed set), which finalize's
    recommended threshold weighs the remaining predictions against. profile: the simulated reviewer, seeded
    per photo so that orders differ only in their order."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    queue = order_pool(photos, order, seed=seed)
    reviews = [_review(p, random.Random(p.path), profile) for p in queue]
    # f1_at[k]: the pool's box F1 with the first k photos reviewed and the rest accepted as predicted
    review_counts = [_counts(r.version.boxes, p.truth) for r, p in zip(reviews, queue, strict=True)]
    accept_counts = [_counts(p.predicted, p.truth) for p in queue]
    tail: list[Counts] = [(0, 0, 0)] * (len(queue) + 1)
    for k in range(len(queue) - 1, -1, -1):
        tail[k] = _add(tail[k + 1], accept_counts[k])
    head: Counts = (0, 0, 0)
    f1_at = []
    for k in range(len(queue) + 1):
        f1_at.append(_f1(*_add(head, tail[k])))
        if k < len(queue):
            head = _add(head, review_counts[k])
    seconds_at = [0.0]
    for r in reviews:
        seconds_at.append(seconds_at[-1] + r.seconds)

    done = len(queue)
    finished_by = "every photo reviewed"
    reviewed_boxes = 0
    for start in range(0, len(queue), batch):
        stop = min(start + batch, len(queue))
        summary = correction_summary([r.version for r in reviews[start:stop]])
        reviewed_boxes += sum(len(r.version.boxes) for r in reviews[start:stop])
        rest = queue[stop:]
        if not rest or summary.correction_rate is None:
            continue
        expected = expected_remaining_boxes(
            sum(len(p.predicted) for p in rest), len(rest), summary.reviewed_boxes_per_photo or 0.0
        )
        if summary.correction_rate <= recommend_threshold(expected, human_boxes + reviewed_boxes):
            done, finished_by = stop, f"finalize after {stop} photos"
            break
    oracle = next(k for k in range(len(queue) + 1) if f1_at[k] >= TARGET_F1 or k == len(queue))
    return OrderOutcome(
        order=order,
        seed=seed if order == RANDOM else None,
        reviewed_photos=done,
        auto_accepted=len(queue) - done,
        reviewer_seconds=seconds_at[done],
        scratch_seconds=sum(r.scratch for r in reviews[:done]),
        finished_by=finished_by,
        pool_f1=f1_at[done],
        oracle_photos=oracle,
        oracle_seconds=seconds_at[oracle],
    )


def winner(outcomes: Sequence[OrderOutcome]) -> str | None:
    """The order with the fewest mean reviewer seconds among those whose every run met TARGET_F1."""
    by_order: dict[str, list[OrderOutcome]] = {}
    for o in outcomes:
        by_order.setdefault(o.order, []).append(o)
    eligible = {k: v for k, v in by_order.items() if all(o.meets_target for o in v)}
    if not eligible:
        return None
    return min(eligible, key=lambda k: sum(o.reviewer_seconds for o in eligible[k]) / len(eligible[k]))
