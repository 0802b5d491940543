"""The benchmark's outputs: one self-contained HTML report (figures embedded as PNG), a Markdown
table laid out like the study's Table 1, and the full results as JSON.

Table 1's layout: one column group per rater (models, then human readers) with Precision,
Sensitivity and Specificity; one row per lesion class; then the image-level Accuracy row. A model that did not
learn in its budget (`RaterRun.learned` False) is named in the models' table as such, never given a column or a rank.
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
from training.constants import LEARNED_VAL_MAP50
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
    """The raters whose scores on `subset` are results (a model that did not learn is not one)."""
    return [r for r in result.raters if subset in r.results and r.ranked]


def _ms_per_photo(run: RaterRun) -> str:
    ips = run.inference_images_per_second
    return "n/a" if not ips else f"{1000 / ips:.0f}"


def _stop(run: RaterRun) -> str:
    """'23 (patience)': epochs run and why the run ended."""
    if run.stopping is None:
        return _num(run.epochs, "{}")
    reason = run.stopping.reason.value if run.stopping.reason is not None else "?"
    return f"{run.stopping.epochs_run} ({reason})"


def _pretrained(run: RaterRun) -> str:
    start = run.pretrained
    return "scratch" if not start else f"{start['name']} ({str(start['sha256'])[:12]})"


def protocol_line(result: BenchmarkResult) -> str:
    """One sentence: the profile that made the report and what every family shared."""
    s = result.settings
    if s.get("budget_minutes") is None:
        return (
            f"Protocol: none (a smoke run): {s.get('epochs')} epochs at {s.get('imgsz')} px for every model, the "
            "tool's recipe, no early stopping; rows are not results."
        )
    cap = "all" if s.get("max_photos") is None else f"at most {s['max_photos']}"
    return (
        f"Protocol: profile {s.get('profile') or 'custom'}; the same split for every family ({cap} train + val "
        f"photos), {s['imgsz']} px, batch {s.get('batch')}; each trained with its own documented recipe until val "
        f"mAP50-95 stopped improving for {s.get('patience')} epoch(s), within {s['budget_minutes']:g} min per family "
        f"(ceiling {s.get('epochs')} epochs). A model whose best val mAP50 stayed under "
        f"{pct(s.get('learned_val_map50', LEARNED_VAL_MAP50))} % did not learn in the budget and is not ranked."
    )


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


MODEL_COLUMNS = (
    "Model",
    "Family",
    "Parameters",
    "Start",
    "Train time",
    "Epochs (stop)",
    "ms/photo",
    "Best val mAP50",
    "mAP50",
    "mAP50-95",
    "Accuracy (95% CI)",
)


def _model_rows(result: BenchmarkResult) -> list[list[str]]:
    """Every model's cost, how its training ended and its test scores (a model that did not learn: no scores)."""
    rows = [list(MODEL_COLUMNS)]
    for r in result.raters:
        if r.kind != "model":
            continue
        if r.error:
            rows.append([r.name, "failed"] + [""] * 8 + [r.error.replace("|", "/")])
            continue
        best = r.stopping.best_map50 if r.stopping is not None else r.train_metrics.get("val_map50")
        cost = [
            r.name,
            r.family or "",
            f"{r.parameters / 1e6:.2f} M" if r.parameters else "n/a",
            _pretrained(r),
            _seconds(r.train_seconds),
            _stop(r),
            _ms_per_photo(r),
            pct(best),
        ]
        if not r.ranked:
            rows.append(cost + ["did not learn in the budget", "", "not ranked"])
            continue
        res = r.results["all"]
        det, ci = res.detection, res.intervals
        accuracy = f"{pct(res.image_level.accuracy)} ({_interval(ci.accuracy if ci else None)})"
        rows.append(cost + [pct(det.map50 if det else None), pct(det.map50_95 if det else None), accuracy])
    return rows


def ranking_rows(result: BenchmarkResult, subset: str = "all") -> list[list[str]]:
    """The ranked models by image-level accuracy on the test photos: how far each is behind the best, with the
    exact McNemar p-value of that pair, and what each costs."""

    def accuracy(r: RaterRun) -> float:
        return r.results[subset].image_level.accuracy or 0.0

    models = sorted((r for r in _scored(result, subset) if r.kind == "model"), key=lambda r: -accuracy(r))
    head = ["Rank", "Model", "Accuracy (95% CI)", "Behind the best (points)", "McNemar p vs the best"]
    rows = [head + ["Parameters", "Train time", "ms/photo"]]
    pairs = {frozenset((c["a"], c["b"])): c["p_value"] for c in result.comparisons}
    for rank, r in enumerate(models, start=1):
        ci = r.results[subset].intervals
        p_value = pairs.get(frozenset((r.name, models[0].name))) if rank > 1 else None
        rows.append(
            [
                str(rank),
                r.name,
                f"{pct(r.results[subset].image_level.accuracy)} ({_interval(ci.accuracy if ci else None)})",
                "" if rank == 1 else f"{100 * (accuracy(models[0]) - accuracy(r)):.1f}",
                "" if p_value is None else f"{p_value:.4g}",
                f"{r.parameters / 1e6:.2f} M" if r.parameters else "n/a",
                _seconds(r.train_seconds),
                _ms_per_photo(r),
            ]
        )
    return rows


def reader_rows(result: BenchmarkResult, subset: str = "all") -> list[list[str]]:
    """Each human reader beside the best ranked model on the same photos: the study's question (readers vs the
    model), with the reader's accuracy interval and the exact McNemar p-value of the pair. Only the header when
    there is no reader or no ranked model."""
    scored = _scored(result, subset)
    models = [r for r in scored if r.kind == "model"]
    head = ["Reader", "Accuracy (95% CI)", "Best model", "Best model's accuracy", "Reader - model (points)"]
    rows = [head + ["McNemar p"]]
    if not models:
        return rows
    best = max(models, key=lambda r: r.results[subset].image_level.accuracy or 0.0)
    pairs = {frozenset((c["a"], c["b"])): c["p_value"] for c in result.comparisons}
    best_accuracy = best.results[subset].image_level.accuracy or 0.0
    for r in (r for r in scored if r.kind == "reader"):
        accuracy = r.results[subset].image_level.accuracy or 0.0
        ci = r.results[subset].intervals
        p_value = pairs.get(frozenset((r.name, best.name)))
        rows.append(
            [
                r.name,
                f"{pct(accuracy)} ({_interval(ci.accuracy if ci else None)})",
                best.name,
                pct(best_accuracy),
                f"{100 * (accuracy - best_accuracy):+.1f}",
                "" if p_value is None else f"{p_value:.4g}",
            ]
        )
    return rows


NOTHING_RANKED = "No rater to tabulate on these photos: no model learnt in its budget and no reader answered."
MODELS_NOTE = (
    "mAP from pycocotools COCOeval on the exported files in coco/. Epochs (stop): epochs run and why training ended "
    "(patience, budget, epochs ceiling). ms/photo: the model alone on {device}, decoding excluded. Start: the "
    "pretrained checkpoint (sha256 prefix) or scratch."
)


def _curve_lines(result: BenchmarkResult) -> list[str]:
    """'- yolo11n: 0.0 1.3 4.2 ...' for every model whose training recorded a validation curve."""
    return [
        f"- {r.name}: " + " ".join(f"{100 * v:.1f}" for v in r.stopping.curve_map50)
        for r in result.raters
        if r.stopping is not None and r.stopping.curve_map50
    ]


def render_markdown(result: BenchmarkResult) -> str:
    """Table 1 per subset (percent), then the models' cost and detection quality."""
    subset_counts = (
        ", ".join(f"{SUBSET_TITLES[s]}: {n}" for s, n in result.subset_sizes.items() if s != "all")
        or "device subsets: none, no photo's device class is known"
    )
    parts = [
        "# PSL detection benchmark",
        "",
        f"Test photos: {len(result.test_photos)} ({subset_counts}); "
        f"train {result.split_sizes.get('train', 0)}, val {result.split_sizes.get('val', 0)}. "
        "Image level, percent: a class is present on a photo when any box of it scores at or above its "
        "threshold; Accuracy counts a photo right only when the predicted set of classes equals the true set. "
        "Specificity = TN/(TN+FP). n/a: undefined (class absent from these photos, or never predicted).",
        "",
        protocol_line(result),
        "",
    ]
    for subset in result.subset_sizes:
        table = _md_table(table1_rows(result, subset)) if _scored(result, subset) else NOTHING_RANKED
        parts += [f"## Table 1: {SUBSET_TITLES[subset]} (n = {result.subset_sizes[subset]})", "", table, ""]
    ranking = ranking_rows(result)
    if len(ranking) > 1:
        parts += ["## Which model: ranked by accuracy (all test photos)", "", _md_table(ranking), ""]
    readers = reader_rows(result)
    if len(readers) > 1:
        parts += ["## Readers beside the best model (all test photos)", "", _md_table(readers), ""]
    parts += [
        "## Models: cost, training and detection quality (all test photos)",
        "",
        MODELS_NOTE.format(device=result.settings.get("device", "auto")),
        "",
        _md_table(_model_rows(result)),
        "",
    ]
    curves = _curve_lines(result)
    if curves:
        parts += ["## Validation mAP50 per epoch (percent)", "", *curves, ""]
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


def curves_figure(result: BenchmarkResult) -> str | None:
    """Every model's validation mAP50 per epoch (dashed: did not learn), with the learning floor."""
    runs = [r for r in result.raters if r.stopping is not None and r.stopping.curve_map50]
    if not runs:
        return None
    fig = _figure(6.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for r in runs:
        assert r.stopping is not None
        curve = r.stopping.curve_map50
        reason = r.stopping.reason.value if r.stopping.reason is not None else "?"
        label = f"{r.name} (stop: {reason}{'; did not learn' if not r.ranked else ''})"
        ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], "-" if r.ranked else "--", marker=".", label=label)
    floor = result.settings.get("learned_val_map50")
    if floor is not None:
        ax.axhline(100 * floor, color="grey", linewidth=0.8, linestyle=":", label="learning floor")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mAP50 (%)")
    ax.set_title("Learning curves: validation mAP50 per epoch", fontsize=9)
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
    if raters:
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
    if not raters:
        return f"<p>{_esc(NOTHING_RANKED)}</p>"
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
    for r in _scored(result, "all"):
        det = r.results["all"].detection if r.kind == "model" else None
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


def _img(b64: str) -> str:
    return f'<img src="data:image/png;base64,{b64}">'


def render_html(result: BenchmarkResult) -> str:
    """The whole report as one self-contained page: its head, Table 1 per subset, the models, the figures."""
    parts = _html_head(result)
    for subset in result.subset_sizes:
        parts += [f"<h2>Table 1: {SUBSET_TITLES[subset]} (n = {result.subset_sizes[subset]})</h2>"]
        parts.append(_table1_html(result, subset))
        if _scored(result, subset):
            parts += ["<h3>Accuracy with 95% bootstrap intervals</h3>", _html_table(_intervals_rows(result, subset))]
            parts.append(_img(bars_figure(result, subset)))
    parts += _html_models(result)
    parts.append("<h2>Confusion matrices and PR curves (all test photos)</h2>")
    for r in _scored(result, "all"):
        parts.append(f"<h3>{_esc(r.name)}</h3>" + _img(confusion_figure(r, result.classes)))
        pr = pr_figure(r)
        if pr:
            parts.append(_img(pr))
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_head(result: BenchmarkResult) -> list[str]:
    """Title, photo counts, the protocol, the reading rules and the warnings."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>PSL benchmark</title><style>{_CSS}</style>"
        "</head><body><h1>PSL detection benchmark</h1>",
        f"<p>{len(result.test_photos)} test photos; "
        + ", ".join(f"{SUBSET_TITLES[s]}: {n}" for s, n in result.subset_sizes.items())
        + f"; train {result.split_sizes.get('train', 0)}, val {result.split_sizes.get('val', 0)}. Settings: "
        f"{_esc(json.dumps(result.settings))}</p>",
        f"<p><b>{_esc(protocol_line(result))}</b></p>",
        "<p>Image level, percent. A class is present on a photo when any box of it scores at or above its "
        "threshold. Accuracy: a photo is right only when the set of predicted classes equals the true set. "
        "Specificity = TN/(TN+FP) (the study's printed TN/(FP+FN) is a typo). n/a: undefined.</p>",
    ]
    return parts + [f'<p class="warn">{_esc(w)}</p>' for w in result.warnings]


def _html_models(result: BenchmarkResult) -> list[str]:
    """The ranking, the models' cost and training, their learning curves and the paired comparisons."""
    parts = []
    ranking = ranking_rows(result)
    if len(ranking) > 1:
        parts += ["<h2>Which model: ranked by accuracy (all test photos)</h2>", _html_table(ranking)]
    readers = reader_rows(result)
    if len(readers) > 1:
        parts += ["<h2>Readers beside the best model (all test photos)</h2>", _html_table(readers)]
    parts += [
        "<h2>Models: cost, training and detection quality</h2>",
        f"<p>{_esc(MODELS_NOTE.format(device=result.settings.get('device', 'auto')))}</p>",
        _html_table(_model_rows(result)),
        _html_table(_ap_rows(result)),
    ]
    curves = curves_figure(result)
    if curves:
        parts += ["<h2>Learning curves</h2>", _img(curves)]
    if result.comparisons:
        parts += ["<h2>Paired comparisons (all test photos)</h2>", _html_table(_comparison_rows(result))]
    return parts


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
