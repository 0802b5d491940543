"""The core records every stage speaks: boxes, photos, label versions, predictions.

All boxes live in one frame: the photo *as displayed* (EXIF orientation applied), in
continuous 0-based pixel coordinates with exclusive right/bottom edges (x2 = x1 + width).
Conversions to and from VOC, YOLO, COCO and Label Studio live in `annotator.boxes`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# The split of a pool photo in the fixed evaluation set (annotator.toml [split] eval_size): predicted by every
# round, never pushed to the review queue, so rounds are compared on the same photos.
EVAL_SPLIT = "eval"
# The store's meta key where `annotator audit labels` records its last run (when, which photos, the test split or
# not); the benchmark report reads it to say whether the labels it scores against were audited.
LABEL_AUDIT_KEY = "label_audit.last"


class Source(str, enum.Enum):
    """Who produced a label version. Ordered by how much a human stands behind it."""

    MANUAL = "manual"  # hand-drawn in labelImg (the seed set)
    MODEL = "model"  # a detector's pre-annotation, not yet seen by a person
    REVIEWED = "reviewed"  # corrected or confirmed by a dermatologist in Label Studio
    AUTO_ACCEPTED = "auto-accepted"  # a prediction accepted at `finalize`

    @property
    def is_human(self) -> bool:
        """Human-made labels are never replaced by a model's."""
        return self in (Source.MANUAL, Source.REVIEWED)


class DeviceClass(str, enum.Enum):
    DSLR = "dslr"
    PHONE = "phone"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Box:
    """One lesion (or lesion cluster) box on the displayed photo.

    x1, y1, x2, y2: continuous pixel coordinates, 0-based, right/bottom edges exclusive.
    score: detector confidence in [0, 1] for predictions, None for human boxes.
    """

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float | None = None
    difficult: bool = False
    truncated: bool = False

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "x1": round(self.x1, 3),
            "y1": round(self.y1, 3),
            "x2": round(self.x2, 3),
            "y2": round(self.y2, 3),
        }
        if self.score is not None:
            out["score"] = round(float(self.score), 5)
        if self.difficult:
            out["difficult"] = True
        if self.truncated:
            out["truncated"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Box:
        return cls(
            label=str(data["label"]),
            x1=float(data["x1"]),
            y1=float(data["y1"]),
            x2=float(data["x2"]),
            y2=float(data["y2"]),
            score=None if data.get("score") is None else float(data["score"]),
            difficult=bool(data.get("difficult", False)),
            truncated=bool(data.get("truncated", False)),
        )


@dataclass(frozen=True)
class ImageRecord:
    """One photo of the workspace, as ingested.

    path: POSIX path relative to the image root (the photo's identity across the loop).
    width, height: as displayed, i.e. after EXIF orientation.
    """

    path: str
    sha256: str
    width: int
    height: int
    orientation: int = 1
    make: str | None = None
    model: str | None = None
    device_class: DeviceClass = DeviceClass.UNKNOWN
    id: int | None = None
    split: str | None = None  # "train" | "val" | "test" | None (unlabelled pool)


@dataclass(frozen=True)
class LabelVersion:
    """One immutable version of a photo's labels, with its provenance.

    A photo's history is the ordered list of its versions; nothing is overwritten.
    """

    image_path: str
    source: Source
    boxes: tuple[Box, ...]
    round: int | None = None
    model_version: str | None = None
    reviewer: str | None = None
    created_at: str | None = None
    excluded: bool = False
    uncertainty: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class Prediction:
    """A detector's output for one photo, before it becomes a `model` label version.

    uncertainty: the photo's review priority in [0, 1]; higher = more likely to need
    correction (see `bootstrap.uncertainty`).
    """

    image_path: str
    boxes: tuple[Box, ...]
    model_version: str
    round: int
    uncertainty: float
