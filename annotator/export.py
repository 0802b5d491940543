"""`annotator export`: the current labels as VOC, YOLO or COCO, in the displayed frame.

By default exports what a person stands behind (manual, reviewed, auto-accepted); model
predictions only with `include_predictions`. Excluded photos are left out. Photos are linked,
not copied (symlinks), so an export of 12,836 photos costs nothing but labels.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from annotator.errors import ConfigError
from annotator.formats.coco import coco_ground_truth, write_coco
from annotator.formats.voc import write_voc
from annotator.formats.yolo import write_data_yaml, write_yolo_labels
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace
from annotator.types import LabelVersion, Source

FORMATS = ("voc", "yolo", "coco")
HUMAN_SOURCES = (Source.MANUAL, Source.REVIEWED, Source.AUTO_ACCEPTED)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src, dst)


def selected_labels(ws: Workspace, include_predictions: bool = False) -> dict[str, LabelVersion]:
    sources = HUMAN_SOURCES + ((Source.MODEL,) if include_predictions else ())
    return {p: v for p, v in ws.store.current_labels(sources).items() if not v.excluded}


def export_labels(ws: Workspace, fmt: str, out: Path, *, include_predictions: bool = False,
                  link_images: bool = True) -> dict:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    labels = selected_labels(ws, include_predictions)
    records = {r.path: r for r in ws.store.images()}
    classes = ws.config.classes
    out.mkdir(parents=True, exist_ok=True)
    n_boxes = 0
    for rel, version in sorted(labels.items()):
        rec = records[rel]
        src = ws.image_path(rel)
        n_boxes += len(version.boxes)
        if fmt == "voc":
            write_voc(out / "Annotations" / PurePosixPath(rel).with_suffix(".xml"), filename=PurePosixPath(rel).name,
                      path=str(src), width=rec.width, height=rec.height, depth=3, boxes=version.boxes,
                      provenance={"source": version.source.value, "round": version.round,
                                  "reviewer": version.reviewer}, verified=version.source.is_human)
            if link_images:
                _link(src, out / "JPEGImages" / rel)
        elif fmt == "yolo":
            write_yolo_labels(out / "labels" / PurePosixPath(rel).with_suffix(".txt"), version.boxes, classes,
                              rec.width, rec.height)
            if link_images:
                _link(src, out / "images" / rel)
    if fmt == "yolo":
        atomic_write_text(out / "classes.txt", "\n".join(classes) + "\n")
        write_data_yaml(out / "data.yaml", out, {"train": "images", "val": "images"}, classes)
    if fmt == "coco":  # COCO links nothing: file_name is the path under the images folder
        photos = sorted(labels)
        write_coco(out / "annotations.json", coco_ground_truth(
            photos, [labels[p].boxes for p in photos], classes,
            sizes=[(records[p].width, records[p].height) for p in photos],
            image_fields=[{"device_class": records[p].device_class.value} for p in photos],
            description="annotator export (displayed-frame pixels)"))
    return {"format": fmt, "out": str(out), "photos": len(labels), "boxes": n_boxes}
