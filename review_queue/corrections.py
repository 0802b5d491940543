"""What reviewers did to the model's boxes, independent of any annotation server: the edit diff
(prediction -> reviewed labels, one `EditOp` per box) and THE correction statistic over reviewed
label versions, which review status, the learning curve and finalize all read from here.

Pure: no I/O. The diff is stored with every pulled review (`meta["operations"]`, and its counts
in `meta["edits"]`); the statistic reads the operations back, so it needs no server either.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from annotator.boxes import iou, match_boxes
from annotator.types import Box, LabelVersion


class EditKind(StrEnum):
    """What a reviewer did to one box. Stored by value (`"moved"`) in a review's meta."""

    ACCEPTED = "accepted"  # a predicted box kept as it was
    MOVED = "moved"  # a predicted box moved or resized, class kept
    RELABELLED = "relabelled"  # a predicted box given another class (and perhaps moved too)
    DELETED = "deleted"  # a predicted box removed
    ADDED = "added"  # a box the model did not propose

    @property
    def on_prediction(self) -> bool:
        """The edit concerns a box the model proposed (every kind but `added`)."""
        return self is not EditKind.ADDED

    @property
    def corrects(self) -> bool:
        """The reviewer had to change a predicted box: moved, relabelled or deleted."""
        return self in (EditKind.MOVED, EditKind.RELABELLED, EditKind.DELETED)


# ---- the edit diff ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EditOp:
    """One reviewer action inferred from a prediction and the annotation made from it.

    `label` is the predicted class (None for added), `new_label` the reviewed class (None for
    deleted). A relabelled box may also have moved (`moved`=True). iou: overlap of predicted and
    reviewed box, when both exist. before/after: (x1, y1, x2, y2) in displayed-photo pixels.
    """

    kind: EditKind
    region: str
    label: str | None
    new_label: str | None = None
    iou: float | None = None
    moved: bool = False
    before: tuple[float, float, float, float] | None = None
    after: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a review's `meta["operations"]` (what `correction_summary` reads)."""
        out: dict[str, Any] = {"op": self.kind.value, "region": self.region, "label": self.label}
        if self.new_label is not None and self.new_label != self.label:
            out["new_label"] = self.new_label
        if self.iou is not None:
            out["iou"] = round(self.iou, 4)
        if self.moved and self.kind is EditKind.RELABELLED:
            out["moved"] = True
        if self.before is not None:
            out["before"] = [round(v, 2) for v in self.before]
        if self.after is not None and self.after != self.before:
            out["after"] = [round(v, 2) for v in self.after]
        return out


def _corners(box: Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def diff_regions(
    predicted: Sequence[tuple[str, Box]],
    reviewed: Sequence[tuple[str, Box]],
    *,
    tolerance_px: float = 0.5,
    iou_threshold: float = 0.5,
) -> list[EditOp]:
    """The edits that turn a prediction into an annotation; both are (region id, box) in order.

    Regions are paired by id first (an annotation server keeps a prediction's region id when the
    reviewer keeps the region), then remaining ones by class-agnostic IoU >= iou_threshold.
    A pair is accepted when every corner moved by at most tolerance_px and the class is
    unchanged, moved when only geometry changed, relabelled when the class changed.
    Unpaired predicted regions were deleted, unpaired reviewed regions added.
    """
    pairs: list[tuple[int, int]] = []
    pred_index = {rid: i for i, (rid, _) in enumerate(predicted)}
    used_p: set[int] = set()
    used_r: set[int] = set()
    for j, (rid, _) in enumerate(reviewed):
        i = pred_index.get(rid)
        if i is not None and i not in used_p:
            pairs.append((i, j))
            used_p.add(i)
            used_r.add(j)
    rest_p = [i for i in range(len(predicted)) if i not in used_p]
    rest_r = [j for j in range(len(reviewed)) if j not in used_r]
    for a, b, _ in match_boxes(
        [predicted[i][1] for i in rest_p],
        [reviewed[j][1] for j in rest_r],
        iou_threshold=iou_threshold,
        class_aware=False,
    ):
        pairs.append((rest_p[a], rest_r[b]))
        used_p.add(rest_p[a])
        used_r.add(rest_r[b])

    ops: list[EditOp] = []
    for i, j in sorted(pairs):
        rid, before = predicted[i]
        after = reviewed[j][1]
        moved = max(abs(p - q) for p, q in zip(_corners(before), _corners(after), strict=True)) > tolerance_px
        if before.label != after.label:
            kind = EditKind.RELABELLED
        elif moved:
            kind = EditKind.MOVED
        else:
            kind = EditKind.ACCEPTED
        ops.append(
            EditOp(kind, rid, before.label, after.label, iou(before, after), moved, _corners(before), _corners(after))
        )
    for i, (rid, box) in enumerate(predicted):
        if i not in used_p:
            ops.append(EditOp(EditKind.DELETED, rid, box.label, None, None, False, _corners(box), None))
    for j, (rid, box) in enumerate(reviewed):
        if j not in used_r:
            ops.append(EditOp(EditKind.ADDED, rid, None, box.label, None, False, None, _corners(box)))
    return ops


def count_edits(ops: Iterable[EditOp | Mapping[str, Any]]) -> dict[str, int]:
    """{kind: count} over every EditKind, plus `predicted` (boxes the model proposed).

    Takes EditOps or their stored dict form alike."""
    counts = {k.value: 0 for k in EditKind}
    for op in ops:
        counts[EditKind(op.kind if isinstance(op, EditOp) else op["op"]).value] += 1
    counts["predicted"] = sum(counts[k.value] for k in EditKind if k.on_prediction)
    return counts


# ---- the correction statistic ---------------------------------------------------------------


@dataclass(frozen=True)
class CorrectionSummary:
    """How much reviewers had to correct the model, over a set of reviewed photos.

    photos: reviewed photos the figures cover (see `correction_summary` for which).
    excluded_photos / unmeasured_photos: reviewed photos left out (excluded by the reviewer; no
    recorded edit diff). A correction is a predicted box moved, relabelled or deleted.
    """

    photos: int
    excluded_photos: int
    unmeasured_photos: int
    predicted_boxes: int
    corrected_boxes: int
    added_boxes: int
    reviewed_boxes: int  # boxes in the reviewed labels: what drawing every box from scratch would take
    edits: dict[str, int]  # {EditKind value: count}, every kind present
    edits_per_class: dict[str, dict[str, int]]  # {class: {kind: count}}; added boxes under their new class
    correction_rate: float | None  # corrected_boxes / predicted_boxes; None when nothing was predicted
    correction_rate_per_class: dict[str, float]  # over the classes the model predicted
    added_per_photo: float | None  # None when no photos
    operations_per_photo: float | None  # corrections + additions per photo (accepting a box is no operation)
    reviewer_seconds: float  # the sum of the reviews' recorded lead times
    timed_photos: int  # photos whose review time is known

    @property
    def mean_reviewer_seconds(self) -> float | None:
        """Mean review time of a photo, over the photos whose time is known."""
        return self.reviewer_seconds / self.timed_photos if self.timed_photos else None

    @property
    def reviewed_boxes_per_photo(self) -> float | None:
        return self.reviewed_boxes / self.photos if self.photos else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_reviewer_seconds": self.mean_reviewer_seconds}


def correction_summary(reviewed: Iterable[LabelVersion]) -> CorrectionSummary:
    """The one correction statistic over reviewed label versions (their meta carries the edit diff).

    Which photos count: a reviewed version counts when it carries its edit operations
    (`meta["operations"]`, written by every pull) and the reviewer did not exclude the photo.
    Excluded photos are left out of every figure: a reviewer who excludes a photo (blurred,
    atypical) removes or ignores its boxes because the photo leaves the data set, not because the
    model was wrong, so its edits would distort the rate that decides whether to accept the
    remaining predictions. They are counted in `excluded_photos`; versions without operations
    (nothing to measure) in `unmeasured_photos`.
    """
    photos = excluded = unmeasured = timed = reviewed_boxes = 0
    seconds = 0.0
    edits: Counter[EditKind] = Counter()
    predicted_per_class: Counter[str] = Counter()
    corrected_per_class: Counter[str] = Counter()
    edits_per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for version in reviewed:
        if version.excluded:
            excluded += 1
            continue
        operations = version.meta.get("operations")
        if operations is None:
            unmeasured += 1
            continue
        photos += 1
        reviewed_boxes += len(version.boxes)
        lead_time = version.meta.get("lead_time")
        if lead_time is not None:
            seconds += float(lead_time)
            timed += 1
        for op in operations:
            kind = EditKind(op["op"])
            edits[kind] += 1
            label = str((op.get("label") if kind.on_prediction else op.get("new_label")) or "?")
            edits_per_class[label][kind.value] += 1
            if kind.on_prediction:
                predicted_per_class[label] += 1
                corrected_per_class[label] += kind.corrects
    predicted = sum(predicted_per_class.values())
    corrected = sum(corrected_per_class.values())
    return CorrectionSummary(
        photos=photos,
        excluded_photos=excluded,
        unmeasured_photos=unmeasured,
        predicted_boxes=predicted,
        corrected_boxes=corrected,
        added_boxes=edits[EditKind.ADDED],
        reviewed_boxes=reviewed_boxes,
        edits={k.value: edits[k] for k in EditKind},
        edits_per_class={c: dict(sorted(n.items())) for c, n in sorted(edits_per_class.items())},
        correction_rate=corrected / predicted if predicted else None,
        correction_rate_per_class={c: corrected_per_class[c] / n for c, n in sorted(predicted_per_class.items())},
        added_per_photo=edits[EditKind.ADDED] / photos if photos else None,
        operations_per_photo=(corrected + edits[EditKind.ADDED]) / photos if photos else None,
        reviewer_seconds=seconds,
        timed_photos=timed,
    )
