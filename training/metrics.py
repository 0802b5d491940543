"""Clinical and detection metrics for the benchmark, as pure functions over boxes and class sets.

Image level (what the source study reports): per class precision, sensitivity, specificity
and the study's accuracy rule; box level: a confusion matrix with a background row/column;
detection quality: mAP from pycocotools COCOeval only (one run per photo set, `coco_evaluation`); percentile
bootstrap intervals (the one `percentile_interval`), mAP50's over resampled photos, and McNemar's test.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from annotator.boxes import iou_matrix
from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.types import Box
from training.constants import BOOTSTRAP_RESAMPLES, INTERVAL_LEVEL, MATCH_IOU

BACKGROUND = "background"
NONE_PREDICTED = "none"  # image-level confusion: nothing above threshold on the photo
SEVERAL_PREDICTED = "several"  # image-level confusion: more than one class on a single-lesion photo

Thresholds = Mapping[str, float] | float


# ---- class sets ------------------------------------------------------------------------------


def _threshold(thresholds: Thresholds, label: str, default: float = 0.0) -> float:
    if isinstance(thresholds, Mapping):
        return float(thresholds.get(label, default))
    return float(thresholds)


def confident_boxes(boxes: Iterable[Box], thresholds: Thresholds = 0.0) -> list[Box]:
    """The boxes that count: human boxes (score None) always, predictions scoring >= their class threshold."""
    return [b for b in boxes if b.score is None or b.score >= _threshold(thresholds, b.label)]


def present_classes(boxes: Iterable[Box], thresholds: Thresholds = 0.0) -> frozenset[str]:
    """The classes present on a photo: any (confident) box of the class makes it present."""
    return frozenset(b.label for b in confident_boxes(boxes, thresholds))


# ---- image level -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScores:
    """Image-level scores of one class. A ratio whose denominator is 0 is None (undefined):
    sensitivity when no test photo has the class, precision when nothing predicts it,
    specificity when every photo has it."""

    label: str
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    sensitivity: float | None
    specificity: float | None
    f1: float | None

    @property
    def support(self) -> int:
        """Test photos that truly have the class."""
        return self.tp + self.fn


@dataclass(frozen=True)
class ImageLevelResult:
    """Per-class image-level scores, their macro averages, and the study's accuracy.

    macro[...]: mean over the classes present in the evaluated photos (support > 0) whose
    value is defined; None when no class qualifies. Absent classes are reported per class
    (sensitivity None) but never enter an average.
    """

    classes: tuple[str, ...]
    per_class: dict[str, ClassScores]
    macro: dict[str, float | None]
    accuracy: float | None
    n_photos: int
    n_correct: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_photos": self.n_photos,
            "n_correct": self.n_correct,
            "accuracy": self.accuracy,
            "macro": dict(self.macro),
            "per_class": {
                k: {
                    "tp": v.tp,
                    "fp": v.fp,
                    "fn": v.fn,
                    "tn": v.tn,
                    "support": v.support,
                    "precision": v.precision,
                    "sensitivity": v.sensitivity,
                    "specificity": v.specificity,
                    "f1": v.f1,
                }
                for k, v in self.per_class.items()
            },
        }


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def presence_matrix(class_sets: Sequence[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """(N photos, K classes) bool: class k is present on photo n. Labels outside `classes` are ignored."""
    index = {c: k for k, c in enumerate(classes)}
    out = np.zeros((len(class_sets), len(classes)), dtype=bool)
    for n, labels in enumerate(class_sets):
        for label in labels:
            if label in index:
                out[n, index[label]] = True
    return out


def image_counts(
    true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]], classes: Sequence[str]
) -> np.ndarray:
    """(K, 4) int [TP, FP, FN, TN] per class, one observation per photo and class."""
    if len(true_sets) != len(pred_sets):
        raise ValueError(f"{len(true_sets)} true class sets but {len(pred_sets)} predicted ones")
    return _counts(presence_matrix(true_sets, classes), presence_matrix(pred_sets, classes))


def _counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    # truth, pred: (..., N, K) bool -> (..., K, 4)
    tp = (truth & pred).sum(-2)
    fp = (~truth & pred).sum(-2)
    fn = (truth & ~pred).sum(-2)
    tn = (~truth & ~pred).sum(-2)
    return np.stack([tp, fp, fn, tn], axis=-1)


def scores_from_counts(label: str, tp: int, fp: int, fn: int, tn: int) -> ClassScores:
    """Precision TP/(TP+FP), sensitivity TP/(TP+FN), specificity TN/(TN+FP), F1 2TP/(2TP+FP+FN).

    The study's methods section prints specificity as TN/(FP+FN); that is a typo (it is not a
    proportion and exceeds 1 easily). We use the standard TN/(TN+FP).
    F1 is None when sensitivity or precision is undefined.
    """
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn) if precision is not None and sensitivity is not None else None
    return ClassScores(label, int(tp), int(fp), int(fn), int(tn), precision, sensitivity, specificity, f1)


def photo_correct(true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]]) -> np.ndarray:
    """(N,) bool: the study's rule, a photo is right only when the predicted class set equals
    the true class set (every lesion type on it found, none added)."""
    if len(true_sets) != len(pred_sets):
        raise ValueError(f"{len(true_sets)} true class sets but {len(pred_sets)} predicted ones")
    return np.array([frozenset(t) == frozenset(p) for t, p in zip(true_sets, pred_sets, strict=True)], dtype=bool)


def image_accuracy(true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]]) -> float | None:
    """Fraction of photos right under `photo_correct`; None for no photos."""
    correct = photo_correct(true_sets, pred_sets)
    return float(correct.mean()) if correct.size else None


def _mean_defined(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(defined)) if defined else None


def image_level_scores(
    true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]], classes: Sequence[str]
) -> ImageLevelResult:
    """Per-class scores, macro averages over classes present in these photos, and accuracy."""
    true_sets = [frozenset(t) for t in true_sets]
    pred_sets = [frozenset(p) for p in pred_sets]
    counts = image_counts(true_sets, pred_sets, classes)
    per_class = {c: scores_from_counts(c, *(int(v) for v in counts[k])) for k, c in enumerate(classes)}
    present = [s for s in per_class.values() if s.support > 0]
    macro = {
        m: _mean_defined(getattr(s, m) for s in present) for m in ("precision", "sensitivity", "specificity", "f1")
    }
    correct = photo_correct(true_sets, pred_sets)
    return ImageLevelResult(
        tuple(classes),
        per_class,
        macro,
        float(correct.mean()) if correct.size else None,
        int(correct.size),
        int(correct.sum()),
    )


# ---- confusion matrices ----------------------------------------------------------------------


def _rank_score(box: Box) -> float:
    """A human box (no score) ranks as certain."""
    return 1.0 if box.score is None else box.score


def match_by_score(
    pred: Sequence[Box], truth: Sequence[Box], iou_threshold: float = MATCH_IOU
) -> list[tuple[int, int]]:
    """Class-agnostic greedy matching: predictions in descending score order each take the
    still-unmatched truth box of highest IoU, if that IoU >= iou_threshold. [(pred_i, truth_j)]."""
    ious = iou_matrix(list(pred), list(truth))  # (P, T)
    order = sorted(range(len(pred)), key=lambda i: -_rank_score(pred[i]))
    taken = np.zeros(len(truth), dtype=bool)
    pairs = []
    for i in order:
        if not len(truth):
            break
        candidates = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            pairs.append((i, j))
    return pairs


def box_confusion_matrix(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    thresholds: Thresholds = 0.0,
    iou_threshold: float = MATCH_IOU,
) -> np.ndarray:
    """(K+1, K+1) int, rows = true class, columns = predicted class, index K = background.

    Per photo, predictions under their class threshold are dropped, the rest are matched to
    truth boxes ignoring class (`match_by_score`). A matched pair counts at [true, predicted]
    (off-diagonal: right place, wrong class); an unmatched truth box at [true, background]
    (missed); an unmatched prediction at [background, predicted] (false alarm).
    Labels outside `classes` are ignored. [background, background] stays 0.
    """
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truth photos but {len(pred)} prediction photos")
    index = {c: k for k, c in enumerate(classes)}
    bg = len(classes)
    cm = np.zeros((bg + 1, bg + 1), dtype=int)
    for t_boxes, p_boxes in zip(truth, pred, strict=True):
        t_boxes = [b for b in t_boxes if b.label in index]
        p_boxes = [b for b in confident_boxes(p_boxes, thresholds) if b.label in index]
        pairs = match_by_score(p_boxes, t_boxes, iou_threshold)
        for i, j in pairs:
            cm[index[t_boxes[j].label], index[p_boxes[i].label]] += 1
        matched_p, matched_t = {i for i, _ in pairs}, {j for _, j in pairs}
        for j, b in enumerate(t_boxes):
            if j not in matched_t:
                cm[index[b.label], bg] += 1
        for i, b in enumerate(p_boxes):
            if i not in matched_p:
                cm[bg, index[b.label]] += 1
    return cm


def image_confusion_matrix(
    true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]], classes: Sequence[str]
) -> np.ndarray:
    """(K, K+2) int over single-lesion photos (exactly one true class; others are skipped).

    Rows: the true class. Columns: the predicted class when exactly one was predicted, then
    `none` (nothing predicted) and `several` (more than one class predicted: wrong under the
    accuracy rule even if the true class is among them). Same sets as `image_level_scores`.
    """
    index = {c: k for k, c in enumerate(classes)}
    k_none, k_several = len(classes), len(classes) + 1
    cm = np.zeros((len(classes), len(classes) + 2), dtype=int)
    for t, p in zip(true_sets, pred_sets, strict=True):
        t = frozenset(x for x in t if x in index)
        p = frozenset(x for x in p if x in index)
        if len(t) != 1:
            continue
        row = index[next(iter(t))]
        col = k_none if not p else index[next(iter(p))] if len(p) == 1 else k_several
        cm[row, col] += 1
    return cm


# ---- detection quality: COCO / pycocotools ---------------------------------------------------


@dataclass(frozen=True)
class DetectionQuality:
    """COCOeval results (area all, maxDets 100).

    map50, map50_95: COCOeval's stats[1] and stats[0] (means over the classes with ground truth;
    None when no class has any). per_class[label] = {"ap50", "ap50_95"}, None values for a
    class absent from the ground truth. pr_curves[label] = (recall thresholds (101,),
    precision at IoU 0.5 (101,)) from COCOeval's precision array, for classes with ground truth.
    """

    map50: float | None
    map50_95: float | None
    per_class: dict[str, dict[str, float | None]]
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"map50": self.map50, "map50_95": self.map50_95, "per_class": self.per_class}


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def _cocoeval(ground_truth: dict[str, Any], predictions: list[dict[str, Any]]) -> Any:
    """pycocotools' COCOeval (bbox, default parameters), evaluated, accumulated and summarised."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(ground_truth)
        coco_gt.createIndex()
        if predictions:
            coco_dt = coco_gt.loadRes(copy.deepcopy(predictions))
        else:  # loadRes refuses an empty list; an empty result set is still a valid evaluation (AP 0)
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": copy.deepcopy(ground_truth["images"]),
                "annotations": [],
                "categories": copy.deepcopy(ground_truth["categories"]),
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _quality(evaluator: Any, ground_truth: dict[str, Any]) -> DetectionQuality:
    """mAP50 and mAP50-95, overall and per class, and the PR curves, from an accumulated COCOeval."""
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    has_gt = bool(ground_truth["annotations"])
    stats = evaluator.stats
    precision = evaluator.eval["precision"]  # (T iou thresholds, R recall thresholds, K, A areas, M maxDets)
    rec_thrs = np.asarray(evaluator.params.recThrs)
    per_class: dict[str, dict[str, float | None]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]  # all areas, maxDets 100
        per_class[names[cat_id]] = {"ap50": _mean_valid(p[0]), "ap50_95": _mean_valid(p)}
        if (p[0] > -1).any():
            curves[names[cat_id]] = (rec_thrs.copy(), np.clip(p[0], 0, None))
    return DetectionQuality(
        float(stats[1]) if has_gt and stats[1] > -1 else None,
        float(stats[0]) if has_gt and stats[0] > -1 else None,
        per_class,
        curves,
    )


def coco_evaluate(ground_truth: dict[str, Any], predictions: list[dict[str, Any]]) -> DetectionQuality:
    """mAP50 and mAP50-95, overall and per class, computed by pycocotools' COCOeval alone."""
    return _quality(_cocoeval(ground_truth, predictions), ground_truth)


# ---- mAP50 over resampled photos ----------------------------------------------------------------

_REC_THRS = np.linspace(0.0, 1.00, 101)  # COCOeval's recall thresholds
_MAX_DETS = 100  # COCOeval's maxDets for the mAP50 statistic


@dataclass(frozen=True)
class ClassMatches:
    """pycocotools' matches of one class at IoU 0.5 (area all), all photos: detections in COCOeval's order
    (photo by photo, each photo's best `_MAX_DETS` by score), then sorted by score as its `accumulate` sorts them."""

    photo: np.ndarray  # (D,) int: the photo each detection is on
    tp: np.ndarray  # (D,) bool: matched to a truth box
    truth_per_photo: np.ndarray  # (N,) int: truth boxes of the class on each photo


@dataclass(frozen=True)
class CocoEvaluation:
    """One COCOeval run of a photo set: its detection quality, and per class the per-photo matches an mAP50
    resample is recomputed from (`resampled_map50`)."""

    quality: DetectionQuality
    matches: tuple[ClassMatches, ...]


def _class_matches(evaluator: Any, ground_truth: dict[str, Any]) -> tuple[ClassMatches, ...]:
    """Per class, COCOeval's own per-photo matching at IoU 0.5, area all (image and category ids are positions + 1,
    as `annotator.formats.coco` writes them)."""
    params = evaluator.params
    n_photos, n_areas = len(ground_truth["images"]), len(params.areaRng)
    at_50 = int(np.flatnonzero(np.isclose(params.iouThrs, MATCH_IOU))[0])
    truth_counts = np.zeros((len(ground_truth["categories"]), n_photos), dtype=int)
    for ann in ground_truth["annotations"]:
        truth_counts[ann["category_id"] - 1, ann["image_id"] - 1] += 1
    out = []
    for k, cat_id in enumerate(params.catIds):
        photo: list[int] = []
        score: list[float] = []
        tp: list[bool] = []
        for i, img_id in enumerate(params.imgIds):
            e = evaluator.evalImgs[(k * n_areas + 0) * len(params.imgIds) + i]  # evalImgs: class, area, photo
            if e is None:
                continue
            scores = np.asarray(e["dtScores"][:_MAX_DETS], dtype=float)
            photo.extend([img_id - 1] * len(scores))
            score.extend(scores.tolist())
            tp.extend((np.asarray(e["dtMatches"][at_50, :_MAX_DETS]) > 0).tolist())
        order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
        out.append(
            ClassMatches(
                np.asarray(photo, dtype=int)[order], np.asarray(tp, dtype=bool)[order], truth_counts[cat_id - 1]
            )
        )
    return tuple(out)


def coco_evaluation(ground_truth: dict[str, Any], predictions: list[dict[str, Any]]) -> CocoEvaluation:
    """`coco_evaluate`'s quality and the per-photo matches behind mAP50, from one COCOeval run."""
    evaluator = _cocoeval(ground_truth, predictions)
    return CocoEvaluation(_quality(evaluator, ground_truth), _class_matches(evaluator, ground_truth))


def resampled_map50(matches: Sequence[ClassMatches], weights: np.ndarray) -> np.ndarray:
    """mAP50 for each row of photo weights (B, N) (how often each photo is drawn): COCOeval's
    accumulate (101-point interpolated AP, mean over classes with truth) on the resampled photos.
    (B,) float, NaN where no drawn photo has a truth box."""
    b = weights.shape[0]
    ap = np.full((b, len(matches)), np.nan)
    for k, m in enumerate(matches):
        npig = weights @ m.truth_per_photo  # (B,) truth boxes drawn
        has_truth = npig > 0
        if not m.tp.size:
            ap[has_truth, k] = 0.0
            continue
        w = weights[:, m.photo].astype(float)  # (B, D)
        tp_sum = np.cumsum(w * m.tp, axis=1)
        fp_sum = np.cumsum(w * ~m.tp, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp_sum / npig[:, None]
        precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # best precision at or after
        d = m.tp.size
        for row in np.flatnonzero(has_truth):
            at = np.searchsorted(recall[row], _REC_THRS, side="left")
            q = np.where(at < d, envelope[row, np.minimum(at, d - 1)], 0.0)
            ap[row, k] = q.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row (no truth drawn) is NaN
        return np.nanmean(ap, axis=1)


def map50_bootstrap(
    matches: Sequence[ClassMatches],
    n_photos: int,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of mAP50 over photos: each resample draws `n_photos` photos with
    replacement (numpy generator `seed`) and recomputes mAP50 from the matches, a photo drawn twice counting
    twice; resamples that draw no truth box are left out. None when none is left."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_photos, size=(n_resamples, n_photos))  # (B, N) photo indices
    samples = []
    for start in range(0, n_resamples, 200):  # bounded memory: (200, D) per class at a time
        block = draws[start : start + 200]
        weights = np.zeros((block.shape[0], n_photos), dtype=np.int32)
        np.add.at(weights, (np.repeat(np.arange(block.shape[0]), n_photos), block.ravel()), 1)
        samples.append(resampled_map50(matches, weights))
    return percentile_interval(np.concatenate(samples) if samples else np.array([]), level)


# ---- uncertainty and comparison ------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals (lo, hi); None where the statistic is undefined on the data."""

    level: float
    n_resamples: int
    seed: int
    accuracy: tuple[float, float] | None
    sensitivity: dict[str, tuple[float, float] | None]
    specificity: dict[str, tuple[float, float] | None]
    macro_sensitivity: tuple[float, float] | None
    macro_specificity: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "accuracy": self.accuracy,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "macro_sensitivity": self.macro_sensitivity,
            "macro_specificity": self.macro_specificity,
        }


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float] | None:
    """The percentile bootstrap interval of `level` (0.95: the 2.5th and 97.5th percentiles) of a statistic's
    resampled values; NaN values (resamples where it is undefined) are left out; None when none is left."""
    samples = samples[~np.isnan(samples)]
    if not samples.size:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def bootstrap_intervals(
    true_sets: Sequence[Iterable[str]],
    pred_sets: Sequence[Iterable[str]],
    classes: Sequence[str],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> BootstrapIntervals:
    """Percentile bootstrap over photos (resampled with replacement, numpy generator `seed`).

    Resamples where a ratio is undefined (e.g. no photo of the class drawn) are left out of that
    ratio's interval. Macro averages use the classes present in the full photo set, as the
    point estimate does.
    """
    truth = presence_matrix(true_sets, classes)  # (N, K)
    pred = presence_matrix(pred_sets, classes)
    correct = photo_correct(true_sets, pred_sets)  # (N,)
    n = len(correct)
    empty = {c: None for c in classes}
    if n == 0:
        return BootstrapIntervals(level, n_resamples, seed, None, dict(empty), dict(empty), None, None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))  # (B, N)
    counts = _counts(truth[idx], pred[idx]).astype(float)  # (B, K, 4)
    tp, fp, fn, tn = (counts[..., i] for i in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)  # (B, K)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    present = truth.any(axis=0)  # (K,)
    with warnings.catch_warnings():  # nanmean of an all-NaN row (no present class drawn) warns; it is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_sens = np.nanmean(sens[:, present], axis=1) if present.any() else np.full(n_resamples, np.nan)
        macro_spec = np.nanmean(spec[:, present], axis=1) if present.any() else np.full(n_resamples, np.nan)
    return BootstrapIntervals(
        level,
        n_resamples,
        seed,
        percentile_interval(correct[idx].mean(axis=1), level),
        {c: percentile_interval(sens[:, k], level) for k, c in enumerate(classes)},
        {c: percentile_interval(spec[:, k], level) for k, c in enumerate(classes)},
        percentile_interval(macro_sens, level),
        percentile_interval(macro_spec, level),
    )


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on paired per-photo correctness.

    only_a: photos rater A got right and B wrong; only_b: the reverse; p_value: two-sided
    exact binomial test of only_a against Binomial(only_a + only_b, 0.5) (1.0 with no discordant pair).
    """

    n_photos: int
    only_a: int
    only_b: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"n_photos": self.n_photos, "only_a": self.only_a, "only_b": self.only_b, "p_value": self.p_value}


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """Compare two raters' per-photo correctness on the same photos (same order)."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same photos: {a.size} vs {b.size} outcomes")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemarResult(int(a.size), only_a, only_b, min(1.0, p))


# ---- the accumulating evaluator ------------------------------------------------------------


@dataclass(frozen=True)
class ClinicalResult:
    """Everything the report prints for one rater (detector or human reader) on a set of photos.

    box_confusion and detection need boxes: None for a human reader, who names classes only.
    """

    photos: tuple[str, ...]
    image_level: ImageLevelResult
    correct: np.ndarray  # (N,) bool, per photo in `photos` order
    image_confusion: np.ndarray  # (K, K+2), see image_confusion_matrix
    intervals: BootstrapIntervals | None
    box_confusion: np.ndarray | None = None  # (K+1, K+1), see box_confusion_matrix
    detection: DetectionQuality | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_photos": len(self.photos),
            "image_level": self.image_level.to_dict(),
            "image_confusion": self.image_confusion.tolist(),
            "box_confusion": None if self.box_confusion is None else self.box_confusion.tolist(),
            "detection": None if self.detection is None else self.detection.to_dict(),
            "intervals": None if self.intervals is None else self.intervals.to_dict(),
        }


def score_class_sets(
    photos: Sequence[str],
    true_sets: Sequence[Iterable[str]],
    pred_sets: Sequence[Iterable[str]],
    classes: Sequence[str],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> ClinicalResult:
    """The image-level part of a ClinicalResult, from class sets alone (how human readers are scored)."""
    true_sets = [frozenset(t) for t in true_sets]
    pred_sets = [frozenset(p) for p in pred_sets]
    intervals = (
        bootstrap_intervals(true_sets, pred_sets, classes, n_resamples=n_resamples, seed=seed, level=level)
        if n_resamples > 0
        else None
    )
    return ClinicalResult(
        tuple(photos),
        image_level_scores(true_sets, pred_sets, classes),
        photo_correct(true_sets, pred_sets),
        image_confusion_matrix(true_sets, pred_sets, classes),
        intervals,
    )


class ClinicalEvaluation:
    """Accumulate (truth boxes, predicted boxes) per photo, then compute every metric.

    thresholds: per-class score thresholds (or one float) deciding which predicted boxes make a
    class present; mAP uses every predicted box regardless. subset: a tag per photo (e.g. the
    device class) so `compute(subset=...)` scores a part of the photos.
    """

    def __init__(
        self, classes: Sequence[str], *, thresholds: Thresholds = 0.25, iou_threshold: float = MATCH_IOU
    ) -> None:
        self.classes = tuple(classes)
        self.thresholds = thresholds
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        self._photos: list[str] = []
        self._truth: list[tuple[Box, ...]] = []
        self._pred: list[tuple[Box, ...]] = []
        self._subsets: list[str | None] = []
        self._sizes: list[tuple[int, int] | None] = []

    def update(
        self,
        truth_boxes: Sequence[Box],
        pred_boxes: Sequence[Box],
        photo_id: str,
        subset: str | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        if photo_id in self._photos:
            raise ValueError(f"{photo_id}: already evaluated once")
        self._photos.append(photo_id)
        self._truth.append(tuple(truth_boxes))
        self._pred.append(tuple(pred_boxes))
        self._subsets.append(subset)
        self._sizes.append(size)

    def _select(self, subset: str | None) -> list[int]:
        return [n for n, s in enumerate(self._subsets) if subset is None or s == subset]

    def class_sets(self, subset: str | None = None) -> tuple[list[str], list[frozenset[str]], list[frozenset[str]]]:
        """(photos, true class sets, predicted class sets) of the selected photos."""
        sel = self._select(subset)
        return (
            [self._photos[n] for n in sel],
            [present_classes(self._truth[n]) for n in sel],
            [present_classes(self._pred[n], self.thresholds) for n in sel],
        )

    def coco(self, subset: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(COCO ground truth dict, COCO results list) of the selected photos."""
        sel = self._select(subset)
        sizes = [self._sizes[n] for n in sel]
        gt = coco_ground_truth(
            [self._photos[n] for n in sel],
            [self._truth[n] for n in sel],
            self.classes,
            sizes=[s for s in sizes if s is not None] if all(s is not None for s in sizes) else None,
        )
        return gt, coco_results([self._pred[n] for n in sel], self.classes)

    def compute(
        self,
        subset: str | None = None,
        *,
        n_resamples: int = BOOTSTRAP_RESAMPLES,
        seed: int = 0,
        level: float = INTERVAL_LEVEL,
    ) -> ClinicalResult:
        """Scores of the photos tagged `subset` (all photos when None). n_resamples=0: no intervals."""
        sel = self._select(subset)
        photos, true_sets, pred_sets = self.class_sets(subset)
        gt, preds = self.coco(subset)
        result = score_class_sets(
            photos, true_sets, pred_sets, self.classes, n_resamples=n_resamples, seed=seed, level=level
        )
        return replace(
            result,
            detection=coco_evaluate(gt, preds),
            box_confusion=box_confusion_matrix(
                [self._truth[n] for n in sel],
                [self._pred[n] for n in sel],
                self.classes,
                thresholds=self.thresholds,
                iou_threshold=self.iou_threshold,
            ),
        )


@dataclass(frozen=True)
class BoxF1:
    """Box F1 of a group of photos against a reference, with its size and a percentile bootstrap interval
    over photos. An empty group has no F1 (`f1` None) and prints as "none", never as 1.000."""

    photos: int
    tp: int
    fp: int
    fn: int
    f1: float | None
    interval: tuple[float, float] | None

    def describe(self) -> str:
        """'F1 0.953 [0.931-0.972] on 149 photos (TP 300, FP 9, FN 20)', or 'none' for an empty group."""
        if self.f1 is None:
            return "none" if not self.photos else f"no box on {self.photos} photos (F1 undefined)"
        interval = f" [{self.interval[0]:.3f}-{self.interval[1]:.3f}]" if self.interval else ""
        return f"F1 {self.f1:.3f}{interval} on {self.photos} photos (TP {self.tp}, FP {self.fp}, FN {self.fn})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1_of(counts: np.ndarray) -> np.ndarray:
    """F1 of (..., 3) [tp, fp, fn] sums; NaN where there is no box at all."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def box_f1(
    per_photo: Sequence[tuple[int, int, int]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = INTERVAL_LEVEL,
    seed: int = 0,
) -> BoxF1:
    """Box F1 of a group from each photo's (tp, fp, fn) at the caller's matching rule, with a percentile
    bootstrap interval over photos (photos resampled with replacement; their boxes go with them)."""
    counts = np.asarray(per_photo, dtype=float).reshape(-1, 3)  # (N, 3) [tp, fp, fn]
    tp, fp, fn = (int(v) for v in counts.sum(axis=0))
    total = float(_f1_of(counts.sum(axis=0)))
    if not len(counts) or np.isnan(total):
        return BoxF1(len(counts), tp, fp, fn, None, None)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(counts), np.full(len(counts), 1 / len(counts)), size=resamples)  # (R, N)
    interval = percentile_interval(_f1_of(weights @ counts), level)
    return BoxF1(len(counts), tp, fp, fn, total, interval)


def box_f1_by_class(
    per_photo: Sequence[Mapping[str, tuple[int, int, int]]],
    *,
    classes: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, BoxF1]:
    """`box_f1` per class, from each photo's class -> (tp, fp, fn); a class a photo lacks counts (0, 0, 0) there,
    so every class is resampled over the same photos as the group. `classes`: which to report (default: every class
    met), in that order."""
    met = sorted({label for photo in per_photo for label in photo})
    return {
        label: box_f1([photo.get(label, (0, 0, 0)) for photo in per_photo], seed=seed)
        for label in (classes if classes is not None else met)
    }
