"""The review priority of a photo (how likely its pre-annotation needs a dermatologist's fix), and
how well that priority is measured to work: the AUROC of the score for "the reviewer changed something".

Four scores, chosen by `uncertainty` in annotator.toml ([predict]); all are in [0, 1], higher = review
first, and a photo with no kept box scores 1.0 (every photo in this data set shows at least one lesion).

`joint` (`joint_uncertainty`): 1 - the chance that the whole pre-annotation is right, reading each raw
score as a probability. The pre-annotation is right when every kept box is a lesion and no box the
thresholds dropped is one: 1 - prod(s, kept) x prod(1 - s, dropped), over the detector's raw boxes down to
the engine's floor. Unlike a maximum it counts: five middling boxes are less likely all right than one, and
a reviewer has more to check.

`calibrated-joint` (`calibrated_joint_uncertainty`, the default): `joint` with each raw score first replaced
by the chance that its box is right as drawn, i.e. that the reviewer would leave it (a same-class lesion at
IoU >= ACCEPT_IOU). The chance is a logistic fit on three things a box shows (BOX_FEATURES): logit(score),
its size relative to the photo (a small box is harder to draw within IoU 0.7) and its overlap with a
higher-scored box (a duplicate, or half of a class confusion); per class where the class has enough right
and wrong val boxes, else over all classes (`fit_score_calibration`). Each round fits it on its val split
beside the thresholds and records it in its info. A small-seed model's raw scores are not probabilities
(it is under-confident, and differently so per class); read raw, a 0.3 box that is nearly always right
weighs like one that is mostly wrong. A round with no calibration (no right or no wrong val box) scores as
`joint`.

`heuristic` (`photo_uncertainty`): with thresholds t_c, the maximum of
- least confidence: 1 - min score over kept boxes (a shaky box is often wrong);
- possible miss: max over dropped boxes with score >= t_c/2 of score/t_c (a lesion nearly found);
- class margin: for a kept box overlapping (IoU >= 0.5) a box of another class, 1 - (s_kept - s_other)
  (melasma vs Hori's, freckles vs lentigines).

`flip-consistency` (`flip_uncertainty`): agreement under test-time augmentation, after the
consistency-based scores of CALD (Yu et al., 2022) and PPAL (Yang et al., CVPR 2024). The detector
also sees the mirrored photo; each box kept in one view is matched to the same-class box of highest
IoU among all boxes of the other view; its agreement is IoU x the lower of the two scores (0 when no
box matches: a box the other view does not find is disagreement). Uncertainty = 1 - the mean
agreement. It costs a second forward pass per photo.

Measured on what matters, the photos reviewers handled in each round of five runs of the loop benchmark
(`benchmarks/loop.py`, 1,500 synthetic photos, 300 reviews a round, "changed" = the simulated reviewer
changed anything), by `python -m benchmarks.rescore_uncertainty WORKSPACE`: it predicts those photos again
with the round's own model and thresholds and scores them every way. The heuristic fell below the 0.75 goal
in ten rounds of fifteen, `joint` in four; `calibrated-joint` was ahead of `joint` in all fifteen and at or
above 0.79 in every one, 0.815 / 0.790 / 0.939 in the run it ordered itself. The figures, with paired
bootstrap intervals, are in docs/uncertainty.md. On a whole pool before any review
(`python -m benchmarks.uncertainty`) the four rank alike; flip consistency costs ~1.8x the inference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.boxes import iou, iou_matrix, orient_box
from annotator.config import UNCERTAINTY_SCORES
from annotator.types import Box, LabelVersion
from review_queue.constants import ACCEPT_IOU
from review_queue.edits import EditKind, EditOp
from review_queue.review_meta import ReviewMeta
from training.metrics import match_by_score

Threshold = Callable[[str], float]

JOINT = "joint"
CALIBRATED_JOINT = "calibrated-joint"
HEURISTIC = "heuristic"
FLIP_CONSISTENCY = "flip-consistency"
SCORE_NAMES = UNCERTAINTY_SCORES  # the config's names of the four, the default first


# ---- the scores ------------------------------------------------------------------------------


def joint_uncertainty(raw_boxes: Sequence[Box], threshold: Threshold, chances: Sequence[float] | None = None) -> float:
    """The `joint` score of one photo from its raw boxes (scores set, before thresholds): 1 - P(every kept
    box is right and no dropped box is), each box's `chances` read as the chance it is right (default: its raw
    score; `calibrated_joint_uncertainty` passes the round's calibrated ones)."""
    kept = [(b.score or 0.0) >= threshold(b.label) for b in raw_boxes]
    if not any(kept):
        return 1.0
    if chances is None:
        chances = [b.score or 0.0 for b in raw_boxes]
    all_right = 1.0
    for is_kept, chance in zip(kept, chances, strict=True):
        p = min(1.0, max(0.0, float(chance)))
        all_right *= p if is_kept else 1.0 - p
    return float(min(1.0, max(0.0, 1.0 - all_right)))


def photo_uncertainty(raw_boxes: Sequence[Box], threshold: Threshold) -> float:
    """The `heuristic` score of one photo from its raw boxes (scores set, before thresholds)."""
    kept = [b for b in raw_boxes if (b.score or 0.0) >= threshold(b.label)]
    if not kept:
        return 1.0
    least_confidence = 1.0 - min(b.score or 0.0 for b in kept)
    possible_miss = 0.0
    class_margin = 0.0
    for b in raw_boxes:
        t = threshold(b.label)
        s = b.score or 0.0
        if s < t and s >= t / 2:
            possible_miss = max(possible_miss, min(1.0, s / t))
        for k in kept:
            if k is not b and k.label != b.label and iou(k, b) >= 0.5:
                class_margin = max(class_margin, 1.0 - max(0.0, (k.score or 0.0) - s))
    return float(min(1.0, max(least_confidence, possible_miss, class_margin)))


def flip_uncertainty(raw_boxes: Sequence[Box], mirrored_boxes: Sequence[Box], threshold: Threshold) -> float:
    """The `flip-consistency` score of one photo.

    raw_boxes: the detector's boxes on the photo; mirrored_boxes: its boxes on the horizontally
    mirrored photo, mapped back onto the photo (`unmirror`). Both with scores, before thresholds.
    """
    kept = [b for b in raw_boxes if (b.score or 0.0) >= threshold(b.label)]
    if not kept:
        return 1.0
    kept_mirrored = [b for b in mirrored_boxes if (b.score or 0.0) >= threshold(b.label)]
    agreements = [_agreement(b, mirrored_boxes) for b in kept] + [_agreement(b, raw_boxes) for b in kept_mirrored]
    return float(min(1.0, max(0.0, 1.0 - sum(agreements) / len(agreements))))


def _agreement(box: Box, other_view: Sequence[Box]) -> float:
    """IoU x the lower score with the best same-class counterpart in the other view; 0 without one."""
    best = 0.0
    for other in other_view:
        if other.label == box.label:
            best = max(best, iou(box, other) * min(box.score or 0.0, other.score or 0.0))
    return best


def score_photo(
    name: str,
    raw_boxes: Sequence[Box],
    threshold: Threshold,
    mirrored_boxes: Sequence[Box] | None = None,
    *,
    calibration: ScoreCalibration | None = None,
    frame: tuple[float, float] | None = None,
) -> float:
    """The photo's uncertainty by the score `name` ([predict] uncertainty); flip consistency needs
    `mirrored_boxes` (the boxes found on the mirrored photo, mapped back onto it); calibrated-joint reads
    the boxes through the round's `calibration` (raw scores, as `joint`, when the round has none), with the
    photo's (width, height) `frame` in the boxes' frame."""
    if name == FLIP_CONSISTENCY:
        if mirrored_boxes is None:
            raise ValueError("flip consistency needs the boxes found on the mirrored photo")
        return flip_uncertainty(raw_boxes, mirrored_boxes, threshold)
    if name == HEURISTIC:
        return photo_uncertainty(raw_boxes, threshold)
    if name == JOINT:
        return joint_uncertainty(raw_boxes, threshold)
    if name == CALIBRATED_JOINT:
        return calibrated_joint_uncertainty(raw_boxes, threshold, calibration, frame)
    raise ValueError(f"unknown uncertainty score {name!r}; choose one of {', '.join(SCORE_NAMES)}")


def unmirror(boxes: Iterable[Box], width: int, height: int) -> list[Box]:
    """Boxes found on a horizontally mirrored (width, height) array, mapped back onto the array itself."""
    return [orient_box(b, width, height, 2) for b in boxes]  # EXIF orientation 2 is the horizontal mirror


def keep_confident(raw_boxes: Sequence[Box], threshold: Threshold) -> tuple[Box, ...]:
    return tuple(b for b in raw_boxes if (b.score or 0.0) >= threshold(b.label))


# ---- how well the score works ------------------------------------------------------------------


def reviewer_changed(operations: Iterable[EditOp]) -> bool:
    """Whether a review changed the prediction: any edit but `accepted` (a box added is a change).

    operations: a review's edit diff (`ReviewMeta.operations`)."""
    return any(op.kind is not EditKind.ACCEPTED for op in operations)


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for `positives`: the chance that a random positive scores
    above a random negative, ties counting one half. None when only one class is present."""
    if len(scores) != len(positives):
        raise ValueError(f"{len(scores)} scores for {len(positives)} labels")
    if len(set(bool(p) for p in positives)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([bool(p) for p in positives], list(scores)))


def uncertainty_auroc(reviewed: Iterable[LabelVersion], uncertainty_of: Mapping[int, float | None]) -> float | None:
    """AUROC of the photo uncertainty for "the reviewer changed something", over reviewed photos.

    reviewed: reviewed label versions (one round's); uncertainty_of: label-version id -> uncertainty of
    the `model` versions they were reviewed from (`ReviewMeta.prediction_version_id`). The photos counted
    are those `review_queue.corrections.correction_summary` counts (not excluded, edit diff recorded)
    whose prediction's uncertainty is known. None when they are all changed or all unchanged.
    """
    scores: list[float] = []
    changed: list[bool] = []
    for version in reviewed:
        meta = ReviewMeta.from_dict(version.meta)
        if version.excluded or meta.operations is None or meta.prediction_version_id is None:
            continue
        score = uncertainty_of.get(meta.prediction_version_id)
        if score is None:
            continue
        scores.append(float(score))
        changed.append(reviewer_changed(meta.operations))
    return auroc(scores, changed)


# ---- calibration: raw scores read as the chance a box is right as drawn ------------------------------

# What the calibration reads of a box, besides its class. A small box is harder to draw within IoU 0.7 of
# the lesion; a box overlapping a higher-scored one is often a duplicate or the other half of a class
# confusion (melasma vs Hori's), which the reviewer deletes.
BOX_FEATURES = ("logit_score", "log_relative_size", "overlap_with_higher")


def box_features(boxes: Sequence[Box], width: float, height: float) -> np.ndarray:
    """(len(boxes), 3) BOX_FEATURES of every raw box of one photo (down to the engine's floor); width, height:
    the photo's, in the boxes' frame. One IoU matrix per photo: a weak model's photo can hold 300 raw boxes. Pure."""
    if not boxes:
        return np.zeros((0, len(BOX_FEATURES)))
    scores = np.array([b.score or 0.0 for b in boxes], dtype=float)  # (N,)
    logits = np.log(np.clip(scores, 1e-4, 1 - 1e-4) / (1 - np.clip(scores, 1e-4, 1 - 1e-4)))
    areas = np.array([max(1e-9, (b.x2 - b.x1) * (b.y2 - b.y1)) for b in boxes], dtype=float)
    relative_size = np.sqrt(areas / max(1e-9, float(width) * float(height)))
    higher = scores[None, :] > scores[:, None]  # (N, N): box j scores above box i
    overlap = np.where(higher, iou_matrix(list(boxes), list(boxes)), 0.0).max(axis=1)
    return np.stack([logits, np.log(np.maximum(1e-6, relative_size)), overlap], axis=1)


@dataclass(frozen=True)
class ScoreCalibration:
    """Per class, a logistic map from a raw box (BOX_FEATURES) to the chance that the box is right as drawn:
    the reviewer would leave it (a same-class truth box at IoU >= ACCEPT_IOU, matched greedily by score).
    Fitted on the round's val split (`fit_score_calibration`); a class with too few right or wrong val boxes
    uses the map fitted on every class together.

    per_class: class -> (one weight per feature..., intercept); pooled: the same for every other class;
    features: the names of the features the weights are for (a prefix of BOX_FEATURES)."""

    pooled: tuple[float, ...]
    per_class: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    boxes: int = 0  # val boxes the maps were fitted on
    features: tuple[str, ...] = ("logit_score",)

    def probabilities(self, boxes: Sequence[Box], width: float, height: float) -> np.ndarray:
        """The chance that each raw box of one photo is right as drawn; width, height as for `box_features`."""
        if not boxes:
            return np.zeros(0)
        features = box_features(boxes, width, height)[:, : len(self.features)]  # (N, k)
        weights = np.array([self.per_class.get(b.label, self.pooled) for b in boxes], dtype=float)  # (N, k+1)
        z = (features * weights[:, :-1]).sum(axis=1) + weights[:, -1]
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "pooled": list(self.pooled),
            "per_class": {c: list(v) for c, v in self.per_class.items()},
            "boxes": self.boxes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibration:
        features = tuple(str(f) for f in data.get("features") or ("logit_score",))
        if features != BOX_FEATURES[: len(features)]:
            raise ValueError(f"unknown calibration features {features}; this version reads {BOX_FEATURES}")
        return cls(
            pooled=tuple(float(v) for v in data["pooled"]),
            per_class={str(c): tuple(float(x) for x in v) for c, v in dict(data.get("per_class") or {}).items()},
            boxes=int(data.get("boxes") or 0),
            features=features,
        )


CALIBRATION_MIN_EACH = 10  # right and wrong val boxes a class needs for its own map


def fit_score_calibration(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    frames: Sequence[tuple[float, float]],
    *,
    iou_threshold: float = ACCEPT_IOU,
    min_each: int = CALIBRATION_MIN_EACH,
) -> ScoreCalibration | None:
    """The calibration of raw boxes on paired val photos: truth boxes, raw predicted boxes down to the engine's
    floor, and each photo's (width, height) in their frame. None when the val boxes hold no right or no wrong
    box: nothing to fit. Pure."""
    from sklearn.linear_model import LogisticRegression

    if not len(truth) == len(pred) == len(frames):
        raise ValueError(f"{len(truth)} truth photos, {len(pred)} prediction photos, {len(frames)} frames")
    xs: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    ys: dict[str, list[bool]] = {c: [] for c in classes}
    for t_boxes, p_boxes, (width, height) in zip(truth, pred, frames, strict=True):
        features = box_features(p_boxes, width, height)  # (N, 3)
        for c in classes:
            index = [i for i, b in enumerate(p_boxes) if b.label == c]
            p_c = [p_boxes[i] for i in index]
            matched = {i for i, _ in match_by_score(p_c, [b for b in t_boxes if b.label == c], iou_threshold)}
            xs[c].extend(features[i] for i in index)
            ys[c].extend(i in matched for i in range(len(p_c)))

    def fit(x: list[np.ndarray], y: list[bool]) -> tuple[float, ...]:
        model = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(x), np.array(y, dtype=int))
        return (*(float(w) for w in model.coef_[0]), float(model.intercept_[0]))

    all_x = [v for c in classes for v in xs[c]]
    all_y = [v for c in classes for v in ys[c]]
    if sum(all_y) == 0 or sum(all_y) == len(all_y):
        return None
    per_class = {c: fit(xs[c], ys[c]) for c in classes if min(sum(ys[c]), len(ys[c]) - sum(ys[c])) >= max(1, min_each)}
    return ScoreCalibration(pooled=fit(all_x, all_y), per_class=per_class, boxes=len(all_x), features=BOX_FEATURES)


def calibrated_joint_uncertainty(
    raw_boxes: Sequence[Box],
    threshold: Threshold,
    calibration: ScoreCalibration | None,
    frame: tuple[float, float] | None = None,
) -> float:
    """`joint` with each raw box's score first replaced by the round's calibrated chance that the box is
    right as drawn (raw scores without a calibration). frame: the photo's (width, height) in the boxes' frame."""
    if calibration is None:
        return joint_uncertainty(raw_boxes, threshold)
    if frame is None:
        raise ValueError("a calibrated score needs the photo's frame (width, height) of the boxes")
    return joint_uncertainty(raw_boxes, threshold, calibration.probabilities(raw_boxes, *frame).tolist())
