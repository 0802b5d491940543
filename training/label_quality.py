"""Label quality from cleanlab's ObjectLab: our boxes in its format, its scores back as per-photo and per-box issues.

cleanlab.object_detection (2.9) does the scoring; this module only converts. Its input schema, written once:
a label is {"bboxes": (L, 4) float [x1, y1, x2, y2] pixels, "labels": (L,) int class indices}; a prediction is a
list of K arrays, one per class index, each (M, 5) [x1, y1, x2, y2, score]. Our boxes are already 0-based
continuous pixels with exclusive right/bottom edges (`annotator.types`), which is cleanlab's xyxy as it stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from annotator.boxes import iou
from annotator.types import Box
from training.constants import LABEL_ISSUE_BOX_SCORE, SUGGESTION_SCORE


class IssueKind(StrEnum):
    """What cleanlab says is wrong with one box (stored by value in the report and the audit's meta)."""

    OVERLOOKED = "overlooked"  # the model sees a lesion no label box covers
    SWAPPED = "swapped class"  # a label box where the model confidently sees another class
    BADLY_LOCATED = "badly located"  # a label box the model's same-class box overlaps only loosely


@dataclass(frozen=True)
class BoxIssue:
    """One box cleanlab scores below LABEL_ISSUE_BOX_SCORE. box: the label box (swapped, badly located) or the
    model's box (overlooked); suggestion: the model's box that disagrees (None when there is none)."""

    kind: IssueKind
    score: float  # cleanlab's per-box score in [0, 1]; lower = more likely wrong
    box: Box
    suggestion: Box | None = None


@dataclass(frozen=True)
class PhotoQuality:
    """One photo's label quality: cleanlab's image score, whether `find_label_issues` flags it, its box issues
    worst first and the model's suggestion (its boxes scoring at least SUGGESTION_SCORE)."""

    photo: str
    score: float  # get_label_quality_scores: 1 clean, 0 surely wrong
    flagged: bool
    issues: tuple[BoxIssue, ...]
    suggestion: tuple[Box, ...]

    @property
    def kinds(self) -> tuple[IssueKind, ...]:
        """The issue kinds found, worst box first, each once."""
        return tuple(dict.fromkeys(i.kind for i in self.issues))


# ---- our boxes -> cleanlab's format ----------------------------------------------------------


def cleanlab_label(boxes: Sequence[Box], classes: Sequence[str]) -> dict[str, Any]:
    """{"bboxes": (L, 4) xyxy pixels, "labels": (L,) class indices} of a label's boxes (unknown classes dropped)."""
    kept = [b for b in boxes if b.label in classes]
    return {
        "bboxes": np.array([[b.x1, b.y1, b.x2, b.y2] for b in kept], dtype=np.float64).reshape(-1, 4),
        "labels": np.array([classes.index(b.label) for b in kept], dtype=np.int64),
    }


def cleanlab_prediction(boxes: Sequence[Box], classes: Sequence[str]) -> list[np.ndarray]:
    """K arrays (one per class index), each (M, 5) [x1, y1, x2, y2, score], of a model's boxes (no score: 1)."""
    per_class: list[list[list[float]]] = [[] for _ in classes]
    for b in boxes:
        if b.label in classes:
            score = 1.0 if b.score is None else float(b.score)
            per_class[classes.index(b.label)].append([b.x1, b.y1, b.x2, b.y2, score])
    return [np.array(rows, dtype=np.float64).reshape(-1, 5) for rows in per_class]


def _prediction_boxes(prediction: list[np.ndarray], classes: Sequence[str]) -> list[Box]:
    """Our boxes of a cleanlab prediction, in cleanlab's flattened order (class by class, rows in order)."""
    return [
        Box(classes[k], float(r[0]), float(r[1]), float(r[2]), float(r[3]), score=float(r[4]))
        for k, rows in enumerate(prediction)
        for r in rows
    ]


# ---- cleanlab's scores -> our issues ---------------------------------------------------------


def score_labels(
    photos: Sequence[str],
    labels: Sequence[Sequence[Box]],
    predictions: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    high_probability: float | None = None,
) -> list[PhotoQuality]:
    """Each photo's label quality from out-of-sample `predictions` (cleanlab ObjectLab), worst photo first.

    high_probability: the score a model box needs before an overlooked or swapped box is charged on it (None:
    cleanlab's default, 0.95); a model trained briefly rarely reaches 0.95, so a short audit may lower it."""
    if not photos:
        return []
    from cleanlab.object_detection.filter import find_label_issues

    cl_labels = [cleanlab_label(b, classes) for b in labels]
    cl_preds = [cleanlab_prediction(b, classes) for b in predictions]
    scores = _image_scores(cl_labels, cl_preds, high_probability)
    flagged = find_label_issues(cl_labels, cl_preds)
    per_box = _box_scores(cl_labels, cl_preds, high_probability)
    out = [
        PhotoQuality(
            photo=photo,
            score=float(scores[i]),
            flagged=bool(flagged[i]),
            issues=_issues(cl_labels[i], cl_preds[i], per_box[i], classes),
            suggestion=tuple(b for b in predictions[i] if (b.score or 0.0) >= SUGGESTION_SCORE),
        )
        for i, photo in enumerate(photos)
    ]
    return sorted(out, key=lambda q: (q.score, q.photo))


def _image_scores(
    cl_labels: list[dict[str, Any]], cl_preds: list[list[np.ndarray]], high_probability: float | None
) -> np.ndarray:
    """cleanlab's image label quality scores, with the same confident-box score as the per-box issues.

    `get_label_quality_scores` fixes that score at 0.95 inside; the function it calls (cleanlab 2.9's
    `_get_subtype_label_quality_scores`, private, the version pinned) takes it, so a set `high_probability` moves
    the ranking as it moves the issues. None: `get_label_quality_scores` itself."""
    from cleanlab.object_detection.rank import _get_subtype_label_quality_scores, get_label_quality_scores

    if high_probability is None:
        return np.asarray(get_label_quality_scores(cl_labels, cl_preds, verbose=False))
    return np.asarray(
        _get_subtype_label_quality_scores(cl_labels, cl_preds, high_probability_threshold=high_probability)
    )


def _box_scores(
    cl_labels: list[dict[str, Any]], cl_preds: list[list[np.ndarray]], high_probability: float | None
) -> list[dict[IssueKind, np.ndarray]]:
    """Per photo, cleanlab's per-box scores of each kind: overlooked per model box, the others per label box."""
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
    )

    overlooked = compute_overlooked_box_scores(
        labels=cl_labels, predictions=cl_preds, high_probability_threshold=high_probability
    )
    swapped = compute_swap_box_scores(
        labels=cl_labels, predictions=cl_preds, high_probability_threshold=high_probability
    )
    badloc = compute_badloc_box_scores(labels=cl_labels, predictions=cl_preds)
    return [
        {IssueKind.OVERLOOKED: o, IssueKind.SWAPPED: s, IssueKind.BADLY_LOCATED: b}
        for o, s, b in zip(overlooked, swapped, badloc, strict=True)
    ]


def _issues(
    label: dict[str, Any], prediction: list[np.ndarray], scores: dict[IssueKind, np.ndarray], classes: Sequence[str]
) -> tuple[BoxIssue, ...]:
    """The boxes of one photo scoring below LABEL_ISSUE_BOX_SCORE, worst first (NaN: not scored, no issue)."""
    label_boxes = [
        Box(classes[int(k)], float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))
        for xyxy, k in zip(label["bboxes"], label["labels"], strict=True)
    ]
    model_boxes = _prediction_boxes(prediction, classes)
    found: list[BoxIssue] = []
    for kind, per_box in scores.items():
        for i, score in enumerate(per_box):
            if not np.isfinite(score) or score >= LABEL_ISSUE_BOX_SCORE:
                continue
            if kind is IssueKind.OVERLOOKED:
                found.append(BoxIssue(kind, float(score), model_boxes[i], model_boxes[i]))
            else:
                box = label_boxes[i]
                found.append(BoxIssue(kind, float(score), box, _closest(box, model_boxes, kind)))
    return tuple(sorted(found, key=lambda issue: issue.score))


def _closest(box: Box, model_boxes: Sequence[Box], kind: IssueKind) -> Box | None:
    """The model box a label box's issue points at: the most overlapping one of another class (swapped) or of
    its class (badly located)."""
    same = kind is IssueKind.BADLY_LOCATED
    candidates = [m for m in model_boxes if (m.label == box.label) == same and iou(box, m) > 0]
    return max(candidates, key=lambda m: (iou(box, m), m.score or 0.0), default=None)
