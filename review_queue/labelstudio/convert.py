"""Pure conversions between our records and Label Studio's JSON: boxes <-> rectangle results,
the labeling configs (review and reader study), task payloads with predictions, and checked
parsing of an annotation.

No I/O here. Label Studio stores rectangles in percent of the displayed photo (top-left
origin); `annotator.boxes` does the arithmetic, this module the JSON shapes around it. The edit
diff prediction -> annotation is server-neutral and lives in `review_queue.corrections`.
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from annotator.boxes import box_to_ls_percent, fit_box, ls_percent_to_box
from annotator.classes import ClassTable
from annotator.config import DEFAULT_QUEUE_ORDER
from annotator.types import Box, ImageRecord, LabelVersion

# Names of the labeling-config tags. Pull and push both speak these; change them together.
LABEL_TAG = "label"  # RectangleLabels
IMAGE_TAG = "image"  # Image, value="$image"
EXCLUDE_TAG = "exclude"  # Choices: reasons to leave a photo out of the data set
EXCLUDE_CHOICES: tuple[tuple[str, str], ...] = (
    ("blurred", "Blurred or badly lit: lesions cannot be judged"),
    ("atypical", "Atypical: not a benign pigmented lesion case (leave it out of training)"),
)
CLASSES_TAG = "classes"  # Choices of the reader study: the lesion types a reader sees in the photo
NO_LESION = "no lesion"  # the reader study's choice for a photo without any
PHOTO_FIELD = "photo"  # task data: the photo's path relative to the image root (our key)
VERSION_FIELD = "label_version"  # task data: the label-version id first pushed with the task
CONFLICT_FIELD = "conflict"  # task data: the note shown above the photo (why its labels conflict; "" for most)
ARM_FIELD = "arm"  # task data: "control" for a photo of the effort study's draw-from-scratch arm (absent otherwise)
CONTROL_ARM = "control"
CONTROL_NOTE = "Draw from scratch: no model boxes are shown for this photo (effort study)"

# A photo whose label sources disagree (`Labels.conflicts()`) is served before any model prediction:
# its task's prediction scores 0, every model prediction at least MODEL_SCORE_FLOOR, and Label Studio
# serves ascending scores. (It refuses imported scores outside 0-1.)
CONFLICT_SCORE = 0.0
MODEL_SCORE_FLOOR = 1e-6
CURRENT_LABEL_VERSION = "current-label"  # a conflict's model_version when no model has predicted yet
CONFLICTING_LABEL_VERSION = "conflicting-label"  # model_version prefix of a disagreeing label shown beside it

# The simulated reviewer annotates as this Label Studio user, so its work is never mistaken
# for a dermatologist's (see review_queue.simulate).
SIMULATED_REVIEWER = "simulated-reviewer@annotator.local"

# An unknown uncertainty sorts in the middle of the queue.
_NEUTRAL_UNCERTAINTY = 0.5


# ---- labeling config -------------------------------------------------------------------


def labeling_config(classes: ClassTable) -> str:
    """The Label Studio labeling config: one image, six hot-keyed rectangle labels, an exclude choice.

    Label values are the short class names (what we store); the full names are in the legend
    and the hover hints. A line above the photo shows the task's `conflict` text (empty for most
    photos), so a reviewer served a conflicting photo first reads why.
    """
    legend = "  ·  ".join(f"{classes.describe(n).hotkey} {n} = {classes.describe(n).full_name}" for n in classes.names)
    labels = "\n".join(
        f'    <Label value="{_attr(n)}" background="{_attr(classes.describe(n).colour)}"'
        + (f' hotkey="{_attr(classes.describe(n).hotkey)}"' if classes.describe(n).hotkey else "")
        + f' hint="{_attr(classes.describe(n).full_name)}"/>'
        for n in classes.names
    )
    choices = "\n".join(f'    <Choice value="{_attr(v)}" hint="{_attr(h)}"/>' for v, h in EXCLUDE_CHOICES)
    return (
        "<View>\n"
        f'  <Header value="{_attr(legend)}" size="6"/>\n'
        f'  <Header value="${CONFLICT_FIELD}" size="5" style="color: #c0392b"/>\n'
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


def readers_labeling_config(classes: ClassTable) -> str:
    """The reader study's config: one photo, a multiple choice of the lesion types (plus "no lesion"),
    optional boxes."""
    choices = "\n".join(
        f'    <Choice value="{_attr(n)}" hint="{_attr(classes.describe(n).full_name)}"/>' for n in classes.names
    )
    labels = "\n".join(
        f'    <Label value="{_attr(n)}" background="{_attr(classes.describe(n).colour)}"/>' for n in classes.names
    )
    return (
        "<View>\n"
        '  <Header value="Which lesion types does this photo show? Tick every one you see." size="5"/>\n'
        f'  <Image name="{IMAGE_TAG}" value="${IMAGE_TAG}" zoom="true" zoomControl="true" rotateControl="false"/>\n'
        f'  <Choices name="{CLASSES_TAG}" toName="{IMAGE_TAG}" choice="multiple" showInline="true">\n'
        f"{choices}\n"
        f'    <Choice value="{NO_LESION}" hint="No pigmented lesion in this photo"/>\n'
        "  </Choices>\n"
        '  <Header value="Optional: box the lesions" size="6"/>\n'
        f'  <RectangleLabels name="{LABEL_TAG}" toName="{IMAGE_TAG}" strokeWidth="2" opacity="0.15">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
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
    value: dict[str, Any] = {**box_to_ls_percent(box, width, height), "rectanglelabels": [box.label]}
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
    return ls_percent_to_box(str(labels[0]), value, width, height, score=None if score is None else float(score))


def local_file_url(document_path: str) -> str:
    """Label Studio's URL for a file under its LOCAL_FILES_DOCUMENT_ROOT (POSIX relative path)."""
    return "/data/local-files/?d=" + quote(document_path, safe="/")


def prediction_score(uncertainty: float | None) -> float:
    """Prediction-level score = 1 - uncertainty, so ascending score (Label Studio's queue) = most uncertain first.

    Never below MODEL_SCORE_FLOOR: a score of 0 is kept for label conflicts, which are served before all."""
    u = _NEUTRAL_UNCERTAINTY if uncertainty is None or not math.isfinite(uncertainty) else uncertainty
    return max(MODEL_SCORE_FLOOR, round(1.0 - min(1.0, max(0.0, float(u))), 6))


def shuffled_score(photo: str, model_version: str) -> float:
    """A score that serves the queue in a random order, fixed for a photo and a model version (a re-push does
    not reshuffle; the next round does): a fair sample of the pool, whose correction rate finalize can trust."""
    digest = hashlib.sha256(f"{model_version}|{photo}".encode()).digest()
    return max(MODEL_SCORE_FLOOR, round(int.from_bytes(digest[:8], "big") / 2**64, 6))


def queue_score(record: ImageRecord, version: LabelVersion, order: str = DEFAULT_QUEUE_ORDER) -> float:
    """The score Label Studio serves a prediction by, for the workspace's `[review] queue_order`."""
    if order == "random":
        return shuffled_score(record.path, model_version_of(version))
    return prediction_score(version.uncertainty)


def model_version_of(version: LabelVersion) -> str:
    """The model_version string a prediction carries (the round's name when the version has none)."""
    return version.model_version or f"round-{version.round or 0:03d}"


def prediction_payload(record: ImageRecord, version: LabelVersion, order: str = DEFAULT_QUEUE_ORDER) -> dict[str, Any]:
    """A prediction object (without `task`) for a `model` label version, scored for the queue `order`."""
    return {
        "model_version": model_version_of(version),
        "score": queue_score(record, version, order),
        "result": [
            box_to_result(b, record.width, record.height, region_id(version.id, i)) for i, b in enumerate(version.boxes)
        ],
    }


def task_payload(
    record: ImageRecord, version: LabelVersion, document_path: str, order: str = DEFAULT_QUEUE_ORDER
) -> dict[str, Any]:
    """One task for bulk import: the photo (served as a local file) and its prediction, scored for `order`.

    document_path: the photo's path relative to the server's LOCAL_FILES_DOCUMENT_ROOT.
    """
    return {
        "data": {
            IMAGE_TAG: local_file_url(document_path),
            PHOTO_FIELD: record.path,
            VERSION_FIELD: version.id,
            CONFLICT_FIELD: "",
        },
        "predictions": [prediction_payload(record, version, order)],
    }


def control_task_payload(record: ImageRecord, version: LabelVersion, document_path: str) -> dict[str, Any]:
    """A task of the effort study's control arm: the photo with NO prediction, and a note saying so."""
    return {
        "data": {
            IMAGE_TAG: local_file_url(document_path),
            PHOTO_FIELD: record.path,
            VERSION_FIELD: version.id,
            CONFLICT_FIELD: CONTROL_NOTE,
            ARM_FIELD: CONTROL_ARM,
        }
    }


def in_control_arm(photo: str, share: float, seed: int = 0) -> bool:
    """Whether `photo` falls in the control arm of a push asking for `share` of the photos there: a uniform
    draw from the photo's name and the seed, so a photo's arm never depends on what else is pushed."""
    digest = hashlib.sha256(f"control\0{seed}\0{photo}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def conflict_note(conflicts: Iterable[tuple[str, str]]) -> str:
    """The text a reviewer reads above a conflicting photo: each open conflict's kind and detail."""
    return "Labels in conflict, served first: " + " | ".join(f"{kind}: {detail}" for kind, detail in conflicts)


def conflict_predictions(
    record: ImageRecord, current: LabelVersion, waiting: Sequence[LabelVersion], model_version: str
) -> list[dict[str, Any]]:
    """The predictions (without `task`) of a conflicting photo's task.

    First the photo's current label, the one to check, under the project's `model_version` (Label
    Studio's queue only orders predictions of that version) with CONFLICT_SCORE, so it is served
    before any model prediction; then each disagreeing label kept in the history, for comparison.
    """

    def payload(version: LabelVersion, name: str) -> dict[str, Any]:
        return {
            "model_version": name,
            "score": CONFLICT_SCORE,
            "result": [
                box_to_result(b, record.width, record.height, region_id(version.id, i))
                for i, b in enumerate(version.boxes)
            ],
        }

    return [payload(current, model_version)] + [
        payload(v, f"{CONFLICTING_LABEL_VERSION} {v.id}") for v in waiting if v.id != current.id
    ]


def conflict_task_payload(
    record: ImageRecord,
    current: LabelVersion,
    waiting: Sequence[LabelVersion],
    note: str,
    document_path: str,
    model_version: str,
) -> dict[str, Any]:
    """One task for a conflicting photo: `note` says why, its current label is the prediction to check."""
    return {
        "data": {
            IMAGE_TAG: local_file_url(document_path),
            PHOTO_FIELD: record.path,
            VERSION_FIELD: current.id,
            CONFLICT_FIELD: note,
        },
        "predictions": conflict_predictions(record, current, waiting, model_version),
    }


# ---- reading an annotation -------------------------------------------------------------------


@dataclass(frozen=True)
class BoxFix:
    """A reviewed box that `annotator.boxes.fit_box` clipped or dropped (the review is still merged).

    reason: OUTSIDE_PHOTO or TOO_SMALL; action: "clipped" or "box dropped" (as in the ingest report).
    """

    region: str
    reason: str
    action: str
    message: str
    outside_px: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "reason": self.reason,
            "action": self.action,
            "message": self.message,
            "outside_px": round(self.outside_px, 1),
        }


@dataclass(frozen=True)
class ParsedResult:
    """What an annotation (or prediction) result list says, checked against the photo.

    regions: (region id, box in displayed pixels, canonical label) in result order.
    problems: human-readable reasons the result cannot be merged; empty when it can.
    fixes: boxes clipped to the photo or dropped by the one rule of `annotator.boxes.fit_box`
    (reported, not blocking: ingest treats the same box the same way).
    """

    regions: tuple[tuple[str, Box], ...]
    excluded: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # result types we do not use (reported, harmless)
    fixes: tuple[BoxFix, ...] = ()


def parse_result(result: Iterable[dict[str, Any]], *, width: int, height: int, classes: ClassTable) -> ParsedResult:
    """Validate and convert a Label Studio result list on a width x height photo.

    Unknown label names, a missing or different original size, rotated or non-finite boxes are
    problems. Every box is fitted to the photo by the one rule (`annotator.boxes.fit_box`):
    clipped, or dropped when under a pixel in either direction; each clip beyond the edge
    tolerance and each drop becomes a fix.
    """
    regions: list[tuple[str, Box]] = []
    excluded: list[str] = []
    problems: list[str] = []
    ignored: list[str] = []
    fixes: list[BoxFix] = []
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
            problems.append(
                f"region {rid}: drawn on a {ow}x{oh} image but the photo is {width}x{height} (EXIF orientation?)"
            )
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
        fit = fit_box(Box(label, box.x1, box.y1, box.x2, box.y2, score=box.score), width, height)
        if fit.action is not None:
            what = f"region {rid} {label!r} ({box.x1:.1f}, {box.y1:.1f})-({box.x2:.1f}, {box.y2:.1f})"
            fixes.append(BoxFix(rid, str(fit.reason), fit.action, fit.describe(what), fit.outside_px))
        if fit.box is not None:
            regions.append((rid, fit.box))
    return ParsedResult(tuple(regions), tuple(dict.fromkeys(excluded)), tuple(problems), tuple(ignored), tuple(fixes))
