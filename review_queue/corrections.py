"""What reviewers did to the model's boxes, independent of any annotation server: the edit diff
(prediction -> reviewed labels, one `EditOp` per box) and THE correction statistic over reviewed
label versions, which review status, the learning curve and finalize all read from here.

One definition of "changed": a predicted box the reviewer kept overlaps its reviewed box with
IoU >= ACCEPT_IOU (review_queue.constants: 0.7, about the agreement of two people boxing the same
lesion) and has the same class, or it was changed. Pull's diff, the simulated reviewer and the rate
all use it. The edits themselves (`EditKind`, `EditOp`) are the vocabulary of `review_queue.edits`.

Pure: no I/O. The diff is stored with every pulled review (`ReviewMeta.operations`, and its counts
in `meta["edits"]`); the statistic reads the operations back, so it needs no server either.
Seconds come from the one time model, `review_queue.effort`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from annotator.boxes import iou, match_boxes
from annotator.types import Box, LabelVersion
from review_queue.constants import ACCEPT_IOU, MATCH_IOU
from review_queue.edits import EditKind, EditOp
from review_queue.effort import Effort, PhotoReview, effort
from review_queue.review_meta import ReviewMeta

# ---- the edit diff ---------------------------------------------------------------------------


def _corners(box: Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def diff_regions(
    predicted: Sequence[tuple[str, Box]],
    reviewed: Sequence[tuple[str, Box]],
    *,
    iou_threshold: float = MATCH_IOU,
) -> list[EditOp]:
    """The edits that turn a prediction into an annotation; both are (region id, box) in order.

    Regions are paired by id first (an annotation server keeps a prediction's region id when the
    reviewer keeps the region), then remaining ones by class-agnostic IoU >= iou_threshold.
    A pair is relabelled when the class changed (and `moved` when also IoU < ACCEPT_IOU), moved
    when IoU < ACCEPT_IOU, else accepted: a nudge that leaves the box as good as it was is no
    correction. Unpaired predicted regions were deleted, unpaired reviewed regions added.
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
        overlap = iou(before, after)
        moved = overlap < ACCEPT_IOU
        if before.label != after.label:
            kind = EditKind.RELABELLED
        elif moved:
            kind = EditKind.MOVED
        else:
            kind = EditKind.ACCEPTED
        ops.append(EditOp(kind, rid, before.label, after.label, overlap, moved, _corners(before), _corners(after)))
    for i, (rid, box) in enumerate(predicted):
        if i not in used_p:
            ops.append(EditOp(EditKind.DELETED, rid, box.label, None, None, False, _corners(box), None))
    for j, (rid, box) in enumerate(reviewed):
        if j not in used_r:
            ops.append(EditOp(EditKind.ADDED, rid, None, box.label, None, False, None, _corners(box)))
    return ops


# ---- the correction statistic ---------------------------------------------------------------


@dataclass(frozen=True)
class CorrectionSummary:
    """How much reviewers had to correct the model, over a set of reviewed photos.

    photos: reviewed photos the figures cover (see `correction_summary` for which).
    excluded_photos / unmeasured_photos: reviewed photos left out (excluded by the reviewer; no
    recorded edit diff).

    The correction rate counts misses: (changed predicted boxes + added boxes) / (predicted boxes +
    added boxes), where a changed box was moved (IoU < ACCEPT_IOU), relabelled or deleted, and an
    added box is a lesion the model missed. It is None (unknown) when the photos hold no box at
    all, predicted or drawn. A batch where the model predicted nothing and reviewers drew every
    box has rate 1.0: nothing of the model's survived.
    """

    photos: int
    excluded_photos: int
    unmeasured_photos: int
    predicted_boxes: int
    corrected_boxes: int  # predicted boxes moved, relabelled or deleted
    added_boxes: int  # boxes the model missed
    reviewed_boxes: int  # boxes in the reviewed labels: what drawing every box from scratch would take
    edits: dict[str, int]  # {EditKind value: count}, every kind present
    edits_per_class: dict[str, dict[str, int]]  # {class: {kind: count}}; added boxes under their new class
    correction_rate: float | None  # (corrected + added) / (predicted + added); None when both are 0
    correction_rate_per_class: dict[str, float]  # the same per class, over classes predicted or added
    added_per_photo: float | None  # None when no photos
    operations_per_photo: float | None  # corrections + additions per photo (accepting a box is no operation)
    effort: Effort  # the one time model (review_queue.effort): reviewer vs scratch, same photos
    lead_time_seconds: float  # MEASURED: the sum of the reviews' recorded lead times (Label Studio's clock)
    timed_photos: int  # photos whose lead time is recorded
    simulated_photos: int  # reviews made by the simulated reviewer (their lead time IS the time model)

    @property
    def mean_lead_time_seconds(self) -> float | None:
        """Mean recorded review time of a photo, over the photos whose time is known."""
        return self.lead_time_seconds / self.timed_photos if self.timed_photos else None

    @property
    def reviewed_boxes_per_photo(self) -> float | None:
        return self.reviewed_boxes / self.photos if self.photos else None

    @property
    def real_reviews(self) -> bool:
        """Some reviews come from people, so their measured lead times mean something beside the model."""
        return self.photos > self.simulated_photos

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["effort"] = self.effort.to_dict()
        return {**out, "mean_lead_time_seconds": self.mean_lead_time_seconds}


def correction_summary(
    reviewed: Iterable[LabelVersion], *, sizes: Mapping[str, tuple[int, int]] | None = None
) -> CorrectionSummary:
    """The one correction statistic over reviewed label versions (their meta carries the edit diff).

    Which photos count: a reviewed version counts when it carries its edit operations
    (`ReviewMeta.operations`, written by every pull) and the reviewer did not exclude the photo.
    Excluded photos are left out of every figure: a reviewer who excludes a photo (blurred,
    atypical) removes or ignores its boxes because the photo leaves the data set, not because the
    model was wrong, so its edits would distort the rate that decides whether to accept the
    remaining predictions. They are counted in `excluded_photos`; versions without operations
    (nothing to measure) in `unmeasured_photos`.

    sizes: photo path -> (width, height), which the time model needs to price a drawn box; a photo
    without a known size (or an added box without its corners) is left out of `effort` only
    (`effort.photos` says how many were priced).
    """
    photos = excluded = unmeasured = timed = simulated = reviewed_boxes = 0
    seconds = 0.0
    edits: Counter[EditKind] = Counter()
    boxes_per_class: Counter[str] = Counter()  # predicted + added
    against_per_class: Counter[str] = Counter()  # changed + added
    predicted = corrected = 0
    edits_per_class: dict[str, Counter[str]] = defaultdict(Counter)
    priced: list[PhotoReview] = []
    for version in reviewed:
        if version.excluded:
            excluded += 1
            continue
        meta = ReviewMeta.from_dict(version.meta)
        if meta.operations is None:
            unmeasured += 1
            continue
        photos += 1
        reviewed_boxes += len(version.boxes)
        simulated += meta.simulated
        if meta.lead_time is not None:
            seconds += meta.lead_time
            timed += 1
        size = (sizes or {}).get(version.image_path)
        drawn_known = all(op.kind is not EditKind.ADDED or op.after for op in meta.operations)
        if size is not None and drawn_known:  # a drawn box is priced by its size
            priced.append(PhotoReview(meta.operations, version.boxes, int(size[0]), int(size[1])))
        for op in meta.operations:
            kind, label = op.kind, op.box_class
            edits[kind] += 1
            edits_per_class[label][kind.value] += 1
            boxes_per_class[label] += 1
            against_per_class[label] += kind.counts_against_model
            predicted += kind.on_prediction
            corrected += kind.corrects
    added = edits[EditKind.ADDED]
    return CorrectionSummary(
        photos=photos,
        excluded_photos=excluded,
        unmeasured_photos=unmeasured,
        predicted_boxes=predicted,
        corrected_boxes=corrected,
        added_boxes=added,
        reviewed_boxes=reviewed_boxes,
        edits={k.value: edits[k] for k in EditKind},
        edits_per_class={c: dict(sorted(n.items())) for c, n in sorted(edits_per_class.items())},
        correction_rate=(corrected + added) / (predicted + added) if predicted + added else None,
        correction_rate_per_class={c: against_per_class[c] / n for c, n in sorted(boxes_per_class.items())},
        added_per_photo=added / photos if photos else None,
        operations_per_photo=(corrected + added) / photos if photos else None,
        effort=effort(priced),
        lead_time_seconds=seconds,
        timed_photos=timed,
        simulated_photos=simulated,
    )
