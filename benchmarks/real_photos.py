"""Real face photos with boxes, laid out as the tool takes them (photos, labelImg VOC for the labelled ones,
truth VOC for every photo, which only the SIMULATED reviewer reads).

The set: "acne-new" v36 (Roboflow Universe, buyumedatasets, CC BY 4.0), as kept in the GitHub repository
Sherry2580/Rescue-the-Acne-Face at commit b4ece8c8f40a628192979b9987df1520f8f61004, folder
YOLO/acne-new.v36-backup.yolov8: face photos with boxes for acne, mole1, mole2, pimple, scar, spot. Only its
train and valid splits are used; its test split is never read. Photos are hard-linked (or copied) into the
benchmark's own folder, never into the repository.
Get it once:
    fetch github:Sherry2580/Rescue-the-Acne-Face, then in its git directory
    git archive b4ece8c8f40a628192979b9987df1520f8f61004 YOLO/acne-new.v36-backup.yolov8/train \
        YOLO/acne-new.v36-backup.yolov8/valid YOLO/acne-new.v36-backup.yolov8/data.yaml | tar -x -C DEST
Its label lines are YOLO boxes (`class cx cy w h`) or polygons (`class x1 y1 x2 y2 ...`): a polygon becomes
its bounding box, as Ultralytics does for a segment in a detection set.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, ImageOps

from annotator.boxes import clip_box
from annotator.formats.voc import write_voc
from annotator.types import Box

SPLITS = ("train", "valid")  # the set's test split is never read


@dataclass(frozen=True)
class RealSet:
    """Where `prepare` put the photos, and which of them play which part."""

    root: Path  # images/, labels/ (labelled only), truth/ (all)
    classes: tuple[str, ...]
    labelled: tuple[str, ...]  # photo file names with labelImg VOC
    test: tuple[str, ...]  # labelled photos kept as the test split (the set's valid split)
    pool: tuple[str, ...]  # unlabelled photos (truth only)

    @property
    def images(self) -> Path:
        return self.root / "images"


def read_classes(folder: Path) -> tuple[str, ...]:
    """The class names of the set's data.yaml."""
    data = yaml.safe_load((folder / "data.yaml").read_text())
    names = data["names"]
    return tuple(names.values() if isinstance(names, dict) else names)


def photo_boxes(label_file: Path, classes: tuple[str, ...], width: int, height: int) -> list[Box]:
    """The boxes of one label file in pixels (a polygon line as its bounding box), clipped to the photo."""
    boxes = []
    text = label_file.read_text() if label_file.is_file() else ""
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        label, values = classes[int(fields[0])], [float(v) for v in fields[1:]]
        if len(values) == 4:
            cx, cy, w, h = values
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            xs, ys = values[0::2], values[1::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        box = clip_box(Box(label, x1 * width, y1 * height, x2 * width, y2 * height), width, height)
        if box.x2 - box.x1 >= 1 and box.y2 - box.y1 >= 1:
            boxes.append(box)
    return boxes


def prepare(folder: Path, out: Path, *, labelled: int, pool: int, seed: int = 0) -> RealSet:
    """Link `labelled` + `pool` photos drawn (seeded) from the set's train split and all of its valid split into
    `out/images`; VOC labels for the labelled train photos and the valid split (the test split), truth for all.
    Reuses an `out` prepared with the same arguments."""
    classes = read_classes(folder)
    train = sorted((folder / "train" / "images").iterdir())
    if labelled + pool > len(train):
        raise SystemExit(f"{folder}: {len(train)} train photos, fewer than --labelled + --pool")
    chosen = random.Random(seed).sample(train, labelled + pool)
    roles = {p: "labelled" for p in chosen[:labelled]} | {p: "pool" for p in chosen[labelled:]}
    roles |= {p: "test" for p in sorted((folder / "valid" / "images").iterdir())}
    for sub in ("images", "labels", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    names: dict[str, list[str]] = {"labelled": [], "test": [], "pool": []}
    for photo, role in roles.items():
        names[role].append(_place(photo, role, out, classes))
    return RealSet(out, classes, tuple(names["labelled"] + names["test"]), tuple(names["test"]), tuple(names["pool"]))


def _place(photo: Path, role: str, out: Path, classes: tuple[str, ...]) -> str:
    """Link one photo and write its truth (and its label unless it is a pool photo); returns its file name."""
    name = f"{'v' if role == 'test' else 't'}_{photo.name}"  # the two splits could share a name
    link = out / "images" / name
    if not link.exists():  # a hard link, else a copy: the tool refuses links that leave its image folder
        try:
            os.link(photo, link)
        except OSError:
            shutil.copy2(photo, link)
    with Image.open(photo) as img:
        width, height = ImageOps.exif_transpose(img).size
    boxes = photo_boxes(photo.parent.parent / "labels" / f"{photo.stem}.txt", classes, width, height)
    voc = dict(filename=name, path=str(link), width=width, height=height, depth=3, boxes=boxes)
    write_voc(out / "truth" / f"{Path(name).stem}.xml", **voc)
    if role != "pool":
        write_voc(out / "labels" / f"{Path(name).stem}.xml", **voc)
    return name
