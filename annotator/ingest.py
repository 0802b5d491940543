"""`annotator init`: ingest photos and labelImg XML into the workspace, validating everything.

Every problem becomes a report line naming the file, the reason and the fix. A photo whose
labels cannot be trusted is *quarantined* (reported, not ingested, picked up on a later run
once fixed); a fixable box problem is fixed and reported; a photo without XML joins the
unlabelled pool. Nothing is dropped silently. XML `<path>`/`<filename>` are never used to
locate files: a photo's XML is the file with the same stem in the labels folder.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from annotator.boxes import clip_box, orient_box, voc_to_box
from annotator.classes import ClassTable
from annotator.errors import ConfigError, InputFileError
from annotator.fsutil import atomic_write_text, is_within
from annotator.images import PhotoInfo, displayed_size, inspect_photo
from annotator.store import Workspace, now_iso
from annotator.types import Box, ImageRecord, LabelVersion, Source
from annotator.formats.voc import VocAnnotation, read_voc

CANDIDATE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".webp")
_PR_SET_PDEATHSIG = 1  # prctl(2)
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
        self.lines.append(IngestLine(_printable(path), reason, _printable(message), action))

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


@dataclass(frozen=True)
class _Found:
    """A file found by a scan: its path, its POSIX path relative to the scanned root, and whether it is a link."""

    path: Path
    rel: str
    is_link: bool


def _scan(root: Path, suffixes: tuple[str, ...], skip: Path, report: IngestReport) -> list[_Found]:
    """Files under root with one of `suffixes`, sorted (a folder's files, then its sub-folders), and
    without following links to folders: those, and folders that cannot be listed, are reported.
    `skip`, the workspace itself, is never scanned. The entries' cached types spare a stat per file."""
    found: list[_Found] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            report.add(prefix.rstrip("/") or ".", "unreadable-folder",
                       f"the folder cannot be listed ({exc.strerror}); check its permissions", IGNORED)
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                is_dir = False
            if is_dir and is_link:
                report.add(rel, "linked-folder", f"is a link to the folder {Path(entry.path).resolve()}, which is "
                           "not followed; move or copy its files into the folder itself", IGNORED)
            elif is_dir:
                subfolders.append((Path(entry.path), rel + "/"))
            elif os.path.splitext(entry.name)[1].lower() not in suffixes:
                continue
            elif _is_file(entry):
                found.append(_Found(Path(entry.path), rel, is_link))
            else:  # reading a pipe or a device would hang or never end
                report.add(rel, "not-a-file", "is not a regular file (a broken link, a pipe or a device); replace it "
                           "with the real file or delete it", IGNORED)
        stack.extend(sub for sub in reversed(subfolders) if sub[0].resolve() != skip)
    return found


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows a link; False for a broken one
    except OSError:
        return False


@dataclass(frozen=True)
class _Problem:
    """An InputFileError as plain data: it crosses the process boundary (the exception does not pickle)."""

    reason: str
    detail: str

    @classmethod
    def of(cls, exc: InputFileError) -> _Problem:
        return cls(exc.reason, exc.detail)


def _inspect(path: Path) -> PhotoInfo | _Problem:
    try:
        return inspect_photo(path)
    except InputFileError as exc:
        return _Problem.of(exc)
    except Exception as exc:  # one hostile file must never stop the run
        return _Problem("unreadable-photo", f"the photo cannot be read ({type(exc).__name__}: {exc}); copy it "
                        "again from the original")


def _parse(xml: Path) -> VocAnnotation | _Problem:
    try:
        return read_voc(xml)
    except InputFileError as exc:
        return _Problem.of(exc)
    except Exception as exc:
        return _Problem("malformed-xml", f"cannot be read ({type(exc).__name__}: {exc}); re-save it in labelImg")


def _read_pair(job: tuple[Path, Path | None]) -> tuple[PhotoInfo | _Problem, VocAnnotation | _Problem | None]:
    """A worker's share: inspect the photo and, if it is usable, parse its labelImg file."""
    photo, xml = job
    info = _inspect(photo)
    if isinstance(info, _Problem) or xml is None:
        return info, None
    return info, _parse(xml)


def _printable(rel: str) -> str:
    """A file name that is not valid UTF-8 (possible on Linux) shown with escapes, so it can be stored and reported."""
    try:
        raw = rel.encode("utf-8", "surrogateescape")  # back to the bytes on disk: b"scan_\xff.jpg"
    except UnicodeEncodeError:
        raw = rel.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


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
    if (not from_raw_frame and info.orientation != 1 and ann.objects
            and (info.width, info.height) == (info.raw_width, info.raw_height)):
        # the size cannot tell the frames apart (180-degree turns, mirrors, square photos)
        report.add(source, "exif-frame-assumed",
                   f"EXIF orientation {info.orientation} turns or mirrors this photo without changing its size, so "
                   "the boxes were taken as drawn on the photo as displayed; labelImg shows the stored pixels, so "
                   "check them in the review if they were drawn there", NOTE)
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
        if xmin == xmax or ymin == ymax:  # 1-based inclusive would read as 1 px wide; no one draws that on purpose
            report.add(source, "zero-area-box",
                       f"box {obj.name!r} ({obj.xmin:g},{obj.ymin:g})-({obj.xmax:g},{obj.ymax:g}) has zero width or "
                       "height; it was left out, redraw it in labelImg", DROPPED_BOX)
            continue
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


def _stem(rel: str) -> str:
    """The key that pairs a photo with its XML: the relative path without its suffix."""
    return os.path.splitext(rel)[0]


def ingest(ws: Workspace, *, images: Path, labels: Path | None = None, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Scan `images` (and labels beside them or under `labels`), add what is new, report the rest.

    A photo already in the workspace is not read again; if it has no human label yet and a labelImg
    XML has appeared for it since, that XML is ingested as its manual label."""
    if not images.is_dir():
        raise ConfigError(f"image folder {images} not found; check the path (or the [workspace] images setting)")
    if labels is not None and not labels.is_dir():
        raise ConfigError(f"label folder {labels} not found; check the path, or leave --labels out when the XML files "
                          "lie beside the photos")
    image_root = images.resolve()
    labels_root = (labels or images).resolve()
    classes = ws.config.class_table
    store = ws.store
    report = IngestReport()
    known = store.known_paths()

    if labels_root == image_root:
        found = _scan(image_root, CANDIDATE_SUFFIXES + (".xml",), ws.root.resolve(), report)
        photo_files = [f for f in found if not f.rel.lower().endswith(".xml")]
        xml_files = [f for f in found if f.rel.lower().endswith(".xml")]
    else:
        photo_files = _scan(image_root, CANDIDATE_SUFFIXES, ws.root.resolve(), report)
        xml_files = _scan(labels_root, (".xml",), ws.root.resolve(), report)
    xml_by_stem: dict[str, _Found] = {}
    for xml in sorted(xml_files, key=lambda f: not f.rel.endswith(".xml")):  # labelImg's own a.xml before a.XML
        first = xml_by_stem.setdefault(_stem(xml.rel), xml)
        if first is not xml:
            report.add(xml.rel, "duplicate-xml", f"{first.rel} is already the label file for this photo and this "
                       "one is not used; merge the two in labelImg and delete one", IGNORED)

    candidates: list[tuple[str, _Found | None]] = []
    jobs: list[tuple[Path, Path | None]] = []
    known_seen: list[str] = []
    for photo in photo_files:
        report.scanned += 1
        rel = _printable(photo.rel)
        if rel != photo.rel:
            report.add(rel, "bad-file-name", "the file name is not valid UTF-8 text; rename the file", QUARANTINED)
            continue
        if photo.is_link and not is_within(photo.path, image_root):
            report.add(rel, "outside-image-root",
                       f"is a link to {photo.path.resolve()}, outside the image root {image_root}; copy the photo into "
                       "the image folder instead", QUARANTINED)
            continue
        if rel in known:
            report.already_known += 1
            known_seen.append(rel)
            continue
        xml = xml_by_stem.get(_stem(rel))
        candidates.append((rel, xml))
        jobs.append((photo.path, xml.path if xml is not None and _readable_label(xml, labels_root) else None))

    seen_sha: dict[str, str] = {}
    workers = workers or min(4, os.cpu_count() or 1)
    total = len(jobs)
    pool = (ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent, initargs=(os.getpid(),))
            if workers > 1 and total > 64 else None)
    results = pool.map(_read_pair, jobs, chunksize=32) if pool else map(_read_pair, jobs)
    try:
        pending: list[tuple[ImageRecord, LabelVersion | None]] = []
        for done, ((rel, xml), (info, ann)) in enumerate(zip(candidates, results), start=1):
            if isinstance(info, _Problem):
                report.add(rel, info.reason, info.detail, QUARANTINED)
            else:
                if xml is not None and ann is None:
                    ann = _link_problem(xml, labels_root)
                entry = _prepare(rel, info, xml, ann, classes, store, seen_sha, report)
                if entry is not None:
                    pending.append(entry)
            if len(pending) >= 256:
                _commit(ws, pending, report)
            if progress:
                progress(done, total)
        _commit(ws, pending, report)
    finally:
        if pool:
            pool.shutdown()
    _ingest_late_labels(ws, known_seen, xml_by_stem, labels_root, classes, report)

    photo_stems = {_stem(rel) for rel in known} | {_stem(f.rel) for f in photo_files}
    for stem, xml in sorted(xml_by_stem.items()):
        if stem not in photo_stems:
            report.add(xml.rel, "xml-without-photo",
                       "no photo with this name in the image folder; copy the photo there or delete the XML", IGNORED)

    for line in report.lines:
        store.add_issue(line.path, line.reason, line.message, line.action)
    ws.sync_voc_mirror()
    _write_report(ws, report)
    return report


def _die_with_parent(parent: int) -> None:
    """Ingest workers end with the command. A forked worker shares the workspace lock, so one left
    behind by a SIGKILLed `init` (the OOM killer, kill -9) would keep every later command out with
    "workspace busy" while it idles forever. Linux: the kernel kills it when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the command died before the line above ran
        os._exit(1)


def _readable_label(xml: _Found, labels_root: Path) -> bool:
    """A link to a file outside the label folder is never read (it could point at any file)."""
    return not xml.is_link or is_within(xml.path, labels_root)


def _link_problem(xml: _Found, labels_root: Path) -> _Problem:
    return _Problem("outside-label-root", f"{xml.path.name} is a link to {xml.path.resolve()}, outside the label "
                    f"folder {labels_root}; copy the XML into the label folder instead")


def _ingest_late_labels(ws: Workspace, known_seen: list[str], xml_by_stem: dict[str, _Found], labels_root: Path,
                        classes: ClassTable, report: IngestReport) -> None:
    """XML that appeared for photos already in the workspace without a human label (the unlabelled
    pool, or model predictions only) becomes their manual label; human labels are never replaced."""
    with_xml = [rel for rel in known_seen if _stem(rel) in xml_by_stem]
    if not with_xml:
        return
    current = ws.store.current_labels()
    pending = []
    for rel in with_xml:
        version = current.get(rel)
        if version is not None and version.source is not Source.MODEL:
            continue  # already labelled by a person (usually from this very file)
        xml = xml_by_stem[_stem(rel)]
        rec = ws.store.image(rel)
        assert rec is not None
        raw_w, raw_h = displayed_size(rec.width, rec.height, rec.orientation)  # the swap is its own inverse
        info = PhotoInfo(rec.sha256, rec.width, rec.height, raw_w, raw_h, rec.orientation, rec.make, rec.model,
                         "?", "?")
        ann = _parse(xml.path) if _readable_label(xml, labels_root) else _link_problem(xml, labels_root)
        version = _manual_version(rel, info, xml, ann, classes, report)
        if version is not None:
            pending.append(version)
    with ws.store.transaction():
        for version in pending:
            ws.store.add_label_version(version)
            report.labelled += 1
            report.boxes += len(version.boxes)


def _manual_version(rel: str, info: PhotoInfo, xml: _Found, ann: VocAnnotation | _Problem, classes: ClassTable,
                    report: IngestReport) -> LabelVersion | None:
    """The labelImg file's boxes as a manual label version; None when the file is unusable (reported)."""
    if isinstance(ann, _Problem):
        message = ann.detail if ann.reason == "outside-label-root" else f"{xml.path.name}: {ann.detail}"
        report.add(rel, ann.reason, message, QUARANTINED)
        return None
    boxes = boxes_from_voc(ann, info, classes, rel, report)
    if boxes is None:
        return None
    return LabelVersion(image_path=rel, source=Source.MANUAL, boxes=tuple(boxes), created_at=now_iso(),
                        meta={"xml": str(xml.path), "verified": ann.verified})


def _prepare(rel: str, info: PhotoInfo, xml: _Found | None, ann: VocAnnotation | _Problem | None,
             classes: ClassTable, store, seen_sha: dict[str, str],
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
    if xml is not None:
        assert ann is not None
        version = _manual_version(rel, info, xml, ann, classes, report)
        if version is None:
            return None
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
