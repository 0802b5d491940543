"""What reviewing from predictions does to label quality (issue 21 item 4), for the loop benchmark: box F1
(IoU 0.5, same class) of the finished set's labels against the truth by where each label came from, and per class
(i) the fixed set reviewed from predictions, (ii) the same photos drawn from scratch by the same reviewer model,
(iii) the auto-accepted photos and the finished set, with the classes that miss a goal marked.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.boxes import clip_box
from annotator.types import LabelVersion, Source
from bootstrap.fixed_eval import FixedSetRound, box_counts_by_class
from review_queue.review_meta import ReviewMeta
from review_queue.simulate import read_truth
from training.metrics import BoxF1, box_f1, box_f1_by_class

QUALITY_MARGIN = 0.01  # the goal: F1 reviewed from predictions >= F1 drawn from scratch - this
FINISHED_F1_GOAL = 0.95  # the goal for the finished set, overall and on the auto-accepted photos alone

Counts = dict[str, tuple[int, int, int]]  # class -> (tp, fp, fn) of one photo


class Provenance(enum.Enum):
    """Where a final label came from; the value is how the tables name it."""

    ALL = "all photos"
    LOOP = "made in the loop (all but the hand labels, which copy the truth)"
    REVIEWED = "reviewed from predictions"
    BLIND = "drawn blind (audit or control arm)"
    AUTO = "auto-accepted (no person saw them)"
    UNREVIEWED = "still unreviewed predictions"


def provenance(version: LabelVersion) -> Provenance | None:
    """The group of a final label besides ALL and LOOP (None: a hand label, a copy of the truth: under ALL only)."""
    meta = ReviewMeta.from_dict(version.meta) if version.source is Source.REVIEWED else None
    if meta is not None and (meta.acceptance_audit or meta.arm):
        return Provenance.BLIND
    if meta is not None and meta.operations is not None:
        return Provenance.REVIEWED
    if version.source is Source.AUTO_ACCEPTED:
        return Provenance.AUTO
    if version.source is Source.MODEL:
        return Provenance.UNREVIEWED
    return None


@dataclass(frozen=True)
class FinalSet:
    """The finished set's labels against the truth, per provenance: overall and per class."""

    overall: dict[Provenance, BoxF1]
    by_class: dict[Provenance, dict[str, BoxF1]]


def final_set(ws: Any, truth_dir: Path, *, seed: int = 0) -> FinalSet:
    """Every current, not excluded label of the workspace `ws` scored against `truth_dir` (photos without truth are
    left out), grouped by provenance; an empty group has F1 None ('none')."""
    photos: dict[Provenance, list[Counts]] = {group: [] for group in Provenance}
    classes = ws.config.class_table
    for path, version in ws.store.labels.current_labels().items():
        record, truth = ws.store.labels.image(path), read_truth(truth_dir, path, classes)
        if version.excluded or record is None or truth is None:
            continue
        truth = [clip_box(b, record.width, record.height) for b in truth]
        counts = box_counts_by_class(version.boxes, truth)
        photos[Provenance.ALL].append(counts)
        group = provenance(version)
        if group is not None:
            photos[group].append(counts)
            photos[Provenance.LOOP].append(counts)
    names = list(ws.config.classes)
    return FinalSet(
        overall={g: box_f1([_total(c) for c in photos[g]], seed=seed) for g in Provenance},
        by_class={g: box_f1_by_class(photos[g], classes=names, seed=seed) for g in Provenance},
    )


def _total(counts: Counts) -> tuple[int, int, int]:
    """A photo's (tp, fp, fn) over its classes."""
    tp, fp, fn = (sum(c[k] for c in counts.values()) for k in range(3))
    return tp, fp, fn


@dataclass(frozen=True)
class ClassQuality:
    """One class (or every class, `label` "all") under item 4's goals."""

    label: str
    reviewed: BoxF1 | None  # (i) the fixed set reviewed from the last round's predictions
    scratch: BoxF1 | None  # (ii) the same photos drawn from scratch by the same reviewer model
    auto: BoxF1 | None  # (iii) the auto-accepted photos of the finished set
    finished: BoxF1 | None  # the finished set's labels made in the loop (hand labels copy the truth)

    def goals(self) -> dict[str, bool]:
        """Each goal judged on this class -> whether it is met (a goal with a side not measured is not judged)."""
        out = {}
        reviewed, scratch = _f1(self.reviewed), _f1(self.scratch)
        if reviewed is not None and scratch is not None:
            out[f"(i) >= (ii) - {QUALITY_MARGIN}"] = reviewed >= scratch - QUALITY_MARGIN
        for name, f in (("(iii)", _f1(self.auto)), ("finished", _f1(self.finished))):
            if f is not None:
                out[f"{name} >= {FINISHED_F1_GOAL}"] = f >= FINISHED_F1_GOAL
        return out


def _f1(result: BoxF1 | None) -> float | None:
    return None if result is None else result.f1


def class_quality(fixed: FixedSetRound | None, final: FinalSet | None) -> list[ClassQuality]:
    """Every class's row, after a first row for all classes together; a side not measured is None."""
    rows = [
        ClassQuality(
            "all",
            fixed.reviewed_f1 if fixed else None,
            fixed.scratch_f1 if fixed else None,
            final.overall[Provenance.AUTO] if final else None,
            final.overall[Provenance.LOOP] if final else None,
        )
    ]
    labels = dict.fromkeys([*(final.by_class[Provenance.LOOP] if final else {}),
                            *(fixed.reviewed_f1_by_class if fixed else {})])  # fmt: skip
    for label in labels:
        rows.append(
            ClassQuality(
                label,
                fixed.reviewed_f1_by_class.get(label) if fixed else None,
                fixed.scratch_f1_by_class.get(label) if fixed else None,
                final.by_class[Provenance.AUTO].get(label) if final else None,
                final.by_class[Provenance.LOOP].get(label) if final else None,
            )
        )
    return rows


def cell(result: BoxF1 | None) -> str:
    """'0.953 [0.931-0.972] n41' (n: true boxes), 'none' for an empty or unmeasured group, '-' for no box."""
    if result is None or not result.photos:
        return "none"
    if result.f1 is None:
        return "-"
    interval = f" [{result.interval[0]:.3f}-{result.interval[1]:.3f}]" if result.interval else ""
    return f"{result.f1:.3f}{interval} n{result.tp + result.fn}"


def class_table_lines(rows: Sequence[ClassQuality], round_no: int | None) -> list[str]:
    """Item 4's table per class, a class that misses a goal marked with what it misses."""
    fixed_from = "no round" if round_no is None else f"round {round_no}"
    lines = [
        f"label quality per class (box F1, IoU 0.5, [95% CI], n = true boxes): (i) fixed set reviewed from "
        f"{fixed_from}'s predictions, (ii) the same photos drawn from scratch by the same reviewer model, (iii) "
        f"auto-accepted photos, and the finished set's labels made in the loop; goals: (i) >= (ii) - "
        f"{QUALITY_MARGIN}, (iii) and the finished set >= {FINISHED_F1_GOAL}",
        f"{'class':>8} {'(i) reviewed':>26} {'(ii) scratch':>26} {'(iii) auto-accepted':>26} "
        f"{'finished set':>26}  goals",
    ]
    for row in rows:
        goals = row.goals()
        missed = [goal for goal, met in goals.items() if not met]
        verdict = "MISSED " + ", ".join(missed) if missed else ("met" if goals else "not judged")
        lines.append(f"{row.label:>8} {cell(row.reviewed):>26} {cell(row.scratch):>26} {cell(row.auto):>26} "
                     f"{cell(row.finished):>26}  {verdict}")  # fmt: skip
    return lines
