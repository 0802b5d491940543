"""`annotator init`: ingest photos and labelImg XML into the workspace, validating everything.

Every problem becomes a report line naming the file, the reason and the fix. A photo whose
labels cannot be trusted is *quarantined* (reported, not ingested, picked up on a later run
once fixed); a fixable box problem is fixed and reported; a photo without XML joins the
unlabelled pool. Nothing is dropped silently. XML `<path>`/`<filename>` are never used to
locate files: a photo's XML is the file with the same stem in the labels folder.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from annotator.boxes import clip_box, orient_box, voc_to_box
from annotator.classes import ClassTable
from annotator.errors import InputFileError
from annotator.fsutil import atomic_write_text, is_within
from annotator.images import PhotoInfo, inspect_photo
from annotator.store import Workspace, now_iso
from annotator.types import Box, ImageRecord, LabelVersion, Source
from annotator.voc import VocAnnotation, read_voc

CANDIDATE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".webp")
EDGE_TOLERANCE_PX = 1.5  # labelImg rounds to whole pixels and sometimes writes 0 at the left edge

QUARANTINED, CLIPPED, DROPPED_BOX, IGNORED, FIXED, NOTE = (
    "quarantined", "clipped", "box dropped", "ignored", "fixed", "note")


@dataclass
class IngestLine:
    path: str
    reason: str
    message: str
    action: str


@dataclass
class IngestReport:
    scanned: int = 0
    added: int = 0
    already_known: int = 0
    labelled: int = 0
    unlabelled: int = 0
    boxes: int = 0
    lines: list[IngestLine] = field(default_factory=list)

    def add(self, path: str, reason: str, message: str, action: str) -> None:
        self.lines.append(IngestLine(path, reason, message, action))

    @property
    def quarantined(self) -> int:
        return len({ln.path for ln in self.lines if ln.action == QUARANTINED})

    def to_dict(self) -> dict:
        return {
            "scanned": self.scanned, "added": self.added, "already_known": self.already_known,
            "labelled": self.labelled, "unlabelled": self.unlabelled, "boxes": self.boxes,
            "quarantined": self.quarantined,
            "by_reason": dict(Counter(ln.reason for ln in self.lines)),
            "lines": [asdict(ln) for ln in self.lines],
        }


def _walk_photos(root: Path) -> Iterator[Path]:
    """All candidate photo files under root, sorted, without following directory symlinks."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in CANDIDATE_SUFFIXES:
                yield Path(dirpath) / name


def _inspect(path: Path) -> PhotoInfo | InputFileError:
    try:
        return inspect_photo(path)
    except InputFileError as exc:
        return exc


def boxes_from_voc(ann: VocAnnotation, info: PhotoInfo, classes: ClassTable, source: str,
                   report: IngestReport) -> list[Box] | None:
    """Validate and convert a VOC file's objects for one photo; None means quarantine."""
    from_raw_frame = False
    if ann.width is not None and ann.height is not None:
        size = (ann.width, ann.height)
        if size == (info.width, info.height):
            pass
        elif size == (info.raw_width, info.raw_height):
            from_raw_frame = True
            report.add(source, "exif-rotated-xml",
                       f"<size> {size[0]}x{size[1]} is the stored, un-rotated photo (EXIF orientation "
                       f"{info.orientation}); boxes were rotated onto the photo as displayed", FIXED)
        else:
            report.add(source, "size-mismatch",
                       f"<size> {size[0]}x{size[1]} matches neither the photo ({info.width}x{info.height} as displayed"
                       f", {info.raw_width}x{info.raw_height} stored); the XML belongs to another photo or the photo "
                       "was resized: relabel it in labelImg", QUARANTINED)
            return None
    boxes: list[Box] = []
    unknown = sorted({o.name for o in ann.objects if classes.normalise(o.name) is None})
    if unknown:
        report.add(source, "unknown-class",
                   f"class name(s) {', '.join(map(repr, unknown))} are not one of {', '.join(classes.names)}; add an "
                   "alias under [classes.aliases] in annotator.toml or rename them in labelImg", QUARANTINED)
        return None
    frame_w, frame_h = (info.raw_width, info.raw_height) if from_raw_frame else (info.width, info.height)
    for obj in ann.objects:
        label = classes.normalise(obj.name)
        assert label is not None
        xmin, xmax = sorted((obj.xmin, obj.xmax))
        ymin, ymax = sorted((obj.ymin, obj.ymax))
        if (xmin, ymin) != (obj.xmin, obj.ymin):
            report.add(source, "swapped-corners", f"box {obj.name!r} had min and max swapped; fixed", FIXED)
        box = voc_to_box(label, xmin, ymin, xmax, ymax, difficult=obj.difficult, truncated=obj.truncated)
        clipped = clip_box(box, frame_w, frame_h)
        if clipped.width <= 0 or clipped.height <= 0:
            where = "outside the photo" if box.area > 0 else "of zero area"
            report.add(source, "zero-area-box" if box.area <= 0 else "box-outside-photo",
                       f"box {obj.name!r} ({obj.xmin:g},{obj.ymin:g})-({obj.xmax:g},{obj.ymax:g}) is {where} "
                       f"({frame_w}x{frame_h}); it was left out, redraw it in labelImg", DROPPED_BOX)
            continue
        overshoot = max(clipped.x1 - box.x1, clipped.y1 - box.y1, box.x2 - clipped.x2, box.y2 - clipped.y2)
        if overshoot > EDGE_TOLERANCE_PX:
            report.add(source, "box-outside-photo",
                       f"box {obj.name!r} reached {overshoot:.0f} px outside the {frame_w}x{frame_h} photo; clipped "
                       "to the photo edge", CLIPPED)
        if from_raw_frame:
            clipped = orient_box(clipped, info.raw_width, info.raw_height, info.orientation)
        boxes.append(clipped)
    return boxes


def _label_file_for(rel: PurePosixPath, labels_root: Path) -> Path:
    return labels_root / rel.parent / (rel.stem + ".xml")


def ingest(ws: Workspace, *, images: Path, labels: Path | None = None, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Scan `images` (and labels beside them or under `labels`), add what is new, report the rest."""
    image_root = images.resolve()
    labels_root = (labels or images).resolve()
    classes = ws.config.class_table
    store = ws.store
    report = IngestReport()
    known = store.known_paths()

    candidates: list[tuple[Path, str]] = []
    for path in _walk_photos(images):
        report.scanned += 1
        rel = path.relative_to(images).as_posix()
        if not is_within(path, image_root):
            report.add(rel, "outside-image-root",
                       f"is a link to {path.resolve()}, outside the image root {image_root}; copy the photo into the "
                       "image folder instead", QUARANTINED)
            continue
        if rel in known:
            report.already_known += 1
            continue
        candidates.append((path, rel))

    used_xml: set[Path] = set()
    seen_sha: dict[str, str] = {}
    workers = workers or min(4, os.cpu_count() or 1)
    total = len(candidates)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and total > 64 else None
    results = pool.map(_inspect, [p for p, _ in candidates], chunksize=32) if pool else map(
        _inspect, [p for p, _ in candidates])
    try:
        pending: list[tuple[ImageRecord, LabelVersion | None]] = []
        for done, ((path, rel), info) in enumerate(zip(candidates, results), start=1):
            xml_path = _label_file_for(PurePosixPath(rel), labels_root)
            if xml_path.exists():
                used_xml.add(xml_path.resolve())
            if isinstance(info, InputFileError):
                report.add(rel, info.reason, info.detail, QUARANTINED)
            else:
                entry = _prepare(rel, info, xml_path, classes, store, seen_sha, report)
                if entry is not None:
                    pending.append(entry)
            if len(pending) >= 256 or done == total:
                _commit(ws, pending, report)
                pending = []
            if progress:
                progress(done, total)
        _commit(ws, pending, report)
    finally:
        if pool:
            pool.shutdown()

    photo_stems = {PurePosixPath(p).with_suffix("").as_posix() for p in known}
    photo_stems |= {PurePosixPath(rel).with_suffix("").as_posix() for _, rel in candidates}
    if labels_root.exists():
        for xml in sorted(labels_root.rglob("*.xml")):
            if xml.resolve() in used_xml or is_within(xml, ws.root):
                continue
            rel_xml = xml.relative_to(labels_root).as_posix()
            if PurePosixPath(rel_xml).with_suffix("").as_posix() in photo_stems:
                continue
            report.add(rel_xml, "xml-without-photo",
                       "no photo with this name in the image folder; copy the photo there or delete the XML", IGNORED)

    for line in report.lines:
        store.add_issue(line.path, line.reason, line.message, line.action)
    ws.sync_voc_mirror()
    _write_report(ws, report)
    return report


def _prepare(rel: str, info: PhotoInfo, xml_path: Path, classes: ClassTable, store, seen_sha: dict[str, str],
             report: IngestReport) -> tuple[ImageRecord, LabelVersion | None] | None:
    original = seen_sha.get(info.sha256) or store.path_with_sha(info.sha256)
    if original is not None:
        report.add(rel, "duplicate-photo", f"same content (sha256) as {original}; only the first copy is kept, delete "
                   "this one or check the two are the same patient visit", QUARANTINED)
        return None
    record = ImageRecord(path=rel, sha256=info.sha256, width=info.width, height=info.height,
                         orientation=info.orientation, make=info.make, model=info.model,
                         device_class=info.device_class)
    version = None
    if xml_path.exists():
        try:
            ann = read_voc(xml_path)
        except InputFileError as exc:
            report.add(rel, exc.reason, f"{xml_path.name}: {exc.detail}", QUARANTINED)
            return None
        boxes = boxes_from_voc(ann, info, classes, rel, report)
        if boxes is None:
            return None
        version = LabelVersion(image_path=rel, source=Source.MANUAL, boxes=tuple(boxes), created_at=now_iso(),
                               meta={"xml": str(xml_path), "verified": ann.verified})
    seen_sha[info.sha256] = rel
    return record, version


def _commit(ws: Workspace, pending: list[tuple[ImageRecord, LabelVersion | None]], report: IngestReport) -> None:
    if not pending:
        return
    with ws.store.transaction():
        for record, version in pending:
            ws.store.add_image(record)
            report.added += 1
            if version is None:
                report.unlabelled += 1
            else:
                ws.store.add_label_version(version)
                report.labelled += 1
                report.boxes += len(version.boxes)
    pending.clear()


def _write_report(ws: Workspace, report: IngestReport) -> None:
    ws.reports_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data["finished_at"] = now_iso()
    atomic_write_text(ws.reports_dir / "ingest.json", json.dumps(data, indent=2))
    text = [f"{ln.path}: {ln.reason}: {ln.message} [{ln.action}]" for ln in report.lines]
    atomic_write_text(ws.reports_dir / "ingest.txt", "\n".join(text) + ("\n" if text else ""))
