"""The training view: a YOLO-format folder of links to the photos, written from the store.

Photos are symlinked (never copied); YOLO label files are in the displayed frame, which is
what OpenCV's EXIF-aware decode gives the trainer. Paths are flattened (`a/b.jpg` ->
`a__b.jpg`) so a view is two flat folders per split.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from annotator.formats.yolo import label_path_for, write_data_yaml, yolo_label_text
from annotator.store import Workspace
from annotator.types import Box, LabelVersion
from training.detectors.base import TrainingView

SPLITS = ("train", "val", "test")


def flat_name(rel: str) -> str:
    return rel.replace("/", "__")


@dataclass(frozen=True)
class ViewPhoto:
    """One photo of a training view: its file, its name there, the name it is known by, its split and boxes
    (displayed frame, `width` x `height`)."""

    photo: Path
    name: str  # the link's file name in the view
    rel: str  # the photo's name in the workspace (or its folder)
    split: str
    boxes: Sequence[Box]
    width: int
    height: int


def build_training_view(
    ws: Workspace, out_dir: Path, splits: dict[str, str], labels: dict[str, LabelVersion]
) -> TrainingView:
    """Write `out_dir/images/<split>/` links and `out_dir/labels/<split>/` YOLO files.

    splits: rel path -> "train" | "val" | "test"; only photos in `labels` are included.
    Rebuilt from scratch each time, so a view always equals its manifest.
    """
    records = {r.path: r for r in ws.store.labels.images()}
    photos = []
    for rel, split in sorted(splits.items()):
        version = labels.get(rel)
        if version is None or version.excluded or split not in SPLITS:
            continue
        rec = records[rel]
        photos.append(ViewPhoto(ws.image_path(rel), flat_name(rel), rel, split, version.boxes, rec.width, rec.height))
    return write_view(out_dir, ws.config.classes, photos)


def write_view(out_dir: Path, classes: Sequence[str], photos: Iterable[ViewPhoto]) -> TrainingView:
    """A YOLO training view from scratch: per split, links to the photos and their YOLO label files, and
    data.yaml naming the splits."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images: dict[str, list[tuple[Path, str]]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    for item in photos:
        link = out_dir / "images" / item.split / item.name
        os.symlink(item.photo.resolve(), link)
        # a plain write: the view is rebuilt from scratch every time, so no file needs to survive a crash
        label_path_for(link).write_text(yolo_label_text(item.boxes, classes, item.width, item.height))
        images[item.split].append((link, item.rel))
    data_yaml = write_data_yaml(out_dir / "data.yaml", out_dir, {s: f"images/{s}" for s in SPLITS}, classes)
    return TrainingView(root=out_dir, data_yaml=data_yaml, classes=tuple(classes), images=images)
