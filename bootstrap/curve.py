"""The learning curve of the loop, per round, read from the store (pure summaries, no I/O beyond it).

Per round r: photos trained on by source (from r's manifest), test-split mAP50 and per-class
sensitivity, and what reviewers did to round r's predictions: correction rate overall and per
class (share of predicted boxes moved, relabelled or deleted), boxes added per photo, box
operations per photo, reviewer time (sum of Label Studio lead times) against the time to draw
every box from scratch (34.5 s a box: 25.5 s drawing + 9 s checking, Su et al. 2012, as used
by Papadopoulos et al. 2017).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from annotator.store import Workspace
from annotator.types import LabelVersion, Source

SCRATCH_SECONDS_PER_BOX = 34.5
CHANGED = ("moved", "relabelled", "deleted")


def review_summary(reviewed: list[LabelVersion]) -> dict[str, Any]:
    """Correction statistics over reviewed label versions (their meta carries the edit operations)."""
    predicted: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    added = 0
    operations = 0
    lead = 0.0
    final_boxes = 0
    for version in reviewed:
        ops = version.meta.get("operations", [])
        for op in ops:
            kind, label = op.get("op"), op.get("label")
            if kind == "added":
                added += 1
                operations += 1
                continue
            predicted[label] += 1
            if kind in CHANGED:
                changed[label] += 1
                operations += 1
        lead += float(version.meta.get("lead_time") or 0.0)
        final_boxes += len(version.boxes)
    n = len(reviewed)
    total_pred = sum(predicted.values())
    return {
        "photos": n,
        "predicted_boxes": total_pred,
        "correction_rate": (sum(changed.values()) / total_pred) if total_pred else None,
        "correction_rate_per_class": {c: changed[c] / predicted[c] for c in sorted(predicted)},
        "added_per_photo": added / n if n else None,
        "operations_per_photo": operations / n if n else None,
        "scratch_operations_per_photo": final_boxes / n if n else None,
        "reviewer_seconds": lead,
        "scratch_seconds": final_boxes * SCRATCH_SECONDS_PER_BOX,
    }


def learning_curve(ws: Workspace) -> list[dict[str, Any]]:
    reviewed_by_round: dict[int, list[LabelVersion]] = defaultdict(list)
    for version in ws.store.current_labels([Source.REVIEWED]).values():
        if version.round is not None and not version.excluded:
            reviewed_by_round[version.round].append(version)
    rows = []
    for row in ws.store.rounds():
        r = row["round"]
        sources: Counter[str] = Counter()
        for _, vid, split in ws.store.manifest(r, row["attempt"]):
            if split != "test":
                version = ws.store.version(vid)
                if version is not None:
                    sources[version.source.value] += 1
        test = row["metrics"].get("test", {})
        summary = review_summary(reviewed_by_round.get(r, []))
        rows.append({
            "round": r,
            "attempt": row["attempt"],
            "stage": row["stage"],
            "model_version": row["model_version"],
            "labelled_manual": sources[Source.MANUAL.value],
            "labelled_reviewed": sources[Source.REVIEWED.value],
            "labelled_auto": sources[Source.AUTO_ACCEPTED.value],
            "test_map50": test.get("map50"),
            "test_sensitivity_per_class": {c: v.get("recall") for c, v in test.get("per_class", {}).items()},
            "predicted_photos": row["info"].get("preannotate", {}).get("predicted"),
            "reviewed_photos": summary["photos"],
            **{k: summary[k] for k in ("correction_rate", "correction_rate_per_class", "added_per_photo",
                                       "operations_per_photo", "scratch_operations_per_photo",
                                       "reviewer_seconds", "scratch_seconds")},
        })
    return rows


def curve_table(curve: list[dict[str, Any]]):
    """The learning curve as a compact rich table (fits 80 columns)."""
    from rich.table import Table

    def f(v: float | None, pct: bool = False) -> str:
        return "-" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")

    from rich import box

    table = Table(title="learning curve", box=box.SIMPLE_HEAD, padding=(0, 1),
                  caption="m/r/a: manual/reviewed/auto-accepted photos trained on; corrected: share of predicted "
                          "boxes reviewers changed; ops/ph: reviewer box operations per photo vs drawing every "
                          "box from scratch (draw/ph); times in minutes")
    for col in ("round", "m/r/a", "mAP50", "reviewed", "corrected", "added/ph", "ops/ph", "draw/ph",
                "review", "draw"):
        table.add_column(col, justify="right")
    for r in curve:
        table.add_row(str(r["round"]), f"{r['labelled_manual']}/{r['labelled_reviewed']}/{r['labelled_auto']}",
                      f(r["test_map50"]), str(r["reviewed_photos"]), f(r["correction_rate"], True),
                      f(r["added_per_photo"]), f(r["operations_per_photo"]), f(r["scratch_operations_per_photo"]),
                      f"{r['reviewer_seconds'] / 60:.1f}", f"{r['scratch_seconds'] / 60:.1f}")
    return table
