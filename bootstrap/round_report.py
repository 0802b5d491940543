"""The one-page round report: the learning curve as a plot (PNG embedded in HTML) and tables.

Every mAP50 carries its 95% bootstrap interval and the test split's size, with the warning when the
split cannot compare rounds (`bootstrap.evaluation`); reviewer effort and drawing from scratch are
priced by the one time model (`review_queue.effort`) on the same photos; a class never predicted on
the test split has precision "n/a", not a number.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from annotator.fsutil import atomic_write_text
from annotator.rounds import RoundRecord
from bootstrap.curve import CurveRow, curve_warning, measured_lines
from bootstrap.evaluation import describe_map, round_map
from review_queue.agreement import AgreementSummary, agreement_lines


def _nan(v: float | None) -> float:
    return float("nan") if v is None else v


def plot_learning_curve(curve: list[CurveRow]) -> bytes:
    """Four panels per round: labelled photos by source, test mAP50 with its interval, correction rate,
    modelled seconds per photo (reviewer vs drawing the same photos from scratch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in curve]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    manual = [r.labelled_manual for r in curve]
    reviewed = [r.labelled_reviewed for r in curve]
    auto = [r.labelled_auto for r in curve]
    axes[0].bar(rounds, manual, label="manual")
    axes[0].bar(rounds, reviewed, bottom=manual, label="reviewed")
    axes[0].bar(rounds, auto, bottom=[m + v for m, v in zip(manual, reviewed, strict=True)], label="auto-accepted")
    axes[0].set_title("photos trained on")
    axes[0].legend(fontsize=8)
    maps = [_nan(r.test_map50) for r in curve]
    low = [m - r.test_map50_interval[0] if r.test_map50_interval else 0.0 for m, r in zip(maps, curve, strict=True)]
    high = [r.test_map50_interval[1] - m if r.test_map50_interval else 0.0 for m, r in zip(maps, curve, strict=True)]
    axes[1].errorbar(rounds, maps, yerr=[low, high], marker="o", capsize=4)
    last = curve[-1] if curve else None
    axes[1].set_title("test mAP50, 95% CI" + (f" ({last.test_photos} photos)" if last and last.test_photos else ""))
    axes[1].set_ylim(0, 1)
    axes[2].plot(rounds, [_nan(r.correction_rate) for r in curve], marker="o", label="all classes")
    classes = sorted({c for r in curve for c in r.correction_rate_per_class})
    for c in classes:
        axes[2].plot(rounds, [r.correction_rate_per_class.get(c, float("nan")) for r in curve], ls=":", label=c)
    axes[2].set_title("correction rate (misses count)")
    axes[2].set_ylim(0, 1)
    axes[2].legend(fontsize=7, ncol=2)
    axes[3].plot(rounds, [_nan(r.reviewer_seconds_per_photo) for r in curve], marker="o", label="reviewing predictions")
    axes[3].plot(rounds, [_nan(r.scratch_seconds_per_photo) for r in curve], marker="s", label="drawing from scratch")
    axes[3].set_title("modelled seconds per photo, same photos")
    axes[3].set_ylim(bottom=0)
    axes[3].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(rounds)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _cell(value: Any, missing: str = "-") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{value[0]:.3f}-{value[1]:.3f}"
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    return (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
        + "</table>"
    )


def per_class_rows(record: RoundRecord) -> tuple[list[str], list[list[str]]]:
    """This round's per-class test figures: ours (boxes at the pre-annotation threshold) when recorded;
    else the detector's own, where precision at recall 0 is shown n/a (Ultralytics reports 1.000 there:
    it interpolates precision with left=1 above a class's highest score)."""
    ours = (record.test_split or {}).get("per_class")
    if ours is not None:
        head = ["class", "truth boxes", "predicted boxes", "precision", "sensitivity", "AP50"]
        return head, [
            [
                html.escape(c),
                str(v["truth_boxes"]),
                str(v["predicted_boxes"]),
                _cell(v["precision"], "n/a"),
                _cell(v["sensitivity"], "n/a"),
                _cell(v["ap50"]),
            ]
            for c, v in ours.items()
        ]
    theirs = ((record.trained.test if record.trained else None) or {}).get("per_class", {})
    head = ["class", "precision", "sensitivity", "mAP50"]
    return head, [
        [
            html.escape(c),
            "n/a" if not v.get("recall") else _cell(v.get("precision")),
            _cell(v.get("recall")),
            _cell(v.get("map50")),
        ]
        for c, v in theirs.items()
    ]


def calibration_line(record: RoundRecord) -> str:
    """What the review priority read the scores through this round (bootstrap.uncertainty.ScoreCalibration)."""
    if record.trained is None or not record.trained.calibration_recorded:
        return "Review priority: this round recorded no score calibration (trained before calibration existed)."
    found = record.trained.calibration
    if not found:
        return (
            "Review priority: no score calibration this round (the val split held no box the reviewer would keep, "
            "or none it would fix); calibrated-joint reads the raw scores, as joint does."
        )
    own = sorted(found.get("per_class") or {})
    return (
        f"Review priority: scores calibrated on {found.get('boxes', 0)} val boxes (the chance a box is right as "
        "drawn; bootstrap.uncertainty), "
        + (f"own maps for {', '.join(own)}, one map for the other classes." if own else "one map for every class.")
    )


_CURVE_COLUMNS = (
    "round",
    "labelled_manual",
    "labelled_reviewed",
    "labelled_auto",
    "test_map50",
    "test_map50_interval",
    "test_photos",
    "test_boxes",
    "reviewed_photos",
    "correction_rate",
    "added_per_photo",
    "operations_per_photo",
    "scratch_operations_per_photo",
    "reviewer_seconds_per_photo",
    "scratch_seconds_per_photo",
    "uncertainty_auroc",
)


def audit_line(record: RoundRecord) -> str:
    """What finalize's acceptance audit of this round's predictions found ('' before any)."""
    audit = record.acceptance_audit
    if not audit:
        return ""
    plan, outcome = audit.get("plan") or {}, audit.get("outcome") or {}
    rate = audit.get("correction_rate")
    return (
        f"Acceptance audit (finalize): {plan.get('sample_size')} of {plan.get('population')} photos to accept drawn at "
        f"random (seed {plan.get('seed')}) and boxed blind; {outcome.get('message', '')}; "
        f"photos accepted: {audit.get('accepted', 0)}. Last reviewed batch's correction rate (information only): "
        + ("none" if rate is None else f"{rate:.1%}")
        + "."
    )


def curve_html(curve: list[CurveRow]) -> str:
    """The learning curve as an HTML table, one row per round."""
    rows = [[_cell(getattr(r, c)) for c in _CURVE_COLUMNS] for r in curve]
    return _table([c.replace("_", " ") for c in _CURVE_COLUMNS], rows)


def effort_html(curve: list[CurveRow]) -> str:
    """Reviewer against scratch effort per round and class, as an HTML table."""
    rows = [
        [
            str(r.round),
            html.escape(c),
            str(int(e["reviewer_operations"])),
            str(int(e["scratch_operations"])),
            f"{e['reviewer_seconds']:.0f}",
            f"{e['scratch_seconds']:.0f}",
        ]
        for r in curve
        for c, e in r.effort_per_class.items()
    ]
    return _table(["round", "class", "reviewer operations", "scratch operations", "reviewer s", "scratch s"], rows)


def write_round_report(
    path: Path,
    *,
    title: str,
    curve: list[CurveRow],
    record: RoundRecord,
    agreement: AgreementSummary | None = None,
) -> Path:
    """The page for round `record` with the curve so far. agreement: the double-review figures
    (review_queue.adjudication.agreement_summary), when any photo has two."""
    png = base64.b64encode(plot_learning_curve(curve)).decode()
    head, class_rows = per_class_rows(record)
    warning = curve_warning(curve)
    notes = [
        *measured_lines(curve),
        calibration_line(record),
        audit_line(record),
        *(agreement_lines(agreement) if agreement is not None else []),
    ]
    test = (record.trained.test if record.trained else None) or {}
    raw = html.escape(json.dumps(record.metrics(), indent=1, default=str))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}.warn{{color:#a60;font-weight:bold}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Test split (fixed at bootstrap, never trained on): {html.escape(describe_map(round_map(record)))}
(pycocotools; percentile bootstrap over photos). The detector's own figures: mAP50 {_cell(test.get("map50"))},
mAP50-95 {_cell(test.get("map50_95"))}.</p>
{f'<p class="warn">{html.escape(warning)}</p>' if warning else ""}
<img alt="learning curve" src="data:image/png;base64,{png}" style="max-width:100%">
<h2>Learning curve</h2>{curve_html(curve)}
<p>Correction rate: (predicted boxes changed + missed lesions added) / (predicted + added) boxes. Operations and
seconds: the reviewer's edits against drawing every final box of the same photos from scratch, one time model
(review_queue.effort: verify 2 s, move 6, relabel 3, delete 2, draw 7-35 by size, 3 per photo).</p>
{"".join(f"<p>{html.escape(n)}</p>" for n in notes)}
<h2>Effort per class (modelled seconds; the per-photo look is in no class)</h2>
{effort_html(curve)}
<h2>This round, per class on the test split</h2>{_table(head, class_rows)}
<details><summary>raw metrics</summary><pre>{raw}</pre></details>
</body></html>"""
    atomic_write_text(path, page)
    return path
