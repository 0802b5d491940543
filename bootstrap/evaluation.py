"""Test-split figures a reader can trust: a round's mAP50 (pycocotools) with its 95% bootstrap
interval over photos, the split's photo and box counts, per-class precision that is "n/a" when a
class was never predicted, and the rule that says when the split cannot tell two rounds apart.

Why our own evaluation beside the detector's `validate`: Ultralytics reports per-class precision at
the confidence where the mean F1 over classes peaks, interpolating precision with `left=1`
(`ultralytics.utils.metrics.ap_per_class`), so a class with no prediction above that confidence
shows precision 1.000 at recall 0; and no framework gives an interval. Here the round's model
predicts the fixed test split once (`training.prediction.predict_photos`) and pycocotools evaluates it once
(`training.metrics.coco_evaluation`): mAP50 and per-class AP50 are its figures, the interval resamples photos
with replacement and recomputes the same AP from that run's per-photo matches, and per-class precision and
sensitivity count boxes at the score threshold pre-annotation uses (a class never predicted there has precision
None, printed "n/a").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.images import decode_displayed
from annotator.rounds import RoundRecord, Stage
from annotator.store import Workspace
from annotator.types import Box
from training.constants import BOOTSTRAP_RESAMPLES, EVAL_CONF, INTERVAL_LEVEL, MATCH_IOU
from training.detectors.base import Predictor
from training.metrics import CocoEvaluation, box_confusion_matrix, coco_evaluation, map50_bootstrap
from training.prediction import DecodedPhoto, predict_photos

MIN_TEST_PHOTOS = 40  # below this a test split cannot rank two rounds (the warning's first rule)


# ---- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassFigures:
    """One class on the test split. Boxes are counted at the class's score threshold, matched to
    truth at IoU >= 0.5; precision is None when nothing of the class was predicted there,
    sensitivity None when the split has no box of the class; ap50 is pycocotools' (None: no truth)."""

    truth_boxes: int
    predicted_boxes: int
    true_positives: int
    precision: float | None
    sensitivity: float | None
    ap50: float | None


@dataclass(frozen=True)
class SplitFigures:
    """A round's model on the fixed test split: mAP50 with its percentile bootstrap interval
    (photos resampled with replacement; `interval` None when the split is empty or has no box)."""

    photos: int
    boxes: int
    map50: float | None
    interval: tuple[float, float] | None
    level: float
    n_resamples: int
    seed: int
    per_class: dict[str, ClassFigures]
    thresholds: dict[str, float]  # the per-class score thresholds the box counts use
    backend: str | None = None  # what predicted the photos (training.detectors.runtime's note); None: not recorded

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitFigures:
        interval = data.get("interval")
        return cls(
            photos=int(data["photos"]),
            boxes=int(data["boxes"]),
            map50=data.get("map50"),
            interval=(float(interval[0]), float(interval[1])) if interval else None,
            level=float(data.get("level", INTERVAL_LEVEL)),
            n_resamples=int(data.get("n_resamples", 0)),
            seed=int(data.get("seed", 0)),
            per_class={c: ClassFigures(**v) for c, v in (data.get("per_class") or {}).items()},
            thresholds=dict(data.get("thresholds") or {}),
            backend=data.get("backend"),
        )


# ---- mAP50 and its interval -------------------------------------------------------------------


def _evaluate(truth: Sequence[Sequence[Box]], pred: Sequence[Sequence[Box]], classes: Sequence[str]) -> CocoEvaluation:
    """The split's one COCOeval run: photo n is `truth[n]`, `pred[n]`."""
    return coco_evaluation(
        coco_ground_truth([str(i) for i in range(len(truth))], truth, classes), coco_results(pred, classes)
    )


def _map50_and_interval(
    evaluated: CocoEvaluation, truth: Sequence[Sequence[Box]], *, n_resamples: int, seed: int, level: float
) -> tuple[float | None, tuple[float, float] | None]:
    """(mAP50, its percentile bootstrap interval over photos) of an evaluated split; (None, None) without a truth
    box."""
    if not any(truth):
        return None, None
    interval = map50_bootstrap(evaluated.matches, len(truth), n_resamples=n_resamples, seed=seed, level=level)
    return evaluated.quality.map50, interval


def map50_interval(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> tuple[float | None, tuple[float, float] | None]:
    """(mAP50, percentile bootstrap interval) over photos: `truth[n]`, `pred[n]` are photo n's boxes.

    mAP50 is pycocotools'. Each resample draws N photos with replacement (numpy generator `seed`) and recomputes
    the same statistic from pycocotools' per-photo matches of the same COCOeval run
    (`training.metrics.map50_bootstrap`). The interval is None without photos or truth boxes.
    """
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truth photos but {len(pred)} prediction photos")
    if not truth:
        return None, None
    return _map50_and_interval(_evaluate(truth, pred, classes), truth, n_resamples=n_resamples, seed=seed, level=level)


def split_figures(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    thresholds: Mapping[str, float],
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = INTERVAL_LEVEL,
) -> SplitFigures:
    """Every test-split figure from boxes alone (pure), from one COCOeval run: `pred` scored, at any confidence."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truth photos but {len(pred)} prediction photos")
    evaluated = _evaluate(truth, pred, classes) if truth else None
    point, interval = (
        _map50_and_interval(evaluated, truth, n_resamples=n_resamples, seed=seed, level=level)
        if evaluated is not None
        else (None, None)
    )
    ap = evaluated.quality.per_class if evaluated is not None else {}
    cm = box_confusion_matrix(truth, pred, classes, thresholds=dict(thresholds), iou_threshold=MATCH_IOU)  # (K+1, K+1)
    per_class = {}
    for k, c in enumerate(classes):
        tp, n_pred, n_true = int(cm[k, k]), int(cm[:, k].sum()), int(cm[k, :].sum())
        per_class[c] = ClassFigures(
            truth_boxes=n_true,
            predicted_boxes=n_pred,
            true_positives=tp,
            precision=tp / n_pred if n_pred else None,
            sensitivity=tp / n_true if n_true else None,
            ap50=(ap.get(c) or {}).get("ap50"),
        )
    return SplitFigures(
        photos=len(truth),
        boxes=sum(len(t) for t in truth),
        map50=point,
        interval=interval,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
        per_class=per_class,
        thresholds={c: float(thresholds[c]) for c in classes if c in thresholds},
    )


# ---- a round's model on the test split (I/O) ------------------------------------------------


def evaluate_test_split(
    ws: Workspace,
    detector: Predictor,
    round_no: int,
    attempt: int = 0,
    *,
    imgsz: int,
    device: str | None = None,
    threshold: Callable[[str], float] | None = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    batch: int = 8,
    backend: str | None = None,
) -> SplitFigures:
    """Predict the round's test photos (its manifest's `test` rows, with the label versions it
    froze) and compute `split_figures`. threshold: per-class score threshold (default: the
    workspace's, what pre-annotation keeps). backend: the note naming what `detector` predicts
    with (`training.detectors.runtime.prediction_detector`), kept with the figures."""
    records = {r.path: r for r in ws.store.labels.images()}
    rows = [(p, vid) for p, vid, split in ws.store.rounds.manifest(round_no, attempt) if split == "test"]
    classes = ws.config.classes

    def decoded() -> Iterator[DecodedPhoto]:
        for path, _ in rows:
            rgb, sx, sy = decode_displayed(ws.image_path(path), imgsz)
            yield DecodedPhoto(rgb, sx, sy, (records[path].width, records[path].height))

    pred = predict_photos(detector, decoded(), conf=EVAL_CONF, imgsz=imgsz, batch=batch, device=device).boxes
    versions = [ws.store.labels.version(vid) for _, vid in rows]
    truth = [tuple(v.boxes) if v is not None else () for v in versions]
    threshold = threshold or ws.config.threshold_for
    figures = split_figures(
        truth,
        pred,
        classes,
        thresholds={c: threshold(c) for c in classes},
        n_resamples=n_resamples,
        seed=ws.config.seed,
    )
    return replace(figures, backend=backend)


def record_test_split(
    ws: Workspace,
    detector: Predictor,
    round_no: int,
    attempt: int = 0,
    *,
    imgsz: int,
    device: str | None = None,
    threshold: Callable[[str], float] | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """Evaluate once per round and store it as the round's `metrics["test_split"]` (a rerun reuses it).
    threshold: the per-class score threshold the round pre-annotates with (default: the workspace's);
    backend: what `detector` predicts with, stored with the figures."""
    record = ws.store.rounds.round_record(round_no, attempt)
    if record is not None and record.test_split is not None:
        return record.test_split
    figures = evaluate_test_split(
        ws, detector, round_no, attempt, imgsz=imgsz, device=device, threshold=threshold, backend=backend
    ).to_dict()
    ws.store.rounds.upsert_round(round_no, attempt, stage=record.stage if record else Stage.TRAINED, test_split=figures)
    return figures


# ---- what to print ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundMap:
    """The headline of a round: test-split mAP50, its interval, and what it was measured on.
    `interval` None: no interval (an older round evaluated by the detector's own validate only)."""

    photos: int
    boxes: int | None
    map50: float | None
    interval: tuple[float, float] | None
    level: float = INTERVAL_LEVEL
    backend: str | None = None  # what predicted the test photos (ours only)


def round_map(record: RoundRecord) -> RoundMap | None:
    """The headline of a round: ours (`test_split`), else the detector's own `test`."""
    if record.test_split:
        f = SplitFigures.from_dict(record.test_split)
        return RoundMap(f.photos, f.boxes, f.map50, f.interval, f.level, f.backend)
    theirs = (record.trained.test if record.trained else None) or {}
    if theirs.get("images") is None and theirs.get("map50") is None:
        return None
    return RoundMap(int(theirs.get("images") or 0), None, theirs.get("map50"), None)


def describe_map(m: RoundMap | None) -> str:
    """`mAP50 0.132 (95% CI 0.050-0.221) on 9 test photos, 18 boxes, predicted with onnxruntime`."""
    if m is None or m.map50 is None:
        return "mAP50 - (no test split evaluated)"
    ci = f" ({m.level:.0%} CI {m.interval[0]:.3f}-{m.interval[1]:.3f})" if m.interval is not None else " (no interval)"
    boxes = f", {m.boxes} boxes" if m.boxes is not None else ""
    backend = f", predicted with {m.backend.split(' (')[0]}" if m.backend else ""  # the note's reason is in metrics
    return f"mAP50 {m.map50:.3f}{ci} on {m.photos} test photos{boxes}{backend}"


def format_interval(m: RoundMap | None) -> str:
    """Compact, for tables: `0.13 [0.05-0.22]`."""
    if m is None or m.map50 is None:
        return "-"
    if m.interval is None:
        return f"{m.map50:.2f}"
    return f"{m.map50:.2f} [{m.interval[0]:.2f}-{m.interval[1]:.2f}]"


def comparison_warning(rounds: Sequence[tuple[int, RoundMap | None]]) -> str | None:
    """Why the test split cannot rank the last two rounds, or None when it can.

    The rule: a split of fewer than MIN_TEST_PHOTOS photos cannot rank rounds; otherwise the last
    round's 95% interval must not overlap the previous round's (overlapping intervals: the
    difference may be noise)."""
    known = [(r, m) for r, m in rounds if m is not None and m.map50 is not None]
    if not known:
        return None
    r, last = known[-1]
    if last.photos < MIN_TEST_PHOTOS:
        return (
            f"warning: the test split has {last.photos} photos (< {MIN_TEST_PHOTOS}): too few to compare "
            "rounds; differences in mAP50 between rounds mean nothing at this size"
        )
    if len(known) < 2:
        return None
    p, prev = known[-2]
    if last.interval is None or prev.interval is None:
        return f"warning: round {p} or {r} has no interval; their mAP50 cannot be compared"
    if last.interval[0] <= prev.interval[1] and prev.interval[0] <= last.interval[1]:
        return (
            f"warning: round {r}'s {last.level:.0%} interval {last.interval[0]:.3f}-{last.interval[1]:.3f} "
            f"overlaps round {p}'s {prev.interval[0]:.3f}-{prev.interval[1]:.3f}: the test split "
            f"({last.photos} photos) cannot tell the two rounds apart"
        )
    return None
