"""`annotator finalize`: when reviewers correct few enough of the model's boxes, accept the
remaining predictions as `auto-accepted` labels (provenance kept) and export VOC, YOLO and COCO.

The gate is the one correction rate of `review_queue.corrections` over the last reviewed round's
batch, which counts missed lesions: (changed predicted boxes + added boxes) / (predicted + added).
A batch where the model predicted nothing and reviewers drew every lesion is fully corrected
(rate 1.0); a batch with no box at all has an unknown rate, and finalize refuses rather than read
it as 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from annotator.errors import WorkspaceError
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from review_queue.corrections import CorrectionSummary, correction_summary

TOLERATED_ERROR_SHARE = 0.02


def recommend_threshold(
    remaining_boxes: int, human_boxes: int, tolerated_error_share: float = TOLERATED_ERROR_SHARE
) -> float:
    """The correction rate below which auto-accepting the remaining predictions is expected to put
    fewer wrong or missing boxes into the final set than `tolerated_error_share` of all its boxes (2%:
    below the disagreement between two dermatologists, whose accuracy in the study was 0.949).
    remaining_boxes: the boxes expected on the photos to accept (see `expected_remaining_boxes`)."""
    if remaining_boxes <= 0:
        return 1.0
    total = remaining_boxes + human_boxes
    return float(min(1.0, tolerated_error_share * total / remaining_boxes))


def expected_remaining_boxes(remaining_predicted: int, remaining_photos: int, boxes_per_reviewed_photo: float) -> int:
    """How many boxes the photos left to accept should hold: what the model predicted there, or, when
    the model predicts fewer than reviewers found per photo in the last batch, that many (empty
    predictions on photos with lesions are misses to come, not an absence of work)."""
    return max(remaining_predicted, round(remaining_photos * boxes_per_reviewed_photo))


@dataclass(frozen=True)
class FinalizeResult:
    """What finalize decided on: the gate's figures, what it accepted, where it exported."""

    last_reviewed_round: int
    reviewed_photos: int
    predicted_boxes: int  # in the last reviewed batch
    corrected_boxes: int  # predicted boxes moved, relabelled or deleted
    added_boxes: int  # lesions the model missed
    correction_rate: float  # (corrected + added) / (predicted + added)
    correction_rate_per_class: dict[str, float]
    threshold: float
    recommended_threshold: float
    remaining_predictions: int  # photos whose current label is still a prediction
    expected_remaining_boxes: int  # the boxes those photos should hold (recommend_threshold's input)
    auto_accepted: int
    exports: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finalize(ws: Workspace, *, threshold: float | None = None, export_dir: Path | None = None) -> FinalizeResult:
    """Accept the remaining predictions as `auto-accepted` when the last reviewed batch's correction
    rate is at or below the threshold (default: `recommend_threshold` from the data); refuse with
    the figures otherwise, or when the rate is unknown. Exports VOC, YOLO, COCO."""
    from annotator.export import export_labels

    current = ws.store.current_labels()
    remaining = [v for v in current.values() if v.source is Source.MODEL and not v.excluded]
    last_round, batch = _last_reviewed_batch(current)
    summary = correction_summary(batch)
    human_boxes = sum(len(v.boxes) for v in current.values() if v.source is not Source.MODEL and not v.excluded)
    expected = expected_remaining_boxes(
        sum(len(v.boxes) for v in remaining), len(remaining), summary.reviewed_boxes_per_photo or 0.0
    )
    recommended = recommend_threshold(expected, human_boxes)
    used = recommended if threshold is None else threshold
    rate = _passing_rate(summary, last_round, used, recommended)
    accepted = _accept(ws, remaining, rate, used)
    ws.sync_voc_mirror()
    out = export_dir or ws.root / "export"
    exports = {fmt: export_labels(ws, fmt, out / fmt) for fmt in ("voc", "yolo", "coco")}
    return FinalizeResult(
        last_reviewed_round=last_round,
        reviewed_photos=len(batch),
        predicted_boxes=summary.predicted_boxes,
        corrected_boxes=summary.corrected_boxes,
        added_boxes=summary.added_boxes,
        correction_rate=rate,
        correction_rate_per_class=summary.correction_rate_per_class,
        threshold=used,
        recommended_threshold=recommended,
        remaining_predictions=len(remaining),
        expected_remaining_boxes=expected,
        auto_accepted=accepted,
        exports=exports,
    )


def _last_reviewed_batch(current: dict[str, LabelVersion]) -> tuple[int, list[LabelVersion]]:
    """The last round whose predictions reviewers worked on, and their current reviewed labels of it."""
    reviewed = [v for v in current.values() if v.source is Source.REVIEWED and not v.excluded and v.round is not None]
    if not reviewed:
        raise WorkspaceError(
            "no reviewed photos yet: review part of the queue in Label Studio and run "
            "`annotator review pull` before finalizing"
        )
    last_round = max(v.round for v in reviewed if v.round is not None)
    return last_round, [v for v in reviewed if v.round == last_round]


def _passing_rate(summary: CorrectionSummary, last_round: int, used: float, recommended: float) -> float:
    """The batch's correction rate when it is known and at or below the threshold; else the refusal, with figures."""
    if summary.correction_rate is None:
        raise WorkspaceError(
            f"not finalizing: the correction rate of round {last_round}'s reviewed batch is unknown "
            f"({summary.photos} photos with a recorded edit diff, holding no box, predicted or drawn); "
            "review more photos of the queue, pull, and run `annotator finalize` again"
        )
    rate = summary.correction_rate
    if rate > used:
        per_class = ", ".join(f"{c} {r:.1%}" for c, r in summary.correction_rate_per_class.items())
        raise WorkspaceError(
            f"not finalizing: reviewers corrected {rate:.1%} of round {last_round}'s boxes "
            f"({summary.corrected_boxes} of {summary.predicted_boxes} predicted boxes changed, "
            f"{summary.added_boxes} missed lesions added; {per_class}), above the threshold {used:.1%} "
            f"(recommended from the data: {recommended:.1%}); review more photos and run `annotator retrain`"
        )
    return rate


def _accept(ws: Workspace, remaining: list[LabelVersion], rate: float, used: float) -> int:
    """Each remaining prediction becomes an `auto-accepted` version (the prediction and the gate recorded), in one
    transaction; returns how many."""
    with ws.store.transaction():
        for version in remaining:
            ws.store.add_label_version(
                LabelVersion(
                    image_path=version.image_path,
                    source=Source.AUTO_ACCEPTED,
                    boxes=version.boxes,
                    round=version.round,
                    model_version=version.model_version,
                    uncertainty=version.uncertainty,
                    meta={"accepted_from_version": version.id, "correction_rate": rate, "threshold": used},
                )
            )
    return len(remaining)
