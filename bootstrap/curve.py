"""The learning curve of the loop, per round, read from the store (pure summaries, no I/O beyond it).

Per round r: photos trained on by source (from r's manifest), test-split mAP50 and per-class
sensitivity, and what reviewers did to round r's predictions (the one correction statistic,
`review_queue.corrections`): correction rate overall and per class (share of predicted boxes
moved, relabelled or deleted), boxes added per photo, box operations per photo, reviewer time
(sum of review lead times) against the time to draw every box from scratch (34.5 s a box:
25.5 s drawing + 9 s checking, Su et al. 2012, as used by Papadopoulos et al. 2017).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from review_queue.corrections import correction_summary

SCRATCH_SECONDS_PER_BOX = 34.5


@dataclass(frozen=True)
class CurveRow:
    """One round of the learning curve. Review figures are `review_queue.corrections.correction_summary`
    over the round's current reviews (excluded photos left out, as that statistic documents)."""

    round: int
    attempt: int
    stage: str
    model_version: str | None
    labelled_manual: int  # photos trained on, by the source of their label
    labelled_reviewed: int
    labelled_auto: int
    test_map50: float | None
    test_sensitivity_per_class: dict[str, float | None]
    predicted_photos: int | None
    reviewed_photos: int
    correction_rate: float | None
    correction_rate_per_class: dict[str, float]
    added_per_photo: float | None
    operations_per_photo: float | None
    scratch_operations_per_photo: float | None  # boxes a reviewer would have drawn from scratch, per photo
    reviewer_seconds: float
    scratch_seconds: float  # time to draw every reviewed box from scratch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learning_curve(ws: Workspace) -> list[CurveRow]:
    """One row per round (and attempt) in the store, oldest first."""
    reviewed_by_round: dict[int, list[LabelVersion]] = defaultdict(list)
    for version in ws.store.current_labels([Source.REVIEWED]).values():
        if version.round is not None:
            reviewed_by_round[version.round].append(version)
    rows = []
    for row in ws.store.rounds():
        r = row["round"]
        sources: Counter[str] = Counter()
        for _, vid, split in ws.store.manifest(r, row["attempt"]):
            if split != "test":
                trained_on = ws.store.version(vid)
                if trained_on is not None:
                    sources[trained_on.source.value] += 1
        test = row["metrics"].get("test", {})
        review = correction_summary(reviewed_by_round.get(r, []))
        rows.append(
            CurveRow(
                round=r,
                attempt=row["attempt"],
                stage=row["stage"],
                model_version=row["model_version"],
                labelled_manual=sources[Source.MANUAL.value],
                labelled_reviewed=sources[Source.REVIEWED.value],
                labelled_auto=sources[Source.AUTO_ACCEPTED.value],
                test_map50=test.get("map50"),
                test_sensitivity_per_class={c: v.get("recall") for c, v in test.get("per_class", {}).items()},
                predicted_photos=row["info"].get("preannotate", {}).get("predicted"),
                reviewed_photos=review.photos,
                correction_rate=review.correction_rate,
                correction_rate_per_class=review.correction_rate_per_class,
                added_per_photo=review.added_per_photo,
                operations_per_photo=review.operations_per_photo,
                scratch_operations_per_photo=review.reviewed_boxes_per_photo,
                reviewer_seconds=review.reviewer_seconds,
                scratch_seconds=review.reviewed_boxes * SCRATCH_SECONDS_PER_BOX,
            )
        )
    return rows


def curve_table(curve: list[CurveRow]) -> Any:
    """The learning curve as a compact rich table (fits 80 columns)."""
    from rich.table import Table

    def f(v: float | None, pct: bool = False) -> str:
        return "-" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")

    from rich import box

    table = Table(
        title="learning curve",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        caption="m/r/a: manual/reviewed/auto-accepted photos trained on; corrected: share of predicted "
        "boxes reviewers changed; ops/ph: reviewer box operations per photo vs drawing every "
        "box from scratch (draw/ph); times in minutes",
    )
    for col in ("round", "m/r/a", "mAP50", "reviewed", "corrected", "added/ph", "ops/ph", "draw/ph", "review", "draw"):
        table.add_column(col, justify="right")
    for r in curve:
        table.add_row(
            str(r.round),
            f"{r.labelled_manual}/{r.labelled_reviewed}/{r.labelled_auto}",
            f(r.test_map50),
            str(r.reviewed_photos),
            f(r.correction_rate, True),
            f(r.added_per_photo),
            f(r.operations_per_photo),
            f(r.scratch_operations_per_photo),
            f"{r.reviewer_seconds / 60:.1f}",
            f"{r.scratch_seconds / 60:.1f}",
        )
    return table
