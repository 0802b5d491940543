"""The review priority of a photo (how likely its pre-annotation needs a dermatologist's fix), and
how well that priority is measured to work: the AUROC of the score for "the reviewer changed something".

Two scores, chosen by `uncertainty` in annotator.toml ([predict]); both are in [0, 1], higher = review
first, and a photo with no kept box scores 1.0 (every photo in this data set shows at least one lesion).

`heuristic` (`photo_uncertainty`, the default: it measured better, below): pure function of the
detector's raw boxes (before thresholds). With thresholds t_c, the maximum of
- least confidence: 1 - min score over kept boxes (a shaky box is often wrong);
- possible miss: max over dropped boxes with score >= t_c/2 of score/t_c (a lesion nearly found);
- class margin: for a kept box overlapping (IoU >= 0.5) a box of another class, 1 - (s_kept - s_other)
  (melasma vs Hori's, freckles vs lentigines).

`flip-consistency` (`flip_uncertainty`): agreement under test-time augmentation, after the
consistency-based scores of CALD (Yu et al., 2022) and PPAL (Yang et al., CVPR 2024). The detector
also sees the mirrored photo; each box kept in one view is matched to the same-class box of highest
IoU among all boxes of the other view; its agreement is IoU x the lower of the two scores (0 when no
box matches: a box the other view does not find is disagreement). Uncertainty = 1 - the mean
agreement. It costs a second forward pass per photo, and ranked worse than the heuristic (below).

Measured by `python -m benchmarks.uncertainty` (synthetic photos, a round-0 yolo11n trained on the CPU, the
round's val thresholds; every pool photo labelled "changed" by the simulated reviewer's rule; 95% paired
bootstrap intervals). The heuristic ranked better in both runs, and flip consistency costs ~1.8-2x the
inference, so the heuristic stays the default:
- default run (300 photos, 150 hand-labelled, 25 epochs; test mAP50 0.57; 150 pool photos, 88% changed):
  heuristic 0.884 [0.783, 0.965], flip-consistency 0.785 [0.642, 0.906], difference -0.102 [-0.190, -0.028];
- longer run (600 photos, 240 labelled, 50 epochs; test mAP50 0.93; 360 pool photos, 48% changed):
  heuristic 0.888 [0.852, 0.920], flip-consistency 0.803 [0.757, 0.849], difference -0.085 [-0.127, -0.044].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from annotator.boxes import iou, orient_box
from annotator.types import Box, LabelVersion
from review_queue.corrections import EditKind

Threshold = Callable[[str], float]

HEURISTIC = "heuristic"
FLIP_CONSISTENCY = "flip-consistency"


# ---- the scores ------------------------------------------------------------------------------


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


def unmirror(boxes: Iterable[Box], width: int, height: int) -> list[Box]:
    """Boxes found on a horizontally mirrored (width, height) array, mapped back onto the array itself."""
    return [orient_box(b, width, height, 2) for b in boxes]  # EXIF orientation 2 is the horizontal mirror


def keep_confident(raw_boxes: Sequence[Box], threshold: Threshold) -> tuple[Box, ...]:
    return tuple(b for b in raw_boxes if (b.score or 0.0) >= threshold(b.label))


# ---- how well the score works ------------------------------------------------------------------


def reviewer_changed(operations: Iterable[Mapping[str, object]]) -> bool:
    """Whether a review changed the prediction: any edit but `accepted` (a box added is a change).

    operations: a review's stored edit diff (`meta["operations"]`, `EditOp.to_dict()` form)."""
    return any(EditKind(str(op["op"])) is not EditKind.ACCEPTED for op in operations)


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
    the `model` versions they were reviewed from (`meta["prediction_version_id"]`). The photos counted
    are those `review_queue.corrections.correction_summary` counts (not excluded, edit diff recorded)
    whose prediction's uncertainty is known. None when they are all changed or all unchanged.
    """
    scores: list[float] = []
    changed: list[bool] = []
    for version in reviewed:
        operations = version.meta.get("operations")
        parent = version.meta.get("prediction_version_id")
        if version.excluded or operations is None or parent is None:
            continue
        score = uncertainty_of.get(int(parent))
        if score is None:
            continue
        scores.append(float(score))
        changed.append(reviewer_changed(operations))
    return auroc(scores, changed)
