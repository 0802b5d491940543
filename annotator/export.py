"""`annotator export`: the current labels as VOC, YOLO or COCO, in the displayed frame.

By default exports what a person stands behind (manual, reviewed, auto-accepted); model
predictions only with `include_predictions`. Excluded photos are left out. Photos are linked,
not copied (symlinks), so an export of 12,836 photos costs nothing but labels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from annotator.boxes import box_to_coco, box_to_yolo
from annotator.errors import ConfigError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from annotator.formats.voc import write_voc

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
    coco_images, coco_anns = [], []
    for image_id, (rel, version) in enumerate(sorted(labels.items()), start=1):
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
            lines = []
            for box in version.boxes:
                cx, cy, w, h = box_to_yolo(box, rec.width, rec.height)
                lines.append(f"{classes.index(box.label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            atomic_write_text(out / "labels" / PurePosixPath(rel).with_suffix(".txt"), "\n".join(lines) + "\n")
            if link_images:
                _link(src, out / "images" / rel)
        else:
            coco_images.append({"id": image_id, "file_name": rel, "width": rec.width, "height": rec.height,
                                "device_class": rec.device_class.value})
            for box in version.boxes:
                ann = {"id": len(coco_anns) + 1, "image_id": image_id, "category_id": classes.index(box.label) + 1,
                       "bbox": [round(v, 3) for v in box_to_coco(box)], "area": round(box.area, 3), "iscrowd": 0}
                if box.score is not None:
                    ann["score"] = box.score
                coco_anns.append(ann)
    if fmt == "yolo":
        atomic_write_text(out / "classes.txt", "\n".join(classes) + "\n")
        atomic_write_text(out / "data.yaml", f"path: {out.resolve()}\ntrain: images\nval: images\nnames:\n" +
                          "".join(f"  {i}: {c}\n" for i, c in enumerate(classes)))
    if fmt == "coco":
        data = {"images": coco_images, "annotations": coco_anns,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
                "info": {"description": "annotator export (displayed-frame pixels)"}}
        atomic_write_text(out / "annotations.json", json.dumps(data))
    return {"format": fmt, "out": str(out), "photos": len(labels), "boxes": n_boxes}
