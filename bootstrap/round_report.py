"""The one-page round report: the learning curve as a plot (PNG embedded in HTML) and a table."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from annotator.fsutil import atomic_write_text
from bootstrap.curve import CurveRow


def plot_learning_curve(curve: list[CurveRow]) -> bytes:
    """Four panels per round: labelled photos by source, test mAP50, correction rate, operations per photo."""
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
    axes[0].bar(rounds, auto, bottom=[m + v for m, v in zip(manual, reviewed)], label="auto-accepted")
    axes[0].set_title("photos trained on")
    axes[0].legend(fontsize=8)
    axes[1].plot(rounds, [r.test_map50 or 0 for r in curve], marker="o")
    axes[1].set_title("test-split mAP50")
    axes[1].set_ylim(0, 1)
    axes[2].plot(rounds, [r.correction_rate if r.correction_rate is not None else float("nan") for r in curve],
                 marker="o", label="all classes")
    classes = sorted({c for r in curve for c in r.correction_rate_per_class})
    for c in classes:
        axes[2].plot(rounds, [r.correction_rate_per_class.get(c, float("nan")) for r in curve], ls=":", label=c)
    axes[2].set_title("reviewers' correction rate")
    axes[2].set_ylim(0, 1)
    axes[2].legend(fontsize=7, ncol=2)
    axes[3].plot(rounds, [r.operations_per_photo if r.operations_per_photo is not None else float("nan")
                          for r in curve], marker="o", label="reviewing predictions")
    axes[3].plot(rounds, [r.scratch_operations_per_photo if r.scratch_operations_per_photo is not None
                          else float("nan") for r in curve], marker="s", label="drawing from scratch")
    axes[3].set_title("box operations per photo")
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


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def write_round_report(path: Path, *, title: str, curve: list[CurveRow], round_metrics: dict[str, Any]) -> Path:
    png = base64.b64encode(plot_learning_curve(curve)).decode()
    cols = ("round", "labelled_manual", "labelled_reviewed", "labelled_auto", "test_map50", "reviewed_photos",
            "correction_rate", "added_per_photo", "operations_per_photo", "scratch_operations_per_photo",
            "reviewer_seconds", "scratch_seconds")
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(getattr(r, c))}</td>" for c in cols) + "</tr>" for r in curve)
    test = round_metrics.get("test", {})
    per_class = "".join(f"<tr><td>{html.escape(c)}</td><td>{_cell(v.get('precision'))}</td><td>{_cell(v.get('recall'))}"
                        f"</td><td>{_cell(v.get('map50'))}</td></tr>" for c, v in test.get("per_class", {}).items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Test split (fixed at bootstrap, never trained on): mAP50 {_cell(test.get('map50'))}, mAP50-95
{_cell(test.get('map50_95'))} on {_cell(test.get('images'))} photos.</p>
<img alt="learning curve" src="data:image/png;base64,{png}" style="max-width:100%">
<h2>Learning curve</h2><table><tr>{head}</tr>{body}</table>
<h2>This round, per class on the test split</h2>
<table><tr><th>class</th><th>precision</th><th>sensitivity</th><th>mAP50</th></tr>{per_class}</table>
<details><summary>raw metrics</summary><pre>{html.escape(json.dumps(round_metrics, indent=1, default=str))}</pre></details>
</body></html>"""
    atomic_write_text(path, page)
    return path
