"""How far two reviewers of the same photos agree: box agreement and image-level class agreement.

Pure (no store, no server): pull feeds it the two reviews of every double-reviewed photo, status
and the round report print what it returns. Two figures, as the study reports inter-rater agreement:
- box agreement: reviewer A's boxes matched one-to-one to B's at IoU >= 0.5 with the same class;
  F1 = 2 * matched / (boxes of A + boxes of B) (symmetric; 1.0 for two empty reviews), and the mean
  IoU of the matched pairs;
- image-level class agreement: for every photo and each of the classes, "does this reviewer mark
  at least one box of the class?"; Cohen's kappa of A's against B's yes/no calls, pooled over the
  classes and per class (sklearn). Kappa is None when it is undefined (both reviewers gave the same
  single answer everywhere: no chance correction possible).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from annotator.boxes import match_boxes
from annotator.types import Box
from review_queue.constants import MATCH_IOU


@dataclass(frozen=True)
class PhotoAgreement:
    """Two reviews of one photo, compared."""

    photo: str
    reviewer_a: str
    reviewer_b: str
    boxes_a: tuple[Box, ...]
    boxes_b: tuple[Box, ...]
    matches: tuple[tuple[int, int, float], ...]  # (index in A, index in B, IoU), same class, IoU >= MATCH_IOU
    excluded_a: bool = False
    excluded_b: bool = False

    @property
    def f1(self) -> float:
        total = len(self.boxes_a) + len(self.boxes_b)
        return 1.0 if total == 0 else 2 * len(self.matches) / total

    @property
    def mean_iou(self) -> float | None:
        return sum(m[2] for m in self.matches) / len(self.matches) if self.matches else None

    @property
    def pair(self) -> tuple[str, str]:
        return tuple(sorted((self.reviewer_a, self.reviewer_b)))  # type: ignore[return-value]

    def agrees(self, min_f1: float) -> bool:
        """The two reviews agree enough to merge without adjudication: box F1 at least `min_f1`,
        and both or neither excluded the photo."""
        return self.excluded_a == self.excluded_b and self.f1 >= min_f1 - 1e-9


def compare(
    photo: str,
    reviewer_a: str,
    boxes_a: Sequence[Box],
    reviewer_b: str,
    boxes_b: Sequence[Box],
    *,
    excluded_a: bool = False,
    excluded_b: bool = False,
) -> PhotoAgreement:
    """Match the two reviews' boxes (greedy by IoU, same class, IoU >= 0.5)."""
    matches = match_boxes(list(boxes_a), list(boxes_b), iou_threshold=MATCH_IOU, class_aware=True)
    return PhotoAgreement(
        photo, reviewer_a, reviewer_b, tuple(boxes_a), tuple(boxes_b), tuple(matches), excluded_a, excluded_b
    )


def merge(agreement: PhotoAgreement) -> tuple[Box, ...]:
    """THE merge rule for two agreeing reviews: each matched pair becomes one box with the mean of the
    two boxes' corners (same class by construction); a box only one reviewer drew is kept (a lesion
    one dermatologist saw is not dropped). With the default threshold (F1 = 1.0) there is none."""
    a, b = agreement.boxes_a, agreement.boxes_b
    merged = [
        Box(
            a[i].label,
            (a[i].x1 + b[j].x1) / 2,
            (a[i].y1 + b[j].y1) / 2,
            (a[i].x2 + b[j].x2) / 2,
            (a[i].y2 + b[j].y2) / 2,
        )
        for i, j, _ in agreement.matches
    ]
    used_a = {i for i, _, _ in agreement.matches}
    used_b = {j for _, j, _ in agreement.matches}
    merged += [box for i, box in enumerate(a) if i not in used_a]
    merged += [box for j, box in enumerate(b) if j not in used_b]
    return tuple(merged)


@dataclass(frozen=True)
class AgreementFigures:
    """Agreement over a set of double-reviewed photos."""

    photos: int
    boxes_a: int
    boxes_b: int
    matched: int
    box_f1: float | None
    mean_iou: float | None
    kappa: float | None  # image-level presence calls, pooled over the classes
    observed_agreement: float | None  # share of identical image-level calls

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgreementSummary:
    """Overall, per class and per reviewer pair; `disagreeing` photos are those below the threshold."""

    overall: AgreementFigures
    per_class: dict[str, AgreementFigures] = field(default_factory=dict)
    per_pair: dict[str, AgreementFigures] = field(default_factory=dict)  # "a@x + b@y" -> figures
    disagreeing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "per_pair": {k: v.to_dict() for k, v in self.per_pair.items()},
            "disagreeing": list(self.disagreeing),
        }


def kappa(calls_a: Sequence[bool], calls_b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no calls (sklearn); None where it is undefined."""
    if not calls_a:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score([int(v) for v in calls_a], [int(v) for v in calls_b]))
    return None if math.isnan(value) else value


def _figures(items: Sequence[PhotoAgreement], classes: Sequence[str], only: str | None = None) -> AgreementFigures:
    def boxes(seq: Iterable[Box]) -> list[Box]:
        return [b for b in seq if only is None or b.label == only]

    n_a = sum(len(boxes(p.boxes_a)) for p in items)
    n_b = sum(len(boxes(p.boxes_b)) for p in items)
    ious = [m[2] for p in items for m in p.matches if only is None or p.boxes_a[m[0]].label == only]
    scope = [only] if only is not None else list(classes)
    calls_a = [any(b.label == c for b in p.boxes_a) for p in items for c in scope]
    calls_b = [any(b.label == c for b in p.boxes_b) for p in items for c in scope]
    same = sum(x == y for x, y in zip(calls_a, calls_b, strict=True))
    return AgreementFigures(
        photos=len(items),
        boxes_a=n_a,
        boxes_b=n_b,
        matched=len(ious),
        box_f1=(2 * len(ious) / (n_a + n_b)) if n_a + n_b else None,
        mean_iou=sum(ious) / len(ious) if ious else None,
        kappa=kappa(calls_a, calls_b),
        observed_agreement=same / len(calls_a) if calls_a else None,
    )


def summarise(items: Sequence[PhotoAgreement], classes: Sequence[str], *, min_f1: float = 1.0) -> AgreementSummary:
    """Agreement overall, per class (boxes and calls of that class) and per reviewer pair."""
    by_pair: dict[str, list[PhotoAgreement]] = defaultdict(list)
    for item in items:
        by_pair[" + ".join(item.pair)].append(item)
    return AgreementSummary(
        overall=_figures(items, classes),
        per_class={c: _figures(items, classes, only=c) for c in classes},
        per_pair={k: _figures(v, classes) for k, v in sorted(by_pair.items())},
        disagreeing=tuple(p.photo for p in items if not p.agrees(min_f1)),
    )


def agreement_lines(summary: AgreementSummary) -> list[str]:
    """Plain lines for `review status` and the round report."""
    o = summary.overall
    if not o.photos:
        return []

    def fmt(v: float | None, spec: str = ".2f") -> str:
        return "n/a" if v is None else format(v, spec)

    lines = [
        f"double review on {o.photos} photos: box F1 {fmt(o.box_f1)} (IoU 0.5, same class; {o.matched} matched of "
        f"{o.boxes_a} + {o.boxes_b} boxes), mean IoU of matched boxes {fmt(o.mean_iou)}, image-level kappa "
        f"{fmt(o.kappa)} (agreement {fmt(o.observed_agreement, '.0%')}); {len(summary.disagreeing)} photos disagree"
    ]
    lines += [
        f"  {label:>5}: box F1 {fmt(f.box_f1)}, kappa {fmt(f.kappa)}"
        for label, f in summary.per_class.items()
        if f.boxes_a + f.boxes_b
    ]
    lines += [f"  {pair}: box F1 {fmt(f.box_f1)}, kappa {fmt(f.kappa)}" for pair, f in summary.per_pair.items()]
    return lines
