"""The loop benchmark across data seeds: each seed's figures as one typed record, their mean and spread (min-max
and the sample SD) per figure and round, and a plain line per figure saying on which seeds it gained nothing from
round 0 to the last round. Pure: the loop benchmark collects the records and prints and stores what this returns.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class RoundFigures:
    """One round of one seed: the test split's mAP50 and the fixed evaluation set's figures (None: not measured)."""

    round_no: int
    test_map50: float | None = None
    reviewer_seconds: float | None = None  # fixed set, per photo, modelled
    scratch_seconds: float | None = None  # fixed set, drawing the same photos from scratch
    ratio: float | None = None  # reviewer / scratch seconds
    correction_rate: float | None = None
    auroc: float | None = None  # the review priority against "the reviewer changed something"
    reviewed_f1: float | None = None  # box F1 of the fixed set reviewed from the round's predictions
    scratch_f1: float | None = None  # box F1 of the same photos drawn from scratch by the same reviewer model


@dataclass(frozen=True)
class SeedFigures:
    """What one data seed's run of the loop benchmark measured."""

    seed: int
    rounds: tuple[RoundFigures, ...]
    final_f1: float | None = None  # the finished set's labels against the truth, every photo
    loop_f1: float | None = None  # the same, the labels made in the loop only (hand labels copy the truth)
    auto_accepted_f1: float | None = None  # the photos finalize accepted without a person; None: none accepted

    def value(self, figure: Figure, round_no: int | None) -> float | None:
        """The figure at a round (a per-round figure) or for the finished set (`round_no` None)."""
        if round_no is None:
            return getattr(self, figure.key)
        found = next((r for r in self.rounds if r.round_no == round_no), None)
        return None if found is None else getattr(found, figure.key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedFigures:
        rounds = tuple(RoundFigures(**r) for r in data.get("rounds", ()))
        return cls(**{**data, "rounds": rounds})


class Better(Enum):
    """Which way a figure gains."""

    HIGHER = 1
    LOWER = -1
    NEITHER = 0  # a baseline (drawing from scratch): it has no gain to show


@dataclass(frozen=True)
class Figure:
    key: str  # the field of RoundFigures (per round) or SeedFigures (finished set)
    label: str
    better: Better
    per_round: bool = True
    digits: int = 3


FIGURES = (
    Figure("test_map50", "test mAP50", Better.HIGHER),
    Figure("reviewer_seconds", "fixed set: reviewer s/photo", Better.LOWER, digits=1),
    Figure("scratch_seconds", "fixed set: scratch s/photo", Better.NEITHER, digits=1),
    Figure("ratio", "fixed set: reviewer/scratch seconds", Better.LOWER, digits=2),
    Figure("correction_rate", "fixed set: correction rate", Better.LOWER),
    Figure("auroc", "fixed set: AUROC", Better.HIGHER, digits=2),
    Figure("reviewed_f1", "fixed set: F1 reviewed from predictions", Better.HIGHER),
    Figure("scratch_f1", "fixed set: F1 drawn from scratch", Better.NEITHER),
    Figure("final_f1", "finished set: F1 every photo", Better.NEITHER, per_round=False),
    Figure("loop_f1", "finished set: F1 made in the loop", Better.NEITHER, per_round=False),
    Figure("auto_accepted_f1", "finished set: F1 auto-accepted", Better.NEITHER, per_round=False),
)


@dataclass(frozen=True)
class Spread:
    """A figure over the seeds that measured it."""

    seeds: int
    mean: float
    low: float
    high: float
    sd: float | None  # sample SD (n - 1); None with one seed

    def describe(self, digits: int = 3) -> str:
        """'0.512 (0.480-0.550, SD 0.035, 3 seeds)'."""
        sd = "SD none" if self.sd is None else f"SD {self.sd:.{digits}f}"
        return (f"{self.mean:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f}, {sd}, "
                f"{self.seeds} seed{'s' if self.seeds != 1 else ''})")  # fmt: skip


def spread(values: Sequence[float | None]) -> Spread | None:
    """Mean, min-max and sample SD of the values measured (None left out); None when no seed measured it."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return None
    sd = statistics.stdev(known) if len(known) > 1 else None
    return Spread(len(known), statistics.fmean(known), min(known), max(known), sd)


@dataclass(frozen=True)
class SummaryRow:
    figure: Figure
    round_no: int | None  # None: the finished set
    spread: Spread | None  # None: no seed measured it

    def describe(self) -> str:
        return "none" if self.spread is None else self.spread.describe(self.figure.digits)

    def to_dict(self) -> dict[str, Any]:
        shown = None if self.spread is None else asdict(self.spread)
        return {"figure": self.figure.key, "label": self.figure.label, "round": self.round_no, "spread": shown}


def summarise(records: Sequence[SeedFigures]) -> list[SummaryRow]:
    """One row per figure and round (per-round figures) or per figure (the finished set's)."""
    rounds = sorted({r.round_no for record in records for r in record.rounds})
    rows = []
    for figure in FIGURES:
        for round_no in rounds if figure.per_round else [None]:
            rows.append(SummaryRow(figure, round_no, spread([rec.value(figure, round_no) for rec in records])))
    return rows


def summary_lines(records: Sequence[SeedFigures]) -> list[str]:
    """The table across seeds: figure, round, mean (min-max, sample SD, seeds measured); 'none' if none did."""
    seeds = ", ".join(str(r.seed) for r in records)
    lines = [f"across {len(records)} data seed{'s' if len(records) != 1 else ''} ({seeds}): mean (min-max, sample "
             "SD, seeds that measured it)", f"{'figure':<40} {'round':>5}  mean (min-max, SD, seeds)"]  # fmt: skip
    for row in summarise(records):
        shown_round = "final" if row.round_no is None else str(row.round_no)
        lines.append(f"{row.figure.label:<40} {shown_round:>5}  {row.describe()}")
    return lines


def gain_lines(records: Sequence[SeedFigures]) -> list[str]:
    """Per figure that has a direction: whether it gained from round 0 to the last round on every seed, on some
    seeds only (which, and from what to what) or on none; seeds that lack either figure are not judged. A gain is
    one visible at the digits the figure is printed with."""
    last = max((r.round_no for record in records for r in record.rounds), default=0)
    if last == 0:
        return []
    lines = []
    for figure in (f for f in FIGURES if f.per_round and f.better is not Better.NEITHER):
        pairs = {rec.seed: (rec.value(figure, 0), rec.value(figure, last)) for rec in records}
        judged = {seed: (a, b) for seed, (a, b) in pairs.items() if a is not None and b is not None}
        # a change the table cannot show (under its printed digits, e.g. mAP50 0.000005 -> 0.00002) is no gain
        flat = {
            seed: (a, b) for seed, (a, b) in judged.items() if round((b - a) * figure.better.value, figure.digits) <= 0
        }
        span = f"{figure.label}: from round 0 to round {last}"
        if not judged:
            lines.append(f"{span}: not measured on any seed")
        elif len(flat) == len(judged):
            lines.append(f"{span}: NO GAIN on every seed ({len(flat)} of {len(judged)})")
        elif flat:
            which = ", ".join(
                f"seed {s} ({a:.{figure.digits}f} -> {b:.{figure.digits}f})" for s, (a, b) in flat.items()
            )
            lines.append(f"{span}: no gain on some seeds ({len(flat)} of {len(judged)}): {which}")
        else:
            lines.append(f"{span}: gained on every seed ({len(judged)} of {len(judged)})")
    return lines


def summary_json(records: Sequence[SeedFigures]) -> dict[str, Any]:
    """What summary.json holds: each seed's record, the rows across seeds, and the gain lines."""
    return {
        "seeds": [r.to_dict() for r in records],
        "summary": [row.to_dict() for row in summarise(records)],
        "gains": gain_lines(records),
    }
