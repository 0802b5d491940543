"""Pure conversions between our records and Label Studio's JSON: boxes <-> rectangle results,
the labeling config, task payloads with predictions, and the edit diff prediction -> annotation.

No I/O here. Label Studio stores rectangles in percent of the displayed photo (top-left
origin); `annotator.boxes` does the arithmetic, this module the JSON shapes around it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from annotator.boxes import box_to_ls_percent, iou, ls_percent_to_box, match_boxes
from annotator.classes import ClassTable
from annotator.types import Box, ImageRecord, LabelVersion

# Names of the labeling-config tags. Pull and push both speak these; change them together.
LABEL_TAG = "label"  # RectangleLabels
IMAGE_TAG = "image"  # Image, value="$image"
EXCLUDE_TAG = "exclude"  # Choices: reasons to leave a photo out of the data set
EXCLUDE_CHOICES: tuple[tuple[str, str], ...] = (
    ("blurred", "Blurred or badly lit: lesions cannot be judged"),
    ("atypical", "Atypical: not a benign pigmented lesion case (leave it out of training)"),
)
PHOTO_FIELD = "photo"  # task data: the photo's path relative to the image root (our key)
VERSION_FIELD = "label_version"  # task data: the label-version id first pushed with the task

# The simulated reviewer annotates as this Label Studio user, so its work is never mistaken
# for a dermatologist's (see review_queue.simulate).
SIMULATED_REVIEWER = "simulated-reviewer@annotator.local"

# An unknown uncertainty sorts in the middle of the queue.
_NEUTRAL_UNCERTAINTY = 0.5


# ---- labeling config -------------------------------------------------------------------

def labeling_config(classes: ClassTable) -> str:
    """The Label Studio labeling config: one image, six hot-keyed rectangle labels, an exclude choice.

    Label values are the short class names (what we store); the full names are in the legend
    and the hover hints.
    """
    legend = "  ·  ".join(f"{classes.describe(n).hotkey} {n} = {classes.describe(n).full_name}"
                          for n in classes.names)
    labels = "\n".join(
        f'    <Label value="{_attr(n)}" background="{_attr(classes.describe(n).colour)}"'
        + (f' hotkey="{_attr(classes.describe(n).hotkey)}"' if classes.describe(n).hotkey else "")
        + f' hint="{_attr(classes.describe(n).full_name)}"/>'
        for n in classes.names)
    choices = "\n".join(f'    <Choice value="{_attr(v)}" hint="{_attr(h)}"/>' for v, h in EXCLUDE_CHOICES)
    return (
        "<View>\n"
        f'  <Header value="{_attr(legend)}" size="6"/>\n'
        f'  <Image name="{IMAGE_TAG}" value="${IMAGE_TAG}" zoom="true" zoomControl="true" rotateControl="false"/>\n'
        f'  <RectangleLabels name="{LABEL_TAG}" toName="{IMAGE_TAG}" strokeWidth="2" opacity="0.15">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        '  <Header value="Exclude this photo?" size="6"/>\n'
        f'  <Choices name="{EXCLUDE_TAG}" toName="{IMAGE_TAG}" choice="multiple" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _attr(text: str) -> str:
    return html.escape(str(text), quote=True)


# ---- boxes <-> rectangle results -----------------------------------------------------------

def region_id(version_id: int | None, index: int) -> str:
    """Deterministic region id of a predicted box: kept regions carry it into the annotation."""
    return f"v{version_id if version_id is not None else 0}-{index}"


def box_to_result(box: Box, width: int, height: int, rid: str) -> dict[str, Any]:
    """One rectangle result (prediction or annotation) for a box on a width x height photo."""
    value = box_to_ls_percent(box, width, height)
    value["rectanglelabels"] = [box.label]
    out: dict[str, Any] = {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": LABEL_TAG,
        "to_name": IMAGE_TAG,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": value,
    }
    if box.score is not None:
        out["score"] = float(box.score)
    return out


def result_to_box(result: dict[str, Any], width: int, height: int) -> Box:
    """The box of a rectangle result, in pixels of a width x height photo (no validation)."""
    value = result["value"]
    labels = value.get("rectanglelabels") or [""]
    score = result.get("score")
    return ls_percent_to_box(str(labels[0]), value, width, height,
                             score=None if score is None else float(score))


def local_file_url(document_path: str) -> str:
    """Label Studio's URL for a file under its LOCAL_FILES_DOCUMENT_ROOT (POSIX relative path)."""
    return "/data/local-files/?d=" + quote(document_path, safe="/")


def prediction_score(uncertainty: float | None) -> float:
    """Prediction-level score = 1 - uncertainty, so ascending score (Label Studio's queue) = most uncertain first."""
    u = _NEUTRAL_UNCERTAINTY if uncertainty is None or not math.isfinite(uncertainty) else uncertainty
    return round(1.0 - min(1.0, max(0.0, float(u))), 6)


def model_version_of(version: LabelVersion) -> str:
    """The model_version string a prediction carries (the round's name when the version has none)."""
    return version.model_version or f"round-{version.round or 0:03d}"


def prediction_payload(record: ImageRecord, version: LabelVersion) -> dict[str, Any]:
    """A prediction object (without `task`) for a `model` label version."""
    return {
        "model_version": model_version_of(version),
        "score": prediction_score(version.uncertainty),
        "result": [box_to_result(b, record.width, record.height, region_id(version.id, i))
                   for i, b in enumerate(version.boxes)],
    }


def task_payload(record: ImageRecord, version: LabelVersion, document_path: str) -> dict[str, Any]:
    """One task for bulk import: the photo (served as a local file) and its prediction.

    document_path: the photo's path relative to the server's LOCAL_FILES_DOCUMENT_ROOT.
    """
    return {
        "data": {IMAGE_TAG: local_file_url(document_path), PHOTO_FIELD: record.path, VERSION_FIELD: version.id},
        "predictions": [prediction_payload(record, version)],
    }


# ---- reading an annotation -------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedResult:
    """What an annotation (or prediction) result list says, checked against the photo.

    regions: (region id, box in displayed pixels, canonical label) in result order.
    problems: human-readable reasons the result cannot be merged; empty when it can.
    """

    regions: tuple[tuple[str, Box], ...]
    excluded: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # result types we do not use (reported, harmless)


def parse_result(result: Iterable[dict[str, Any]], *, width: int, height: int, classes: ClassTable,
                 tolerance_px: float = 1.0) -> ParsedResult:
    """Validate and convert a Label Studio result list on a width x height photo.

    Unknown label names, a missing or different original size, rotated, empty or out-of-photo
    boxes (beyond tolerance_px) are problems. Boxes within the tolerance are clipped to the photo.
    """
    regions: list[tuple[str, Box]] = []
    excluded: list[str] = []
    problems: list[str] = []
    ignored: list[str] = []
    for i, item in enumerate(result or []):
        rid = str(item.get("id") or f"#{i}")
        kind = item.get("type")
        if kind == "choices" and item.get("from_name") == EXCLUDE_TAG:
            excluded.extend(str(c) for c in (item.get("value") or {}).get("choices") or [])
            continue
        if kind != "rectanglelabels":
            ignored.append(f"region {rid}: result type {kind!r} is not used")
            continue
        value = item.get("value") or {}
        labels = value.get("rectanglelabels") or []
        if len(labels) != 1:
            problems.append(f"region {rid}: has {len(labels)} labels, expected exactly one")
            continue
        label = classes.normalise(str(labels[0]))
        if label is None:
            problems.append(f"region {rid}: unknown label {labels[0]!r} (known: {', '.join(classes.names)})")
            continue
        ow, oh = item.get("original_width"), item.get("original_height")
        if not ow or not oh:
            problems.append(f"region {rid}: original_width/original_height missing, cannot place the box")
            continue
        if int(ow) != int(width) or int(oh) != int(height):
            problems.append(f"region {rid}: drawn on a {ow}x{oh} image but the photo is {width}x{height} "
                            "(EXIF orientation?)")
            continue
        if float(value.get("rotation") or 0.0) % 360.0 != 0.0:
            problems.append(f"region {rid}: rotated by {value.get('rotation')} degrees; boxes must be upright")
            continue
        try:
            box = result_to_box(item, width, height)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"region {rid}: malformed value ({exc})")
            continue
        if not all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2)):
            problems.append(f"region {rid}: coordinates are not finite")
            continue
        if (box.x1 < -tolerance_px or box.y1 < -tolerance_px or box.x2 > width + tolerance_px
                or box.y2 > height + tolerance_px):
            problems.append(f"region {rid}: box ({box.x1:.1f}, {box.y1:.1f}, {box.x2:.1f}, {box.y2:.1f}) lies "
                            f"outside the {width}x{height} photo")
            continue
        box = Box(label, min(max(box.x1, 0.0), width), min(max(box.y1, 0.0), height),
                  min(max(box.x2, 0.0), width), min(max(box.y2, 0.0), height), score=box.score)
        if box.width <= 0 or box.height <= 0:
            problems.append(f"region {rid}: empty box")
            continue
        regions.append((rid, box))
    return ParsedResult(tuple(regions), tuple(dict.fromkeys(excluded)), tuple(problems), tuple(ignored))


# ---- the edit diff ---------------------------------------------------------------------------

EDIT_KINDS: tuple[str, ...] = ("accepted", "moved", "relabelled", "deleted", "added")


@dataclass(frozen=True)
class EditOp:
    """One reviewer action inferred from a prediction and the annotation made from it.

    kind: accepted | moved | relabelled | deleted | added. `label` is the predicted class
    (None for added), `new_label` the reviewed class (None for deleted). A relabelled box may
    also have moved (`moved`=True). iou: overlap of predicted and reviewed box, when both exist.
    """

    kind: str
    region: str
    label: str | None
    new_label: str | None = None
    iou: float | None = None
    moved: bool = False
    before: tuple[float, float, float, float] | None = None
    after: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.kind, "region": self.region, "label": self.label}
        if self.new_label is not None and self.new_label != self.label:
            out["new_label"] = self.new_label
        if self.iou is not None:
            out["iou"] = round(self.iou, 4)
        if self.moved and self.kind == "relabelled":
            out["moved"] = True
        if self.before is not None:
            out["before"] = [round(v, 2) for v in self.before]
        if self.after is not None and self.after != self.before:
            out["after"] = [round(v, 2) for v in self.after]
        return out


def _corners(box: Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def diff_regions(predicted: Sequence[tuple[str, Box]], reviewed: Sequence[tuple[str, Box]], *,
                 tolerance_px: float = 0.5, iou_threshold: float = 0.5) -> list[EditOp]:
    """The edits that turn a prediction into an annotation.

    Regions are paired by id first (Label Studio keeps a prediction's region id when the
    reviewer keeps the region), then remaining ones by class-agnostic IoU >= iou_threshold.
    A pair is accepted when every corner moved by at most tolerance_px and the class is
    unchanged, moved when only geometry changed, relabelled when the class changed.
    Unpaired predicted regions were deleted, unpaired reviewed regions added.
    """
    pairs: list[tuple[int, int]] = []
    pred_index = {rid: i for i, (rid, _) in enumerate(predicted)}
    used_p: set[int] = set()
    used_r: set[int] = set()
    for j, (rid, _) in enumerate(reviewed):
        i = pred_index.get(rid)
        if i is not None and i not in used_p:
            pairs.append((i, j))
            used_p.add(i)
            used_r.add(j)
    rest_p = [i for i in range(len(predicted)) if i not in used_p]
    rest_r = [j for j in range(len(reviewed)) if j not in used_r]
    for a, b, _ in match_boxes([predicted[i][1] for i in rest_p], [reviewed[j][1] for j in rest_r],
                               iou_threshold=iou_threshold, class_aware=False):
        pairs.append((rest_p[a], rest_r[b]))
        used_p.add(rest_p[a])
        used_r.add(rest_r[b])

    ops: list[EditOp] = []
    for i, j in sorted(pairs):
        rid, before = predicted[i]
        after = reviewed[j][1]
        moved = max(abs(p - q) for p, q in zip(_corners(before), _corners(after))) > tolerance_px
        overlap = iou(before, after)
        if before.label != after.label:
            kind = "relabelled"
        elif moved:
            kind = "moved"
        else:
            kind = "accepted"
        ops.append(EditOp(kind, rid, before.label, after.label, overlap, moved, _corners(before), _corners(after)))
    for i, (rid, box) in enumerate(predicted):
        if i not in used_p:
            ops.append(EditOp("deleted", rid, box.label, None, None, False, _corners(box), None))
    for j, (rid, box) in enumerate(reviewed):
        if j not in used_r:
            ops.append(EditOp("added", rid, None, box.label, None, False, None, _corners(box)))
    return ops


def count_edits(ops: Iterable[EditOp | dict[str, Any]]) -> dict[str, int]:
    """{kind: count} over EDIT_KINDS, plus `predicted` (boxes the model proposed)."""
    counts = {k: 0 for k in EDIT_KINDS}
    for op in ops:
        kind = op.kind if isinstance(op, EditOp) else op["op"]
        counts[kind] += 1
    counts["predicted"] = counts["accepted"] + counts["moved"] + counts["relabelled"] + counts["deleted"]
    return counts
