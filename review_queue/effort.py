"""THE time model of annotation effort: what reviewing a model's boxes costs against drawing every
box from scratch, on the same photos, by the same per-action rule. The simulated reviewer (its
lead times), review status, the learning curve, the round report and benchmarks/loop.py all read
their seconds from here, so a saving can only come from the model, never from two time models.

Seconds per action (a model, not a measurement):
  look at the photo and submit 3 (once per photo, reviewing or drawing alike);
  verify a predicted box 2 (Papadopoulos et al. 2016, "We don't need no bounding-boxes": ~1.6-2 s
  per box-verification answer); move/resize 6; relabel 3 (+6 when it is also moved); delete 2;
  draw a box 7 to 35, growing with its size relative to the photo (7 s: extreme clicking,
  Papadopoulos et al. 2017; 35 s: conventional drawing with quality control, ~34.5 s per box in
  the same paper, after Su et al. 2012): small crisp lesions are quick, large diffuse patches slow.

Scratch cost of a photo = look + drawing every box of its final (reviewed) label.
Reviewer cost of a photo = look + the cost of each edit of the prediction (`review_queue.edits`
edit kinds, priced by EDIT_SECONDS). A photo where the model predicted nothing is all `added` edits,
one per final box, so it costs the reviewer exactly what scratch costs.

Box operations: the reviewer's are the edits that change something (moved, relabelled, deleted,
added; verifying a box is a look, priced but not an operation); scratch's are the final boxes.
Per class: an edit of a predicted box counts under the predicted class, an added box under its
new class, a scratch draw under the box's class; the per-photo look belongs to no class.

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from annotator.types import Box
from review_queue.edits import EditKind, EditOp

LOOK_S = 3.0  # per photo: look at the face, submit
VERIFY_S = 2.0
ADJUST_S = 6.0
RELABEL_S = 3.0
DELETE_S = 2.0
DRAW_MIN_S, DRAW_MAX_S = 7.0, 35.0
_SMALL, _LARGE = 0.02, 0.30  # box side relative to the photo's (sqrt of area share): fastest / slowest draw

# Seconds of each edit of a predicted box; an added box is priced by its size (draw_seconds), and a
# relabelled box that also moved pays the move too.
EDIT_SECONDS: Mapping[EditKind, float] = MappingProxyType(
    {EditKind.ACCEPTED: VERIFY_S, EditKind.MOVED: ADJUST_S, EditKind.RELABELLED: RELABEL_S, EditKind.DELETED: DELETE_S}
)


def draw_seconds(box: Box, width: int, height: int) -> float:
    """Time to draw one box: 7 s for a small lesion to 35 s for a large diffuse patch."""
    side = math.sqrt(max(box.area, 0.0) / float(max(1, width * height)))
    t = (side - _SMALL) / (_LARGE - _SMALL)
    return DRAW_MIN_S + (DRAW_MAX_S - DRAW_MIN_S) * min(1.0, max(0.0, t))


def edit_seconds(
    kind: EditKind, *, moved: bool = False, drawn: Box | None = None, width: int = 0, height: int = 0
) -> float:
    """Seconds for one edit (`review_queue.edits.EditKind`).

    moved: a relabelled box was also moved; drawn: the box an `added` edit drew (with the photo's size)."""
    if kind is EditKind.ADDED:
        if drawn is None:
            raise ValueError("an added box needs the box it drew to be priced")
        return draw_seconds(drawn, width, height)
    seconds = EDIT_SECONDS[kind]
    if kind is EditKind.RELABELLED and moved:
        seconds += EDIT_SECONDS[EditKind.MOVED]
    return seconds


def scratch_seconds(boxes: Iterable[Box], width: int, height: int) -> float:
    """Drawing a photo's boxes from scratch: the look plus one draw per box."""
    return LOOK_S + sum(draw_seconds(b, width, height) for b in boxes)


@dataclass(frozen=True)
class ClassEffort:
    """One class's share of an `Effort` (the per-photo look is in no class)."""

    reviewer_operations: int = 0
    scratch_operations: int = 0
    reviewer_seconds: float = 0.0
    scratch_seconds: float = 0.0


@dataclass(frozen=True)
class Effort:
    """Modelled reviewer effort against drawing from scratch, over the same photos.

    photos: photos priced (a photo whose size is unknown cannot be priced and is left out).
    reviewer_operations / scratch_operations: box operations (see the module docstring).
    reviewer_seconds / scratch_seconds: modelled seconds, looks included.
    """

    photos: int = 0
    reviewer_operations: int = 0
    scratch_operations: int = 0
    reviewer_seconds: float = 0.0
    scratch_seconds: float = 0.0
    per_class: dict[str, ClassEffort] = field(default_factory=dict)

    def _per_photo(self, value: float) -> float | None:
        return value / self.photos if self.photos else None

    @property
    def reviewer_seconds_per_photo(self) -> float | None:
        return self._per_photo(self.reviewer_seconds)

    @property
    def scratch_seconds_per_photo(self) -> float | None:
        return self._per_photo(self.scratch_seconds)

    @property
    def reviewer_operations_per_photo(self) -> float | None:
        return self._per_photo(self.reviewer_operations)

    @property
    def scratch_operations_per_photo(self) -> float | None:
        return self._per_photo(self.scratch_operations)

    @property
    def seconds_saved_share(self) -> float | None:
        """1 - reviewer / scratch seconds: the share of drawing time the model saved (negative: it cost time)."""
        return 1.0 - self.reviewer_seconds / self.scratch_seconds if self.scratch_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "reviewer_seconds_per_photo": self.reviewer_seconds_per_photo,
            "scratch_seconds_per_photo": self.scratch_seconds_per_photo,
            "reviewer_operations_per_photo": self.reviewer_operations_per_photo,
            "scratch_operations_per_photo": self.scratch_operations_per_photo,
            "seconds_saved_share": self.seconds_saved_share,
        }


def op_seconds(op: EditOp, width: int, height: int) -> float:
    """Seconds of one edit (an added box priced by the corners it was drawn at)."""
    drawn = None
    if op.kind is EditKind.ADDED and op.after is not None:
        drawn = Box(op.new_label or "?", *op.after)
    return edit_seconds(op.kind, moved=op.moved, drawn=drawn, width=width, height=height)


def review_seconds(ops: Iterable[EditOp], width: int, height: int) -> float:
    """What reviewing one photo costs: the look plus each edit."""
    return LOOK_S + sum(op_seconds(op, width, height) for op in ops)


@dataclass(frozen=True)
class PhotoReview:
    """One reviewed photo as the effort model needs it: its edits, final boxes and size."""

    operations: Sequence[EditOp]
    final_boxes: Sequence[Box]
    width: int
    height: int


def effort(photos: Iterable[PhotoReview]) -> Effort:
    """Reviewer and scratch effort summed over photos, overall and per class."""
    n = rev_ops = scr_ops = 0
    rev_s = scr_s = 0.0
    per_class: dict[str, list[float]] = {}  # class -> [reviewer ops, scratch ops, reviewer s, scratch s]
    for photo in photos:
        n += 1
        rev_s += LOOK_S
        scr_s += LOOK_S
        for op in photo.operations:
            seconds = op_seconds(op, photo.width, photo.height)
            is_operation = op.kind.is_operation
            row = per_class.setdefault(op.box_class, [0, 0, 0.0, 0.0])
            row[0] += is_operation
            row[2] += seconds
            rev_ops += is_operation
            rev_s += seconds
        for box in photo.final_boxes:
            seconds = draw_seconds(box, photo.width, photo.height)
            row = per_class.setdefault(box.label, [0, 0, 0.0, 0.0])
            row[1] += 1
            row[3] += seconds
            scr_ops += 1
            scr_s += seconds
    return Effort(
        photos=n,
        reviewer_operations=rev_ops,
        scratch_operations=scr_ops,
        reviewer_seconds=rev_s,
        scratch_seconds=scr_s,
        per_class={
            c: ClassEffort(int(r[0]), int(r[1]), float(r[2]), float(r[3])) for c, r in sorted(per_class.items())
        },
    )
