"""Per-class confidence thresholds, chosen each round on the validation split.

A model trained on a small seed set is under-confident: at a fixed 0.25 it keeps almost none of its boxes
and the reviewer draws everything. So each round picks, per class, the score that maximises F1 on the val
photos (a box counts when it overlaps a same-class truth box at IoU >= 0.5), never below a floor; a class
with no val boxes, or one the model never found there, keeps the configured default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from annotator.config import Config
from annotator.errors import TrainingError
from annotator.formats.yolo import label_path_for, read_yolo_labels
from annotator.images import decode_displayed
from annotator.types import Box
from training.constants import MATCH_IOU, PREDICT_FLOOR
from training.detectors.base import Predictor, TrainingView
from training.metrics import match_by_score
from training.prediction import DecodedPhoto, predict_photos

THRESHOLD_FLOOR = 0.05  # below this a small model's boxes are mostly noise, whatever F1 on a few val boxes says


@dataclass(frozen=True)
class ClassThreshold:
    """One class's threshold and why: `source` is "val-f1" (chosen on val) or "default" (no evidence)."""

    label: str
    threshold: float
    source: str
    val_boxes: int  # truth boxes of the class on the val photos
    f1: float | None = None  # on val, at `threshold`
    precision: float | None = None
    recall: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def f1_threshold(
    label: str, scored: Sequence[tuple[float, bool]], n_truth: int, *, default: float, floor: float = THRESHOLD_FLOOR
) -> ClassThreshold:
    """The F1-maximising score for one class. Pure.

    scored: (score, matched a truth box) for every predicted box of the class on the val photos.
    n_truth: the class's truth boxes there. Keeping boxes with score >= t gives F1 = 2 TP / (kept + n_truth);
    the highest t of the best F1 wins (fewest boxes for the same F1), then the floor applies.
    """
    if n_truth == 0:
        return ClassThreshold(label, float(default), "default", 0)
    ranked = sorted(scored, key=lambda s: -s[0])
    scores = np.array([s for s, _ in ranked], dtype=float)  # (P,) descending
    tp = np.cumsum([bool(m) for _, m in ranked], dtype=float)  # (P,) true positives among the top k+1
    if not len(ranked) or tp[-1] == 0:
        return ClassThreshold(label, float(default), "default", n_truth)
    kept = np.arange(1, len(ranked) + 1, dtype=float)  # (P,)
    f1 = 2 * tp / (kept + n_truth)
    # a cut must fall between distinct scores: only the last of a run of equal scores is a valid cut
    valid = np.append(scores[1:] < scores[:-1], True)
    best = int(np.argmax(np.where(valid, f1, -1.0)))
    threshold = max(float(floor), float(scores[best]))
    at = scores >= threshold
    n_kept, n_tp = int(at.sum()), float(tp[at][-1]) if at.any() else 0.0
    return ClassThreshold(
        label,
        round(threshold, 4),
        "val-f1",
        n_truth,
        f1=round(2 * n_tp / (n_kept + n_truth), 4),
        precision=round(n_tp / n_kept, 4) if n_kept else None,
        recall=round(n_tp / n_truth, 4),
    )


def score_matches(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    iou_threshold: float = MATCH_IOU,
) -> tuple[dict[str, list[tuple[float, bool]]], dict[str, int]]:
    """Per class: (score, matched) for each prediction and the number of truth boxes, over paired photos.
    Matching is per photo and per class, greedy in descending score (`match_by_score`). Pure."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truth photos but {len(pred)} prediction photos")
    scored: dict[str, list[tuple[float, bool]]] = {c: [] for c in classes}
    counts = dict.fromkeys(classes, 0)
    for t_boxes, p_boxes in zip(truth, pred, strict=True):
        for c in classes:
            t_c = [b for b in t_boxes if b.label == c]
            p_c = [b for b in p_boxes if b.label == c]
            counts[c] += len(t_c)
            matched = {i for i, _ in match_by_score(p_c, t_c, iou_threshold)}
            scored[c].extend((float(b.score or 0.0), i in matched) for i, b in enumerate(p_c))
    return scored, counts


def choose_thresholds(
    truth: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    default: float,
    floor: float = THRESHOLD_FLOOR,
) -> dict[str, ClassThreshold]:
    """Every class's threshold from paired truth and scored predictions of the val photos. Pure."""
    scored, counts = score_matches(truth, pred, classes)
    return {c: f1_threshold(c, scored[c], counts[c], default=default, floor=floor) for c in classes}


class PredictedSplit(NamedTuple):
    """One split predicted as pre-annotation predicts: per photo, in the split's order, all in the decoded frame."""

    truth: list[list[Box]]
    pred: list[list[Box]]  # raw boxes down to PREDICT_FLOOR
    frames: list[tuple[int, int]]  # (width, height) of each decoded photo


def predict_split(
    predictor: Predictor,
    view: TrainingView,
    *,
    imgsz: int,
    batch: int = 8,
    device: str | None = None,
    split: str = "val",
) -> PredictedSplit:
    """Predict one split of the view as pre-annotation does (decoded at `imgsz`, displayed frame, raw boxes down
    to PREDICT_FLOOR). `predictor`: the one pre-annotation predicts with (ONNX Runtime's on the CPU:
    `training.detectors.runtime.prediction_detector`), so what is chosen here fits the scores it is applied to."""
    items = view.images.get(split, [])

    def decoded() -> Iterator[DecodedPhoto]:
        for link, rel in items:
            try:
                rgb, _, _ = decode_displayed(link, max_side=imgsz)
            except OSError as exc:
                raise TrainingError(f"{rel}: cannot decode the {split} photo ({exc})") from exc
            yield DecodedPhoto(rgb)

    found = predict_photos(predictor, decoded(), conf=PREDICT_FLOOR, imgsz=imgsz, batch=batch, device=device)
    truth = [
        read_yolo_labels(label_path_for(link), view.classes, w, h)
        for (link, _), (w, h) in zip(items, found.decoded, strict=True)
    ]
    return PredictedSplit(truth, found.boxes, found.decoded)


def threshold_rule(cfg: Config, chosen: Mapping[str, float]) -> Callable[[str], float]:
    """A class's confidence threshold for pre-annotation: the user's `[predict.thresholds]` entry, else the one
    the round chose on its val split (`chosen`), else the configured default. Pure."""

    def threshold(label: str) -> float:
        if label in cfg.thresholds:
            return float(cfg.thresholds[label])
        return float(chosen.get(label, cfg.default_threshold))

    return threshold
