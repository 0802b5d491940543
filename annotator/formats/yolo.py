"""YOLO text labels and data.yaml: the one writer and reader of the format, for the export and the training view.

A label file holds one line per box, `class cx cy w h`, the class as its index in the workspace's
class list and the box normalised to the displayed photo (`annotator.boxes.box_to_yolo`); an
empty file is a photo with no lesion. data.yaml names the image folders and the classes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from annotator.boxes import box_to_yolo, yolo_to_box
from annotator.errors import ConfigError, InputFileError
from annotator.fsutil import atomic_write_text
from annotator.types import Box

DECIMALS = 6  # 0.004 px per coordinate on an 8000 px photo


def _class_index(classes: Sequence[str]) -> dict[str, int]:
    return {c: k for k, c in enumerate(classes)}


def yolo_label_text(boxes: Iterable[Box], classes: Sequence[str], width: int, height: int) -> str:
    """One photo's label file: a `class cx cy w h` line per box (empty text for no box).

    width, height: the displayed photo's size, the frame of `boxes`.
    """
    index = _class_index(classes)
    lines = []
    for box in boxes:
        if box.label not in index:
            raise ConfigError(
                f"box label {box.label!r} is not one of the classes {', '.join(classes)}; "
                "add it to annotator.toml or relabel the photo"
            )
        cx, cy, w, h = box_to_yolo(box, width, height)
        lines.append(f"{index[box.label]} {cx:.{DECIMALS}f} {cy:.{DECIMALS}f} {w:.{DECIMALS}f} {h:.{DECIMALS}f}")
    return "".join(line + "\n" for line in lines)


def write_yolo_labels(path: Path, boxes: Iterable[Box], classes: Sequence[str], width: int, height: int) -> None:
    """Write one photo's label file atomically (folders are created)."""
    atomic_write_text(path, yolo_label_text(boxes, classes, width, height))


def parse_yolo_labels(text: str, classes: Sequence[str], width: int, height: int, source: str = "<yolo>") -> list[Box]:
    """Boxes of a label file's text in the frame (width, height); blank lines are skipped.

    A line that is not `class cx cy w h`, or names a class index outside `classes`, is an
    InputFileError naming `source` and the line.
    """
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields")
            k = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            raise InputFileError(source, "bad-yolo-line", f"line {number}: expected `class cx cy w h` ({exc})") from exc
        if not 0 <= k < len(classes):
            raise InputFileError(
                source,
                "bad-yolo-class",
                f"line {number}: class index {k} is outside the {len(classes)} classes {', '.join(classes)}",
            )
        boxes.append(yolo_to_box(classes[k], cx, cy, w, h, width, height))
    return boxes


def read_yolo_labels(path: Path, classes: Sequence[str], width: int, height: int) -> list[Box]:
    """Boxes of a label file in the frame (width, height); a missing file is a photo with no box."""
    path = Path(path)
    if not path.exists():
        return []
    return parse_yolo_labels(path.read_text(), classes, width, height, source=str(path))


def label_path_for(image: Path) -> Path:
    """The label file beside an image, by the YOLO convention: .../images/<split>/x.jpg -> .../labels/<split>/x.txt
    (the last `images` folder of the path is the one replaced)."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}


def _yaml_scalar(text: str) -> str:
    """`text` as a YAML scalar: plain when it cannot be read as anything else, else double-quoted
    (a JSON string is a valid YAML double-quoted scalar)."""
    plain = _PLAIN.fullmatch(text) is not None and text.lower() not in _YAML_WORDS
    return text if plain else json.dumps(text)


def data_yaml_text(root: Path, splits: Mapping[str, str], classes: Sequence[str]) -> str:
    """data.yaml for Ultralytics: `path` (the data set's root), one key per split naming its image
    folder relative to the root (e.g. {"train": "images/train"}), and the class names by index."""
    lines = [f"path: {_yaml_scalar(str(Path(root).resolve()))}"]
    lines += [f"{split}: {_yaml_scalar(folder)}" for split, folder in splits.items()]
    lines += ["names:"] + [f"  {k}: {_yaml_scalar(c)}" for k, c in enumerate(classes)]
    return "\n".join(lines) + "\n"


def write_data_yaml(path: Path, root: Path, splits: Mapping[str, str], classes: Sequence[str]) -> Path:
    """Write data.yaml atomically (see `data_yaml_text`) and return its path."""
    atomic_write_text(path, data_yaml_text(root, splits, classes))
    return Path(path)
