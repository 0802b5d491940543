"""The label audit's report: `reports/label-issues.csv` (every audited photo, worst first) and
`reports/label-issues.html` (the flagged photos drawn: the current label beside the model's suggestion).

The page embeds its thumbnails (no network, no fonts fetched: PIL's built-in bitmap font). It shows face photos:
it stays in the workspace, like every report (docs/privacy.md).
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from annotator.fsutil import atomic_write_text
from annotator.images import decode_displayed
from annotator.store import Workspace
from annotator.types import Box
from bootstrap.label_audit import LabelAudit
from review_queue.label_audit import DoubtedLabel
from training.label_quality import PhotoQuality

CSV_NAME = "label-issues.csv"
HTML_NAME = "label-issues.html"
NO_BOX_ISSUE = "<li>no single box below the issue line</li>"
THUMB_SIDE = 360  # pixels of a drawn photo's long side
CSV_FIELDS = (
    "rank",
    "photo",
    "split",
    "label_version",
    "score",
    "flagged",
    "cleanlab_issue",
    "issue_kinds",
    "worst_box",
    "label_boxes",
    "suggestion_boxes",
)


def flagged(audit: LabelAudit, top: float) -> list[PhotoQuality]:
    """The worst `top` share of the audited photos (at least one), worst first."""
    return list(audit.qualities[: max(1, round(top * len(audit.qualities)))])


def _boxes_text(boxes: Sequence[Box]) -> str:
    return "; ".join(f"{b.label} {b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}" for b in boxes)


def write_issue_csv(ws: Workspace, audit: LabelAudit, top: float) -> Path:
    """reports/label-issues.csv: one row per audited photo, worst first; `flagged` marks the top share."""
    cut = len(flagged(audit, top))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for rank, q in enumerate(audit.qualities, start=1):
        version = audit.versions[q.photo]
        worst = q.issues[0] if q.issues else None
        writer.writerow(
            {
                "rank": rank,
                "photo": q.photo,
                "split": audit.splits.get(q.photo, ""),
                "label_version": version.id,
                "score": f"{q.score:.4f}",
                "flagged": int(rank <= cut),
                "cleanlab_issue": int(q.flagged),
                "issue_kinds": "; ".join(k.value for k in q.kinds),
                "worst_box": ""
                if worst is None
                else f"{worst.kind.value} {_boxes_text([worst.box])} ({worst.score:.2f})",
                "label_boxes": _boxes_text(version.boxes),
                "suggestion_boxes": _boxes_text(q.suggestion),
            }
        )
    path = ws.reports_dir / CSV_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.getvalue())
    return path


def drawn_thumbnail(ws: Workspace, photo: str, boxes: Sequence[Box]) -> str:
    """The photo with `boxes` drawn in their class colours, as a base64 JPEG of long side THUMB_SIDE."""
    rgb, sx, sy = decode_displayed(ws.image_path(photo), THUMB_SIDE)
    img = Image.fromarray(rgb)
    scale = THUMB_SIDE / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    classes = ws.config.class_table
    for b in boxes:
        xy = [b.x1 / sx * scale, b.y1 / sy * scale, b.x2 / sx * scale, b.y2 / sy * scale]
        colour = classes.describe(b.label).colour if b.label in classes.names else "#ffffff"
        draw.rectangle(xy, outline=colour, width=2)
        draw.text((xy[0] + 2, xy[1] + 1), b.label if b.score is None else f"{b.label} {b.score:.2f}", fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode()


def write_issue_html(ws: Workspace, audit: LabelAudit, top: float) -> Path:
    """reports/label-issues.html: each flagged photo, its current label beside the model's suggestion."""
    shown = flagged(audit, top)
    cards = "\n".join(_card(ws, rank, q, audit) for rank, q in enumerate(shown, start=1))
    oos = audit.out_of_sample
    test_note = "audited (its labels are included)" if audit.test_audited else "NOT audited (left out: --skip-test)"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Label audit</title>
<style>body{{font-family:sans-serif;margin:2em}}.card{{margin:1.5em 0;border-top:1px solid #ccc;padding-top:.8em}}
.pair img{{margin-right:1em;border:1px solid #999}}.kind{{color:#a60;font-weight:bold}}</style></head><body>
<h1>Label audit: the {len(shown)} photos whose labels look most likely wrong</h1>
<p>{len(audit.qualities)} hand-labelled and reviewed photos scored by cleanlab ObjectLab against out-of-sample
predictions ({len(oos.trained_on)} folds; a fold's model never saw the photos it predicted). The test split is
{test_note}. Left: the current label. Right: the model's suggestion (its boxes scoring at least the suggestion
floor, with their scores). Nothing is changed: `annotator audit labels --push` serves these photos to the
seniors in Label Studio.</p>
{cards}
</body></html>
"""
    path = ws.reports_dir / HTML_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page)
    return path


def _card(ws: Workspace, rank: int, q: PhotoQuality, audit: LabelAudit) -> str:
    """One flagged photo: its rank, score, issues and the two drawings."""
    version = audit.versions[q.photo]
    issues = "".join(
        f"<li><span class='kind'>{html.escape(i.kind.value)}</span> {html.escape(_boxes_text([i.box]))} "
        f"(box score {i.score:.2f})</li>"
        for i in q.issues
    )
    label_img = drawn_thumbnail(ws, q.photo, version.boxes)
    suggestion_img = drawn_thumbnail(ws, q.photo, q.suggestion)
    return (
        f"<div class='card'><h3>{rank}. {html.escape(q.photo)}</h3>"
        f"<p>score {q.score:.3f} (1 clean, 0 surely wrong); split {html.escape(audit.splits.get(q.photo, '-'))}; "
        f"label version {version.id} ({html.escape(version.source.value)})</p><ul>{issues or NO_BOX_ISSUE}</ul>"
        f"<div class='pair'><img alt='label' src='data:image/jpeg;base64,{label_img}'>"
        f"<img alt='suggestion' src='data:image/jpeg;base64,{suggestion_img}'></div></div>"
    )


def doubted_labels(audit: LabelAudit, top: float) -> list[DoubtedLabel]:
    """The flagged photos as the label audit project serves them, worst first."""
    return [
        DoubtedLabel(
            photo=q.photo,
            label=audit.versions[q.photo],
            suggestion=q.suggestion,
            issue="; ".join(k.value for k in q.kinds),
            score=q.score,
        )
        for q in flagged(audit, top)
    ]
