"""The fixed evaluation set: pool photos no one reviews (annotator.toml `[split] eval_size`), predicted by
every round and scored with a SIMULATED reviewer against their ground truth, so rounds are compared on
the same photos rather than on a pool that runs out of hard photos.

Per round, on the same photos: the reviewer's modelled seconds against drawing the same final boxes from
scratch (one time model, review_queue.effort), the correction rate, how well the review priority ranks
the photos the reviewer changed (AUROC, scikit-learn), and what reviewing from predictions does to label
quality: box F1 against the truth of the photos reviewed from predictions beside the same photos drawn
from scratch by the same reviewer model (no anchoring), each with its interval.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.boxes import clip_box, match_boxes
from annotator.store import Workspace
from annotator.types import EVAL_SPLIT, Box, LabelVersion, Source
from review_queue.constants import ACCEPT_IOU, MATCH_IOU
from review_queue.corrections import diff_regions
from review_queue.edits import EditKind, EditOp
from review_queue.effort import LOOK_S, op_seconds, review_seconds, scratch_seconds
from review_queue.reviewer import ReviewerProfile, draw_from_scratch, photo_contrasts, plan_review
from review_queue.simulate import read_truth
from training.constants import BOOTSTRAP_RESAMPLES, INTERVAL_LEVEL
from training.metrics import BoxF1, box_f1, box_f1_by_class, percentile_interval


@dataclass(frozen=True)
class FixedSetRound:
    """One round's model on the fixed evaluation set."""

    round_no: int
    photos: int
    reviewer_seconds: float  # per photo, modelled
    scratch_seconds: float  # per photo, drawing the same final boxes
    correction_rate: float | None  # (changed predicted + added) / (predicted + added) boxes
    changed_photos: int
    auroc: float | None  # review priority vs "the reviewer changed something"; None when all or none changed
    auroc_interval: tuple[float, float] | None
    reviewed_f1: BoxF1  # reviewed from predictions, against the truth
    scratch_f1: BoxF1  # the same photos drawn from scratch by the same reviewer model
    seconds_by_action: dict[str, tuple[float, float]]  # action -> (reviewer s, scratch s), summed over photos
    # per class (item 4; added later, so a record made without them has none): class -> box F1 of the reviewed
    # boxes, and of the same photos drawn from scratch, over every photo of the set (a class a photo lacks adds 0s)
    reviewed_f1_by_class: dict[str, BoxF1] = field(default_factory=dict)
    scratch_f1_by_class: dict[str, BoxF1] = field(default_factory=dict)

    def sensitivity(self, factors: Sequence[float] = (0.5, 2.0)) -> dict[str, tuple[float, ...]]:
        """The reviewer/scratch ratio with one action's seconds scaled by each factor, the others as modelled
        (a relabel that also moved is priced under relabel)."""
        total_r = sum(r for r, _ in self.seconds_by_action.values())
        total_s = sum(s for _, s in self.seconds_by_action.values())
        return {
            action: tuple((total_r + (f - 1) * r) / (total_s + (f - 1) * s) for f in factors)
            for action, (r, s) in self.seconds_by_action.items()
        }

    @property
    def ratio(self) -> float | None:
        return self.reviewer_seconds / self.scratch_seconds if self.scratch_seconds else None


def fixed_set(ws: Workspace) -> list[str]:
    """The photos of the fixed evaluation set, in path order."""
    return sorted(p for p, split in ws.store.labels.splits().items() if split == EVAL_SPLIT)


def round_predictions(ws: Workspace, round_no: int, photos: Sequence[str]) -> dict[str, LabelVersion]:
    """Each photo's newest prediction made by round `round_no`."""
    out = {}
    for path in photos:
        made = [v for v in ws.store.labels.history(path) if v.source is Source.MODEL and v.round == round_no]
        if made:
            out[path] = made[-1]
    return out


def box_counts(boxes: Sequence[Box], truth: Sequence[Box], iou: float = MATCH_IOU) -> tuple[int, int, int]:
    """(tp, fp, fn) of one photo's boxes against its truth: same class, IoU >= `iou`, one-to-one."""
    matched = len(match_boxes(list(boxes), list(truth), iou))
    return matched, len(boxes) - matched, len(truth) - matched


def box_counts_by_class(
    boxes: Sequence[Box], truth: Sequence[Box], iou: float = MATCH_IOU
) -> dict[str, tuple[int, int, int]]:
    """`box_counts` split by class, from the same one-to-one matching (a match is of one class on both sides, so
    the classes' counts sum to the photo's): class -> (tp, fp, fn) for every class on either side."""
    pairs = match_boxes(list(boxes), list(truth), iou)
    matched_boxes, matched_truth = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    out: dict[str, list[int]] = {b.label: [0, 0, 0] for b in [*boxes, *truth]}
    for j in matched_truth:
        out[truth[j].label][0] += 1
    for i, box in enumerate(boxes):
        out[box.label][1] += i not in matched_boxes
    for j, box in enumerate(truth):
        out[box.label][2] += j not in matched_truth
    return {label: (tp, fp, fn) for label, (tp, fp, fn) in out.items()}


@dataclass(frozen=True)
class _PhotoScore:
    """One fixed-set photo under one round's predictions."""

    reviewer_seconds: float
    scratch_seconds: float
    changed: int  # boxes the reviewer changed (predicted and changed, or added)
    boxes: int  # every predicted box once, plus every box added
    uncertainty: float
    reviewed: dict[str, tuple[int, int, int]]  # class -> (tp, fp, fn) of the reviewed boxes against the truth
    blind: dict[str, tuple[int, int, int]]  # the same, drawn from scratch
    by_action: dict[str, tuple[float, float]]  # action -> (reviewer s, scratch s)


def score_round(
    ws: Workspace, round_no: int, *, truth_dir: Path, profile: ReviewerProfile, seed: int = 0
) -> FixedSetRound | None:
    """Round `round_no`'s predictions on the fixed set, reviewed and drawn by the SIMULATED `profile` (seeded per
    photo, so every round meets the same reviewer); None when the round predicted none of its photos."""
    predictions = round_predictions(ws, round_no, fixed_set(ws))
    rows = []
    for path, version in sorted(predictions.items()):
        record, truth = ws.store.labels.image(path), read_truth(truth_dir, path, ws.config.class_table)
        if record is None or truth is None:
            continue
        truth = [clip_box(b, record.width, record.height) for b in truth]
        contrast = photo_contrasts(ws.image_path(path), truth) if profile.uses_contrast and truth else None
        rows.append(_score_photo(path, version, truth, (record.width, record.height), profile, contrast, seed))
    return _figures(round_no, rows, seed) if rows else None


def _score_photo(
    path: str,
    version: LabelVersion,
    truth: list[Box],
    size: tuple[int, int],
    profile: ReviewerProfile,
    contrast: tuple[float, ...] | None,
    seed: int,
) -> _PhotoScore:
    """One photo (`size` = width, height) reviewed from the round's prediction, and drawn from scratch by the same
    reviewer model."""
    width, height = size
    predicted = [(f"p{i}", b) for i, b in enumerate(version.boxes)]
    rng = random.Random(f"{seed}/{path}")
    regions, _ = plan_review(
        predicted, truth, width=width, height=height, rng=rng, accept_iou=ACCEPT_IOU, profile=profile,
        contrast=contrast,
    )  # fmt: skip
    ops = diff_regions(predicted, regions)
    blind = draw_from_scratch(truth, profile, random.Random(f"{seed}/{path}/blind"), width=width, height=height,
                              contrast=contrast)  # fmt: skip
    final = [b for _, b in regions]
    return _PhotoScore(
        reviewer_seconds=review_seconds(ops, width, height),
        scratch_seconds=scratch_seconds(final, width, height),
        changed=sum(op.kind.counts_against_model for op in ops),
        boxes=len(ops),  # every predicted box once, plus every box added
        uncertainty=version.uncertainty or 0.0,
        reviewed=box_counts_by_class(final, truth),
        blind=box_counts_by_class(blind, truth),
        by_action=_seconds_by_action(ops, final, width, height),
    )


def _photo_counts(by_class: dict[str, tuple[int, int, int]]) -> tuple[int, int, int]:
    """A photo's (tp, fp, fn) from its per-class counts."""
    tp, fp, fn = (sum(c[k] for c in by_class.values()) for k in range(3))
    return tp, fp, fn


def _figures(round_no: int, rows: list[_PhotoScore], seed: int) -> FixedSetRound:
    """The round's figures from each photo's score."""
    flags = np.array([r.changed > 0 for r in rows])
    auroc, interval = _auroc(flags, np.array([r.uncertainty for r in rows], dtype=float), seed)
    changed, boxes = sum(r.changed for r in rows), sum(r.boxes for r in rows)
    return FixedSetRound(
        round_no=round_no,
        photos=len(rows),
        reviewer_seconds=float(np.mean([r.reviewer_seconds for r in rows])),
        scratch_seconds=float(np.mean([r.scratch_seconds for r in rows])),
        correction_rate=changed / boxes if boxes else None,
        changed_photos=int(flags.sum()),
        auroc=auroc,
        auroc_interval=interval,
        reviewed_f1=box_f1([_photo_counts(r.reviewed) for r in rows], seed=seed),
        scratch_f1=box_f1([_photo_counts(r.blind) for r in rows], seed=seed),
        seconds_by_action={
            a: (sum(r.by_action[a][0] for r in rows), sum(r.by_action[a][1] for r in rows)) for a in ACTIONS
        },
        reviewed_f1_by_class=box_f1_by_class([r.reviewed for r in rows], seed=seed),
        scratch_f1_by_class=box_f1_by_class([r.blind for r in rows], seed=seed),
    )


ACTIONS = ("look", *(kind.action for kind in EditKind))  # the effort model's priced actions


def _seconds_by_action(ops: Sequence[EditOp], final: Sequence[Box], width: int, height: int) -> dict:
    """action -> (reviewer s, scratch s) of one photo: the look on both sides, each edit under its kind
    (an added box is a draw), scratch's draw of every final box."""
    out = {a: [0.0, 0.0] for a in ACTIONS}
    out["look"] = [LOOK_S, LOOK_S]
    for op in ops:
        out[op.kind.action][0] += op_seconds(op, width, height)
    out[EditKind.ADDED.action][1] += scratch_seconds(final, width, height) - LOOK_S
    return {a: (r, s) for a, (r, s) in out.items()}


def _auroc(changed: np.ndarray, uncertainty: np.ndarray, seed: int) -> tuple[float | None, tuple[float, float] | None]:
    """AUROC of the uncertainty for `changed`, with a percentile bootstrap interval over photos."""
    from sklearn.metrics import roc_auc_score

    if changed.all() or not changed.any():
        return None, None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        idx = rng.integers(0, len(changed), len(changed))
        draws.append(roc_auc_score(changed[idx], uncertainty[idx]) if 0 < changed[idx].sum() < len(idx) else np.nan)
    return float(roc_auc_score(changed, uncertainty)), percentile_interval(np.array(draws), INTERVAL_LEVEL)
