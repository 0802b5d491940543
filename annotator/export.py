"""`annotator export`: the current labels as VOC, YOLO or COCO, in the displayed frame.

By default exports what a person stands behind (manual, reviewed, auto-accepted); model
predictions only with `include_predictions`. Excluded photos are left out. VOC and YOLO exports
hold the photos as symbolic links to the originals, so an export of 12,836 photos costs nothing
but labels (and breaks if the originals move); `copy_images` copies them instead (each copy
written atomically), for an export that stands on its own. COCO writes no photo files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from annotator.errors import ConfigError
from annotator.formats.coco import coco_ground_truth, write_coco
from annotator.formats.voc import photo_depth, write_voc
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


def _copy(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` atomically (temp file beside it, fsync, rename): a reader never sees half a
    photo. A copy already there with the same size and modification time is kept (a re-export is cheap)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = src.stat()
    if dst.is_file() and not dst.is_symlink():
        there = dst.stat()
        if (there.st_size, there.st_mtime_ns) == (source.st_size, source.st_mtime_ns):
            return
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as photo:
            shutil.copyfileobj(photo, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(src, tmp)
        os.replace(tmp, dst)  # over a link left by an earlier export too: the link is replaced, not followed
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def selected_labels(ws: Workspace, include_predictions: bool = False) -> dict[str, LabelVersion]:
    sources = HUMAN_SOURCES + ((Source.MODEL,) if include_predictions else ())
    return {p: v for p, v in ws.store.labels.current_labels(sources).items() if not v.excluded}


def export_labels(
    ws: Workspace,
    fmt: str,
    out: Path,
    *,
    include_predictions: bool = False,
    link_images: bool = True,
    copy_images: bool = False,
) -> dict:
    """Write the labels in `fmt` under `out`. VOC and YOLO also place the photos there: links to the
    originals, or copies with `copy_images`; `link_images=False` places none. Returns the counts and
    `photo_files`: "linked", "copied" or "none"."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    labels = selected_labels(ws, include_predictions)
    records = {r.path: r for r in ws.store.labels.images()}
    classes = ws.config.classes
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "coco" or not (link_images or copy_images):
        photo_files, place = "none", None
    else:
        photo_files, place = ("copied", _copy) if copy_images else ("linked", _link)
    n_boxes = 0
    for rel, version in sorted(labels.items()):
        rec = records[rel]
        src = ws.image_path(rel)
        n_boxes += len(version.boxes)
        if fmt == "voc":
            write_voc(
                out / "Annotations" / PurePosixPath(rel).with_suffix(".xml"),
                filename=PurePosixPath(rel).name,
                path=str(src),
                width=rec.width,
                height=rec.height,
                depth=photo_depth(src),
                boxes=version.boxes,
                provenance={"source": version.source.value, "round": version.round, "reviewer": version.reviewer},
                verified=version.source.is_human,
            )
            if place:
                place(src, out / "JPEGImages" / rel)
        elif fmt == "yolo":
            write_yolo_labels(
                out / "labels" / PurePosixPath(rel).with_suffix(".txt"), version.boxes, classes, rec.width, rec.height
            )
            if place:
                place(src, out / "images" / rel)
    if fmt == "yolo":
        atomic_write_text(out / "classes.txt", "\n".join(classes) + "\n")
        write_data_yaml(out / "data.yaml", out, {"train": "images", "val": "images"}, classes)
    if fmt == "coco":  # COCO links nothing: file_name is the path under the images folder
        photos = sorted(labels)
        write_coco(
            out / "annotations.json",
            coco_ground_truth(
                photos,
                [labels[p].boxes for p in photos],
                classes,
                sizes=[(records[p].width, records[p].height) for p in photos],
                image_fields=[{"device_class": records[p].device_class.value} for p in photos],
                description="annotator export (displayed-frame pixels)",
            ),
        )
    return {"format": fmt, "out": str(out), "photos": len(labels), "boxes": n_boxes, "photo_files": photo_files}
