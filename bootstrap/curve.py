"""The learning curve of the loop, per round, read from the store (pure summaries, no I/O beyond it).

Per round r: photos trained on by source (from r's manifest); test-split mAP50 with its 95%
bootstrap interval and the split's photo and box counts (`bootstrap.evaluation`); what reviewers
did to round r's predictions (the one correction statistic, `review_queue.corrections`: the
correction rate counts changed predicted boxes and missed lesions); and what it cost them against
drawing the same photos from scratch, both priced by the one time model (`review_queue.effort`),
in box operations and seconds, per photo and per class. Lead times Label Studio measured are kept
beside the model's figures, labelled as measured.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from annotator.rounds import RoundRecord
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from bootstrap.evaluation import RoundMap, comparison_warning, format_interval, round_map
from bootstrap.uncertainty import uncertainty_auroc
from review_queue.corrections import correction_summary
from review_queue.review_meta import ReviewMeta


@dataclass(frozen=True)
class CurveRow:
    """One round of the learning curve. Review figures are `review_queue.corrections.correction_summary`
    over the round's current reviews (excluded photos left out, as that statistic documents); reviewer
    and scratch figures are priced by `review_queue.effort` on the same photos."""

    round: int
    attempt: int
    stage: str
    model_version: str | None
    labelled_manual: int  # photos trained on, by the source of their label
    labelled_reviewed: int
    labelled_auto: int
    test_map50: float | None  # pycocotools on the test split (the detector's own figure for older rounds)
    test_map50_interval: tuple[float, float] | None  # 95% bootstrap interval over test photos
    test_photos: int | None
    test_boxes: int | None
    test_sensitivity_per_class: dict[str, float | None]
    predicted_photos: int | None
    reviewed_photos: int
    correction_rate: float | None  # (changed predicted + added) / (predicted + added)
    correction_rate_per_class: dict[str, float]
    added_per_photo: float | None
    operations_per_photo: float | None  # reviewer box operations (moved, relabelled, deleted, added) per photo
    scratch_operations_per_photo: float | None  # boxes drawn from scratch on the same photos, per photo
    reviewer_seconds: float  # MODELLED (review_queue.effort), photos priced: effort_photos
    scratch_seconds: float  # MODELLED: drawing every final box of the same photos, plus each photo's look
    reviewer_seconds_per_photo: float | None
    scratch_seconds_per_photo: float | None
    effort_photos: int
    effort_per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # ClassEffort as dicts
    lead_time_seconds: float = 0.0  # MEASURED by Label Studio (for simulated reviews: the time model again)
    timed_photos: int = 0
    simulated_photos: int = 0
    uncertainty_auroc: float | None = None  # how well the review priority found the photos reviewers changed

    @property
    def test(self) -> RoundMap | None:
        if self.test_map50 is None and self.test_photos is None:
            return None
        return RoundMap(self.test_photos or 0, self.test_boxes, self.test_map50, self.test_map50_interval)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learning_curve(ws: Workspace) -> list[CurveRow]:
    """One row per round (and attempt) in the store, oldest first."""
    reviewed_by_round: dict[int, list[LabelVersion]] = defaultdict(list)
    for version in ws.store.labels.current_labels([Source.REVIEWED]).values():
        if version.round is not None:
            reviewed_by_round[version.round].append(version)
    sizes = {r.path: (r.width, r.height) for r in ws.store.labels.images()}
    rows = []
    for record in ws.store.rounds.rounds():
        r = record.round_no
        sources: Counter[str] = Counter()
        for _, vid, split in ws.store.rounds.manifest(r, record.attempt):
            if split != "test":
                trained_on = ws.store.labels.version(vid)
                if trained_on is not None:
                    sources[trained_on.source.value] += 1
        headline = round_map(record)
        review = correction_summary(reviewed_by_round.get(r, []), sizes=sizes)
        effort = review.effort
        rows.append(
            CurveRow(
                round=r,
                attempt=record.attempt,
                stage=record.stage.value,
                model_version=record.model_version,
                labelled_manual=sources[Source.MANUAL.value],
                labelled_reviewed=sources[Source.REVIEWED.value],
                labelled_auto=sources[Source.AUTO_ACCEPTED.value],
                test_map50=headline.map50 if headline else None,
                test_map50_interval=headline.interval if headline else None,
                test_photos=headline.photos if headline else None,
                test_boxes=headline.boxes if headline else None,
                test_sensitivity_per_class=_test_sensitivity(record),
                predicted_photos=record.predicted_photos,
                reviewed_photos=review.photos,
                correction_rate=review.correction_rate,
                correction_rate_per_class=review.correction_rate_per_class,
                added_per_photo=review.added_per_photo,
                operations_per_photo=effort.reviewer_operations_per_photo,
                scratch_operations_per_photo=effort.scratch_operations_per_photo,
                reviewer_seconds=effort.reviewer_seconds,
                scratch_seconds=effort.scratch_seconds,
                reviewer_seconds_per_photo=effort.reviewer_seconds_per_photo,
                scratch_seconds_per_photo=effort.scratch_seconds_per_photo,
                effort_photos=effort.photos,
                effort_per_class={c: asdict(e) for c, e in effort.per_class.items()},
                lead_time_seconds=review.lead_time_seconds,
                timed_photos=review.timed_photos,
                simulated_photos=review.simulated_photos,
                uncertainty_auroc=_uncertainty_auroc(ws, reviewed_by_round.get(r, [])),
            )
        )
    return rows


def _test_sensitivity(record: RoundRecord) -> dict[str, float | None]:
    """Each class's sensitivity on the test split: ours (`test_split`), else the detector's own recall."""
    ours = (record.test_split or {}).get("per_class")
    if ours is not None:
        return {c: v.get("sensitivity") for c, v in ours.items()}
    theirs = (record.trained.test if record.trained else None) or {}
    return {c: v.get("recall") for c, v in theirs.get("per_class", {}).items()}


def _uncertainty_auroc(ws: Workspace, reviewed: list[LabelVersion]) -> float | None:
    """AUROC of the reviewed photos' prediction uncertainty for "the reviewer changed something"."""
    metas = (ReviewMeta.from_dict(v.meta) for v in reviewed)
    parents = {m.prediction_version_id for m in metas if m.prediction_version_id}
    predictions = {vid: ws.store.labels.version(vid) for vid in parents}
    return uncertainty_auroc(reviewed, {vid: p.uncertainty if p else None for vid, p in predictions.items()})


def curve_warning(curve: list[CurveRow]) -> str | None:
    """The test split's warning for this curve (`bootstrap.evaluation.comparison_warning`), or None."""
    return comparison_warning([(r.round, r.test) for r in curve])


def measured_lines(curve: list[CurveRow]) -> list[str]:
    """Rounds reviewed by people: Label Studio's measured lead time next to the modelled cost."""
    out = []
    for r in curve:
        if r.timed_photos and r.reviewed_photos > r.simulated_photos and r.reviewer_seconds_per_photo is not None:
            out.append(
                f"round {r.round}: measured lead time {r.lead_time_seconds / r.timed_photos:.1f} s/photo "
                f"(Label Studio, {r.timed_photos} photos) vs modelled {r.reviewer_seconds_per_photo:.1f} s"
            )
    return out


def curve_table(curve: list[CurveRow]) -> Any:
    """The learning curve as a compact rich table (fits 80 columns); the caption carries the test
    split's size and the warning when it cannot compare rounds."""
    from rich import box
    from rich.table import Table

    def f(v: float | None, pct: bool = False, digits: int = 2) -> str:
        return "-" if v is None else (f"{v:.0%}" if pct else f"{v:.{digits}f}")

    def pair(a: float | None, b: float | None, digits: int) -> str:
        return "-" if a is None or b is None else f"{a:.{digits}f}/{b:.{digits}f}"

    last = next((r for r in reversed(curve) if r.test_photos is not None), None)
    split = (
        (
            f"test split {last.test_photos} photos"
            + (f", {last.test_boxes} boxes" if last.test_boxes is not None else "")
            + "; "
        )
        if last
        else ""
    )
    caption = (
        f"{split}m/r/a: manual/reviewed/auto-accepted photos trained on; corr.: (changed predicted + added) "
        "/ (predicted + added) boxes; ops/ph and s/ph: reviewer / drawing the same photos from scratch "
        "(box operations; modelled seconds, review_queue.effort); AUROC: how well the review priority ranked "
        "the photos reviewers changed above those they accepted (0.5 = chance; - when they changed all or none)"
    )
    extra = [*measured_lines(curve)]
    warning = curve_warning(curve)
    if warning:
        extra.append(f"[bold yellow]{warning}[/]")
    if extra:
        caption += "\n" + "\n".join(extra)
    table = Table(title="learning curve", box=box.SIMPLE_HEAD, padding=(0, 1), caption=caption)
    for col in ("round", "m/r/a", "mAP50 [95% CI]", "rev'd", "corr.", "ops/ph", "s/ph", "AUROC"):
        table.add_column(col, justify="right")
    for r in curve:
        table.add_row(
            str(r.round),
            f"{r.labelled_manual}/{r.labelled_reviewed}/{r.labelled_auto}",
            format_interval(r.test),
            str(r.reviewed_photos),
            f(r.correction_rate, True),
            pair(r.operations_per_photo, r.scratch_operations_per_photo, 1),
            pair(r.reviewer_seconds_per_photo, r.scratch_seconds_per_photo, 0),
            f(r.uncertainty_auroc),
        )
    return table


def effort_verdict(row: CurveRow) -> str | None:
    """One plain sentence on whether round `row.round`'s predictions saved the reviewer time (modelled,
    same photos), or None before any review of them."""
    if not row.effort_photos or row.reviewer_seconds_per_photo is None or row.scratch_seconds_per_photo is None:
        return None
    rev, scr = row.reviewer_seconds_per_photo, row.scratch_seconds_per_photo
    head = (
        f"round {row.round}'s predictions, {row.effort_photos} photos reviewed: {rev:.1f} s per photo "
        f"reviewing vs {scr:.1f} s drawing the same photos from scratch (modelled, review_queue.effort)"
    )
    if rev < scr:
        return f"{head}: the model saved {1 - rev / scr:.0%} of the drawing time"
    return f"{head}: the model saved no time; reviewers redrew what it missed or got wrong"
