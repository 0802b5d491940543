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
from dataclasses import dataclass
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
from training.metrics import BoxF1, box_f1, percentile_interval


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


def _counts(boxes: Sequence[Box], truth: Sequence[Box]) -> tuple[int, int, int]:
    matched = len(match_boxes(list(boxes), list(truth), MATCH_IOU))
    return matched, len(boxes) - matched, len(truth) - matched


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
        predicted = [(f"p{i}", b) for i, b in enumerate(version.boxes)]
        rng = random.Random(f"{seed}/{path}")
        regions, _ = plan_review(
            predicted, truth, width=record.width, height=record.height, rng=rng, accept_iou=ACCEPT_IOU,
            profile=profile, contrast=contrast,
        )  # fmt: skip
        ops = diff_regions(predicted, regions)
        blind = draw_from_scratch(truth, profile, random.Random(f"{seed}/{path}/blind"), width=record.width,
                                  height=record.height, contrast=contrast)  # fmt: skip
        final = [b for _, b in regions]
        by_action = _seconds_by_action(ops, final, record.width, record.height)
        rows.append(
            (
                review_seconds(ops, record.width, record.height),
                scratch_seconds(final, record.width, record.height),
                sum(op.kind.counts_against_model for op in ops),
                len(ops),  # every predicted box once, plus every box added
                version.uncertainty or 0.0,
                _counts(final, truth),
                _counts(blind, truth),
                by_action,
            )
        )
    return _figures(round_no, rows, seed) if rows else None


def _figures(round_no: int, rows: list[tuple], seed: int) -> FixedSetRound:
    """The round's figures from each photo's (reviewer s, scratch s, changed boxes, boxes, uncertainty, counts)."""
    columns = (list(col) for col in zip(*rows, strict=True))
    reviewer_s, scratch_s, changed, boxes, uncertainty, reviewed, blind, by_action = columns
    flags = np.array([c > 0 for c in changed])
    auroc, interval = _auroc(flags, np.array(uncertainty, dtype=float), seed)
    return FixedSetRound(
        round_no=round_no,
        photos=len(rows),
        reviewer_seconds=float(np.mean(reviewer_s)),
        scratch_seconds=float(np.mean(scratch_s)),
        correction_rate=sum(changed) / sum(boxes) if sum(boxes) else None,
        changed_photos=int(flags.sum()),
        auroc=auroc,
        auroc_interval=interval,
        reviewed_f1=box_f1(reviewed, seed=seed),
        scratch_f1=box_f1(blind, seed=seed),
        seconds_by_action={a: (sum(p[a][0] for p in by_action), sum(p[a][1] for p in by_action)) for a in ACTIONS},
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
