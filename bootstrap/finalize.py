"""`annotator finalize`: when reviewers correct few enough of the model's boxes, accept the
remaining predictions as `auto-accepted` labels (provenance kept) and export VOC, YOLO and COCO."""

from __future__ import annotations

from pathlib import Path

from annotator.errors import WorkspaceError
from annotator.store import Workspace
from annotator.types import LabelVersion, Source


def recommend_threshold(remaining_boxes: int, human_boxes: int, tolerated_error_share: float = 0.02) -> float:
    """The correction rate below which auto-accepting the remaining predictions is expected to put
    fewer wrong boxes into the final set than `tolerated_error_share` of all its boxes (2%: below
    the disagreement between two dermatologists, whose accuracy in the study was 0.949)."""
    if remaining_boxes <= 0:
        return 1.0
    total = remaining_boxes + human_boxes
    return float(min(1.0, tolerated_error_share * total / remaining_boxes))


def finalize(ws: Workspace, *, threshold: float | None = None, export_dir: Path | None = None) -> dict:
    """Accept the remaining predictions as `auto-accepted` when the last reviewed batch's correction
    rate is at or below the threshold; refuse with the figures otherwise. Exports VOC, YOLO, COCO."""
    from annotator.export import export_labels
    from review_queue.corrections import correction_summary

    current = ws.store.current_labels()
    reviewed = [v for v in current.values() if v.source is Source.REVIEWED and not v.excluded and v.round is not None]
    remaining = [v for v in current.values() if v.source is Source.MODEL and not v.excluded]
    if not reviewed:
        raise WorkspaceError("no reviewed photos yet: review part of the queue in Label Studio and run "
                             "`annotator review pull` before finalizing")
    last_round = max(v.round for v in reviewed)  # type: ignore[type-var]
    batch = [v for v in reviewed if v.round == last_round]
    summary = correction_summary(batch)
    rate = summary.correction_rate or 0.0
    human_boxes = sum(len(v.boxes) for v in current.values() if v.source is not Source.MODEL and not v.excluded)
    recommended = recommend_threshold(sum(len(v.boxes) for v in remaining), human_boxes)
    used = recommended if threshold is None else threshold
    figures = {"last_reviewed_round": last_round, "reviewed_photos": len(batch), "correction_rate": rate,
               "correction_rate_per_class": summary.correction_rate_per_class, "threshold": used,
               "recommended_threshold": recommended, "remaining_predictions": len(remaining)}
    if rate > used:
        per_class = ", ".join(f"{c} {r:.1%}" for c, r in summary.correction_rate_per_class.items())
        raise WorkspaceError(f"not finalizing: reviewers corrected {rate:.1%} of round {last_round}'s boxes "
                             f"({per_class}), above the threshold {used:.1%} (recommended from the data: "
                             f"{recommended:.1%}); review more photos and run `annotator retrain`")
    accepted = 0
    with ws.store.transaction():
        for version in remaining:
            ws.store.add_label_version(LabelVersion(
                image_path=version.image_path, source=Source.AUTO_ACCEPTED, boxes=version.boxes,
                round=version.round, model_version=version.model_version, uncertainty=version.uncertainty,
                meta={"accepted_from_version": version.id, "correction_rate": rate, "threshold": used}))
            accepted += 1
    ws.sync_voc_mirror()
    out = export_dir or ws.root / "export"
    exports = {fmt: export_labels(ws, fmt, out / fmt) for fmt in ("voc", "yolo", "coco")}
    return {**figures, "auto_accepted": accepted, "exports": exports}
