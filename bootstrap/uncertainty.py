"""The review priority of a photo: how likely its pre-annotation needs a dermatologist's fix.

Pure function over the detector's raw boxes (before thresholds). With thresholds t_c:
- least confidence: 1 - min score over kept boxes (a shaky box is often wrong);
- possible miss: max over dropped boxes with score >= t_c/2 of score/t_c (a lesion nearly found);
- class margin: for a kept box overlapping (IoU >= 0.5) a box of another class, 1 - (s_kept - s_other)
  (melasma vs Hori's, freckles vs lentigines);
- no kept box at all: 1.0 (every photo in this data set shows at least one lesion).
The photo's uncertainty is the maximum of these, in [0, 1]; higher = review first.
"""

from __future__ import annotations

from typing import Callable, Sequence

from annotator.boxes import iou
from annotator.types import Box


def photo_uncertainty(raw_boxes: Sequence[Box], threshold: Callable[[str], float]) -> float:
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


def keep_confident(raw_boxes: Sequence[Box], threshold: Callable[[str], float]) -> tuple[Box, ...]:
    return tuple(b for b in raw_boxes if (b.score or 0.0) >= threshold(b.label))
