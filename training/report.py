"""The benchmark's outputs: one self-contained HTML report (figures embedded as PNG), a Markdown
table laid out like the study's Table 1, and the full results as JSON.

Table 1's layout: one column group per rater (models, then human readers) with Precision,
Sensitivity and Specificity; one row per lesion class; then the image-level Accuracy row.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.classes import ClassTable
from annotator.fsutil import atomic_write_text
from training.metrics import BACKGROUND, NONE_PREDICTED, SEVERAL_PREDICTED
from training.results import BenchmarkResult, RaterRun

SUBSET_TITLES = {"all": "All test photos", "dslr": "DSLR photos", "phone": "Phone photos"}
METRICS = (("precision", "Precision"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"))


def pct(value: float | None, digits: int = 1) -> str:
    """0.8531 -> '85.3'; undefined (None/NaN) -> 'n/a'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def _interval(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"{pct(ci[0])}-{pct(ci[1])}"


def _seconds(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _full_name(label: str) -> str:
    return ClassTable((label,)).describe(label).full_name if label else label


def _scored(result: BenchmarkResult, subset: str) -> list[RaterRun]:
    return [r for r in result.raters if subset in r.results]


# ---- Markdown --------------------------------------------------------------------------------


def table1_rows(result: BenchmarkResult, subset: str = "all") -> list[list[str]]:
    """Table 1 as rows of cells: [group header row, metric header row, class rows..., Accuracy row]."""
    raters = _scored(result, subset)
    groups = [""] + [cell for r in raters for cell in (r.name, "", "")]
    metric_row = ["Subtype"] + [title for _ in raters for _, title in METRICS]
    rows = [groups, metric_row]
    for label in result.classes:
        row = [f"{_full_name(label)} ({label})"]
        for r in raters:
            scores = r.results[subset].image_level.per_class[label]
            row += [pct(getattr(scores, key)) for key, _ in METRICS]
        rows.append(row)
    macro = ["Mean over present classes"]
    for r in raters:
        macro += [pct(r.results[subset].image_level.macro[key]) for key, _ in METRICS]
    rows.append(macro)
    accuracy = ["Accuracy"]
    for r in raters:
        accuracy += [pct(r.results[subset].image_level.accuracy), "", ""]
    rows.append(accuracy)
    return rows


def _md_table(rows: Sequence[Sequence[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _model_rows(result: BenchmarkResult) -> list[list[str]]:
    rows = [
        [
            "Model",
            "Family",
            "Parameters",
            "Train time",
            "Epochs",
            "Inference img/s",
            "mAP50",
            "mAP50-95",
            "Accuracy (95% CI)",
        ]
    ]
    for r in result.raters:
        if r.kind != "model":
            continue
        if r.error:
            rows.append([r.name, "failed", "", "", "", "", "", "", r.error.replace("|", "/")])
            continue
        res = r.results["all"]
        det, ci = res.detection, res.intervals
        rows.append(
            [
                r.name,
                r.family or "",
                f"{r.parameters / 1e6:.2f} M" if r.parameters else "n/a",
                _seconds(r.train_seconds),
                _num(r.epochs, "{}"),
                _num(r.inference_images_per_second),
                pct(det.map50 if det else None),
                pct(det.map50_95 if det else None),
                f"{pct(res.image_level.accuracy)} ({_interval(ci.accuracy if ci else None)})",
            ]
        )
    return rows


def render_markdown(result: BenchmarkResult) -> str:
    """Table 1 per subset (percent), then the models' cost and detection quality."""
    subset_counts = ", ".join(f"{SUBSET_TITLES[s]}: {n}" for s, n in result.subset_sizes.items() if s != "all")
    parts = [
        "# PSL detection benchmark",
        "",
        f"Test photos: {len(result.test_photos)} ({subset_counts}); "
        f"train {result.split_sizes.get('train', 0)}, val {result.split_sizes.get('val', 0)}. "
        "Image level, percent: a class is present on a photo when any box of it scores at or above its "
        "threshold; Accuracy counts a photo right only when the predicted set of classes equals the true set. "
        "Specificity = TN/(TN+FP). n/a: undefined (class absent from these photos, or never predicted).",
        "",
    ]
    for subset in result.subset_sizes:
        parts += [
            f"## Table 1: {SUBSET_TITLES[subset]} (n = {result.subset_sizes[subset]})",
            "",
            _md_table(table1_rows(result, subset)),
            "",
        ]
    parts += [
        "## Models: cost and detection quality (all test photos)",
        "",
        "mAP from pycocotools COCOeval on the exported files in coco/; inference img/s excludes decoding.",
        "",
        _md_table(_model_rows(result)),
        "",
    ]
    if result.warnings:
        parts += ["## Warnings", ""] + [f"- {w}" for w in result.warnings] + [""]
    return "\n".join(parts)


# ---- figures ---------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height))


def _heatmap(ax, matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str) -> None:
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    top = matrix.max() if matrix.size else 0
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")


def confusion_figure(run: RaterRun, classes: Sequence[str], subset: str = "all") -> str:
    res = run.results[subset]
    panels = [
        (
            res.image_confusion,
            list(classes),
            list(classes) + [NONE_PREDICTED, SEVERAL_PREDICTED],
            "photos with one lesion type",
        )
    ]
    if res.box_confusion is not None:
        labels = list(classes) + [BACKGROUND]
        panels.insert(0, (res.box_confusion, labels, labels, "boxes (IoU >= 0.5)"))
    fig = _figure(4.6 * len(panels), 4.2)
    for k, (matrix, rows, cols, title) in enumerate(panels):
        _heatmap(fig.add_subplot(1, len(panels), k + 1), matrix, rows, cols, f"{run.name}: {title}")
    return _png(fig)


def pr_figure(run: RaterRun, subset: str = "all") -> str | None:
    det = run.results[subset].detection
    if det is None or not det.pr_curves:
        return None
    fig = _figure(4.5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for label, (recall, precision) in det.pr_curves.items():
        ap = det.per_class[label]["ap50"]
        ax.plot(recall, precision, label=f"{label} (AP50 {pct(ap)})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{run.name}: PR at IoU 0.5 (COCOeval)", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def bars_figure(result: BenchmarkResult, subset: str = "all") -> str:
    raters = _scored(result, subset)
    fig = _figure(11, 3.4)
    x = np.arange(len(result.classes))
    width = 0.8 / max(1, len(raters))
    for m, (key, title) in enumerate(METRICS):
        ax = fig.add_subplot(1, 3, m + 1)
        for k, r in enumerate(raters):
            values = [getattr(r.results[subset].image_level.per_class[c], key) for c in result.classes]
            ax.bar(
                x + k * width - 0.4 + width / 2, [np.nan if v is None else 100 * v for v in values], width, label=r.name
            )
        ax.set_xticks(x, result.classes, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(title, fontsize=9)
    fig.axes[0].set_ylabel("percent")
    fig.axes[-1].legend(fontsize=7, loc="lower right")
    return _png(fig)


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{color:#a40}img{max-width:100%}"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _html_table(rows: Sequence[Sequence[str]], header_rows: int = 1) -> str:
    out = ["<table>"]
    for n, row in enumerate(rows):
        tag = "th" if n < header_rows else "td"
        out.append("<tr>" + "".join(f"<{tag}>{_esc(c)}</{tag}>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _table1_html(result: BenchmarkResult, subset: str) -> str:
    raters = _scored(result, subset)
    rows = table1_rows(result, subset)
    head = (
        "<tr><th></th>"
        + "".join(f'<th colspan="3">{_esc(r.name)}{" (reader)" if r.kind == "reader" else ""}</th>' for r in raters)
        + "</tr>"
    )
    head += "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in rows[1]) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows[2:-1])
    acc = rows[-1]
    body += (
        "<tr><td><b>Accuracy</b></td>"
        + "".join(
            f'<td colspan="3" style="text-align:center"><b>{_esc(acc[1 + 3 * k])}</b></td>' for k in range(len(raters))
        )
        + "</tr>"
    )
    return f"<table>{head}{body}</table>"


def _intervals_rows(result: BenchmarkResult, subset: str) -> list[list[str]]:
    rows = [["Rater", "Photos", "Accuracy", "95% CI", "Mean sensitivity", "95% CI", "Mean specificity", "95% CI"]]
    for r in _scored(result, subset):
        res = r.results[subset]
        ci = res.intervals
        rows.append(
            [
                r.name,
                str(len(res.photos)),
                pct(res.image_level.accuracy),
                _interval(ci.accuracy if ci else None),
                pct(res.image_level.macro["sensitivity"]),
                _interval(ci.macro_sensitivity if ci else None),
                pct(res.image_level.macro["specificity"]),
                _interval(ci.macro_specificity if ci else None),
            ]
        )
    return rows


def _ap_rows(result: BenchmarkResult) -> list[list[str]]:
    rows = [["Model", "mAP50", "mAP50-95"] + [f"AP50 {c}" for c in result.classes]]
    for r in result.raters:
        det = r.results["all"].detection if r.kind == "model" and "all" in r.results else None
        if det is not None:
            rows.append(
                [r.name, pct(det.map50), pct(det.map50_95)] + [pct(det.per_class[c]["ap50"]) for c in result.classes]
            )
    return rows


def _comparison_rows(result: BenchmarkResult) -> list[list[str]]:
    rows = [["A", "B", "Photos", "Accuracy A", "Accuracy B", "Only A right", "Only B right", "p (exact McNemar)"]]
    for c in result.comparisons:
        rows.append(
            [
                c["a"],
                c["b"],
                str(c["n_photos"]),
                pct(c["accuracy_a"]),
                pct(c["accuracy_b"]),
                str(c["only_a"]),
                str(c["only_b"]),
                f"{c['p_value']:.4g}",
            ]
        )
    return rows


def render_html(result: BenchmarkResult) -> str:
    img = lambda b64: f'<img src="data:image/png;base64,{b64}">'  # noqa: E731
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>PSL benchmark</title><style>{_CSS}</style>"
        "</head><body><h1>PSL detection benchmark</h1>",
        f"<p>{len(result.test_photos)} test photos; "
        + ", ".join(f"{SUBSET_TITLES[s]}: {n}" for s, n in result.subset_sizes.items())
        + f"; train {result.split_sizes.get('train', 0)}, val {result.split_sizes.get('val', 0)}. Settings: "
        f"{_esc(json.dumps(result.settings))}</p>",
        "<p>Image level, percent. A class is present on a photo when any box of it scores at or above its "
        "threshold. Accuracy: a photo is right only when the set of predicted classes equals the true set. "
        "Specificity = TN/(TN+FP) (the study's printed TN/(FP+FN) is a typo). n/a: undefined.</p>",
    ]
    for w in result.warnings:
        parts.append(f'<p class="warn">{_esc(w)}</p>')
    for subset in result.subset_sizes:
        parts += [
            f"<h2>Table 1: {SUBSET_TITLES[subset]} (n = {result.subset_sizes[subset]})</h2>",
            _table1_html(result, subset),
            "<h3>Accuracy with 95% bootstrap intervals</h3>",
            _html_table(_intervals_rows(result, subset)),
            img(bars_figure(result, subset)),
        ]
    parts += [
        "<h2>Models: cost and detection quality</h2>",
        "<p>mAP: pycocotools COCOeval (area all, 100 detections) on the files in <code>coco/</code>. "
        "Inference images/s: the model alone, decoding excluded.</p>",
        _html_table(_model_rows(result)),
        _html_table(_ap_rows(result)),
    ]
    if result.comparisons:
        parts += ["<h2>Paired comparisons (all test photos)</h2>", _html_table(_comparison_rows(result))]
    parts.append("<h2>Confusion matrices and PR curves (all test photos)</h2>")
    for r in result.raters:
        if "all" not in r.results:
            continue
        parts.append(f"<h3>{_esc(r.name)}</h3>" + img(confusion_figure(r, result.classes)))
        pr = pr_figure(r)
        if pr:
            parts.append(img(pr))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(result: BenchmarkResult, out_dir: Path) -> BenchmarkResult:
    """Write report.html, table1.md and benchmark.json; return the result with their paths."""
    out_dir = Path(out_dir)
    files = {
        "html": str(out_dir / "report.html"),
        "markdown": str(out_dir / "table1.md"),
        "json": str(out_dir / "benchmark.json"),
    }
    result = dataclasses.replace(result, files=files)
    atomic_write_text(Path(files["markdown"]), render_markdown(result))
    atomic_write_text(Path(files["json"]), json.dumps(result.to_dict(), indent=1, default=str))
    atomic_write_text(Path(files["html"]), render_html(result))
    return result
