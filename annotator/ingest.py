"""`annotator init`: ingest photos and labelImg XML into the workspace, validating everything.

Every problem becomes a report line naming the file, the reason and the fix. A photo whose
labels cannot be trusted is *quarantined* (reported, not ingested, picked up on a later run
once fixed); a fixable box problem is fixed and reported; a photo without XML joins the
unlabelled pool. Nothing is dropped silently. XML `<path>`/`<filename>` are never used to
locate files: a photo's XML is the file with the same stem in the labels folder.

Copies of one photo (same bytes, any name, folder or extension) become one photo: the labelled
copy is kept, whatever the scan order, and every other copy's labelImg boxes join its history
(a copy with different boxes flags the photo as a conflict for review). A labelImg file edited
since it was ingested becomes a new manual version, except over a dermatologist's reviewed
label: that stays current until a person decides (or `xml_wins` is given). Nothing is overwritten.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from annotator.boxes import fit_box, orient_box, voc_to_box
from annotator.classes import ClassTable
from annotator.errors import ConfigError, InputFileError
from annotator.formats.voc import MAX_XML_BYTES, VocAnnotation, VocObject, read_voc
from annotator.fsutil import atomic_write_text, is_within
from annotator.images import PhotoInfo, displayed_size, inspect_photo
from annotator.store import Workspace, now_iso
from annotator.types import Box, ImageRecord, LabelVersion, Source

CANDIDATE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".webp")
_PR_SET_PDEATHSIG = 1  # prctl(2)

QUARANTINED, CLIPPED, DROPPED_BOX, IGNORED, FIXED, NOTE, UPDATED, NEEDS_REVIEW = (
    "quarantined",
    "clipped",
    "box dropped",
    "ignored",
    "fixed",
    "note",
    "updated",
    "needs review",
)
# conflict kinds (Labels.flag_conflict): the review queue serves these photos first
DUPLICATE_LABELS = "duplicate-labels"  # copies of one photo carry different hand boxes
XML_AFTER_REVIEW = "xml-after-review"  # a labelImg file changed after a dermatologist reviewed the photo


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
    updated: int = 0  # photos whose label changed because their labelImg file was edited
    unknown_classes: Counter[str] = field(default_factory=Counter)  # class name -> photos quarantined for it
    lines: list[IngestLine] = field(default_factory=list)

    def add(self, path: str, reason: str, message: str, action: str) -> None:
        self.lines.append(IngestLine(_printable(path), reason, _printable(message), action))

    def merge(self, other: IngestReport) -> None:
        """Take over the lines (and unknown class names) found while reading one file on the side."""
        self.lines.extend(other.lines)
        self.unknown_classes.update(other.unknown_classes)

    @property
    def quarantined(self) -> int:
        return len({ln.path for ln in self.lines if ln.action == QUARANTINED})

    @property
    def conflicts(self) -> int:
        return len({ln.path for ln in self.lines if ln.action == NEEDS_REVIEW})

    def to_dict(self) -> dict:
        return {
            "scanned": self.scanned,
            "added": self.added,
            "already_known": self.already_known,
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "boxes": self.boxes,
            "updated": self.updated,
            "quarantined": self.quarantined,
            "conflicts": self.conflicts,
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
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
            report.add(
                prefix.rstrip("/") or ".",
                "unreadable-folder",
                f"the folder cannot be listed ({exc.strerror}); check its permissions",
                IGNORED,
            )
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
                report.add(
                    rel,
                    "linked-folder",
                    f"is a link to the folder {Path(entry.path).resolve()}, which is "
                    "not followed; move or copy its files into the folder itself",
                    IGNORED,
                )
            elif is_dir:
                subfolders.append((Path(entry.path), rel + "/"))
            elif os.path.splitext(entry.name)[1].lower() not in suffixes:
                continue
            elif _is_file(entry):
                found.append(_Found(Path(entry.path), rel, is_link))
            else:  # reading a pipe or a device would hang or never end
                report.add(
                    rel,
                    "not-a-file",
                    "is not a regular file (a broken link, a pipe or a device); replace it "
                    "with the real file or delete it",
                    IGNORED,
                )
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
        return _Problem(
            "unreadable-photo",
            f"the photo cannot be read ({type(exc).__name__}: {exc}); copy it again from the original",
        )


def _label_digest(xml: Path) -> str | None:
    """sha256 of a labelImg file's bytes (stored with the label it gave, so an edit is noticed on a re-run);
    None when it cannot be read or is too large to be one (parsing it then reports why)."""
    try:
        if xml.stat().st_size > MAX_XML_BYTES:
            return None
        return hashlib.sha256(xml.read_bytes()).hexdigest()
    except OSError:
        return None


def _parse(xml: Path) -> tuple[VocAnnotation | _Problem, str | None]:
    """The labelImg file's contents, and its digest."""
    try:
        return read_voc(xml), _label_digest(xml)
    except InputFileError as exc:
        return _Problem.of(exc), None
    except Exception as exc:
        return (
            _Problem("malformed-xml", f"cannot be read ({type(exc).__name__}: {exc}); re-save it in labelImg"),
            None,
        )


_Read = tuple[PhotoInfo | _Problem, VocAnnotation | _Problem | None, str | None]


def _read_pair(job: tuple[Path, Path | None]) -> _Read:
    """A worker's share: inspect the photo and, if it is usable, parse its labelImg file."""
    photo, xml = job
    info = _inspect(photo)
    if isinstance(info, _Problem) or xml is None:
        return info, None, None
    return (info, *_parse(xml))


def _printable(rel: str) -> str:
    """A file name that is not valid UTF-8 (possible on Linux) shown with escapes, so it can be stored and reported."""
    try:
        raw = rel.encode("utf-8", "surrogateescape")  # back to the bytes on disk: b"scan_\xff.jpg"
    except UnicodeEncodeError:
        raw = rel.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def boxes_from_voc(
    ann: VocAnnotation, info: PhotoInfo, classes: ClassTable, source: str, report: IngestReport
) -> list[Box] | None:
    """Validate and convert a VOC file's objects for one photo; None means quarantine."""
    from_raw_frame = _drawn_on_stored_pixels(ann, info, source, report)
    if from_raw_frame is None or _has_unknown_class(ann, classes, source, report):
        return None
    frame_w, frame_h = (info.raw_width, info.raw_height) if from_raw_frame else (info.width, info.height)
    boxes: list[Box] = []
    for obj in ann.objects:
        box = _fitted_box(obj, classes, frame_w, frame_h, source, report)
        if box is None:
            continue
        if from_raw_frame:
            box = orient_box(box, info.raw_width, info.raw_height, info.orientation)
        boxes.append(box)
    return boxes


def _drawn_on_stored_pixels(ann: VocAnnotation, info: PhotoInfo, source: str, report: IngestReport) -> bool | None:
    """Whether the file's boxes were drawn on the stored, un-rotated pixels (its <size> says so; they are turned
    onto the photo as displayed), or on the photo as displayed; None when <size> fits neither (quarantine)."""
    if ann.width is not None and ann.height is not None:
        size = (ann.width, ann.height)
        if size == (info.raw_width, info.raw_height) and size != (info.width, info.height):
            report.add(
                source,
                "exif-rotated-xml",
                f"<size> {size[0]}x{size[1]} is the stored, un-rotated photo (EXIF orientation "
                f"{info.orientation}); boxes were rotated onto the photo as displayed",
                FIXED,
            )
            return True
        if size != (info.width, info.height):
            report.add(
                source,
                "size-mismatch",
                f"<size> {size[0]}x{size[1]} matches neither the photo ({info.width}x{info.height} as displayed"
                f", {info.raw_width}x{info.raw_height} stored); the XML belongs to another photo or the photo "
                "was resized: relabel it in labelImg",
                QUARANTINED,
            )
            return None
    if info.orientation != 1 and ann.objects and (info.width, info.height) == (info.raw_width, info.raw_height):
        # the size cannot tell the frames apart (180-degree turns, mirrors, square photos)
        report.add(
            source,
            "exif-frame-assumed",
            f"EXIF orientation {info.orientation} turns or mirrors this photo without changing its size, so "
            "the boxes were taken as drawn on the photo as displayed; labelImg shows the stored pixels, so "
            "check them in the review if they were drawn there",
            NOTE,
        )
    return False


def _has_unknown_class(ann: VocAnnotation, classes: ClassTable, source: str, report: IngestReport) -> bool:
    """True (reported, the photo quarantined) when a box names a class the workspace does not know."""
    unknown = sorted({o.name for o in ann.objects if classes.normalise(o.name) is None})
    if not unknown:
        return False
    report.unknown_classes.update(unknown)
    report.add(
        source,
        "unknown-class",
        f"class name(s) {', '.join(map(repr, unknown))} are not one of {', '.join(classes.names)}; add an "
        "alias under [classes.aliases] in annotator.toml, add the class with `annotator init --classes` "
        "(the existing classes first), or rename them in labelImg",
        QUARANTINED,
    )
    return True


def _fitted_box(
    obj: VocObject, classes: ClassTable, frame_w: int, frame_h: int, source: str, report: IngestReport
) -> Box | None:
    """One VOC object as a box fitted to its frame by the one box rule (swapped corners and every fix reported);
    None when the rule drops it."""
    label = classes.normalise(obj.name)
    assert label is not None
    xmin, xmax = sorted((obj.xmin, obj.xmax))
    ymin, ymax = sorted((obj.ymin, obj.ymax))
    if (xmin, ymin) != (obj.xmin, obj.ymin):
        report.add(source, "swapped-corners", f"box {obj.name!r} had min and max swapped; fixed", FIXED)
    box = voc_to_box(label, xmin, ymin, xmax, ymax, difficult=obj.difficult, truncated=obj.truncated)
    if xmin == xmax or ymin == ymax:  # a zero-size drag in labelImg, not a 1 px box: the rule below drops it
        box = replace(box, x1=box.x2 if xmin == xmax else box.x1, y1=box.y2 if ymin == ymax else box.y1)
    fit = fit_box(box, frame_w, frame_h)  # the one rule, as pull and pre-annotation apply it
    if fit.action is not None:
        corners = f"box {obj.name!r} ({obj.xmin:g},{obj.ymin:g})-({obj.xmax:g},{obj.ymax:g})"
        report.add(
            source, str(fit.reason), fit.describe(corners) + (" in labelImg" if fit.box is None else ""), fit.action
        )
    return fit.box


def _stem(rel: str) -> str:
    """The key that pairs a photo with its XML: the relative path without its suffix."""
    return os.path.splitext(rel)[0]


def ingest(
    ws: Workspace,
    *,
    images: Path,
    labels: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    xml_wins: bool = False,
) -> IngestReport:
    """Scan `images` (and labels beside them or under `labels`), add what is new, report the rest.

    A photo already in the workspace is not read again, but its labelImg file is: one that appeared
    since becomes its manual label, one edited since becomes a new manual version (history kept).
    Over a reviewed label the edit waits in the history as a conflict, unless `xml_wins`."""
    _check_folders(images, labels)
    image_root = images.resolve()
    labels_root = (labels or images).resolve()
    classes = ws.config.class_table
    report = IngestReport()
    known = ws.store.labels.known_paths()
    photo_files, xml_files = _scan_folders(ws, image_root, labels_root, report)
    xml_by_stem = _label_files_by_stem(xml_files, report)
    sorted_out = _sort_photos(photo_files, known, xml_by_stem, image_root, labels_root, report)
    read = _read_new_photos(sorted_out, labels_root, report, workers=workers, progress=progress)
    offers = _add_new_photos(ws, read, classes, report)

    latest = ws.store.labels.latest_versions_by_xml()
    open_conflicts = {c.version_id for c in ws.store.labels.conflicts()}
    _reconcile_known(
        ws,
        sorted_out.known_seen,
        xml_by_stem,
        labels_root,
        classes,
        report,
        latest=latest,
        open_conflicts=open_conflicts,
        xml_wins=xml_wins,
    )
    for kept_rel, copy in offers:
        _offer_copy(ws, kept_rel, copy, report, latest=latest)
    for conflict in ws.store.labels.conflicts():  # new and still undecided ones, every run, like a quarantined photo
        report.add(conflict.path, conflict.kind, conflict.detail, NEEDS_REVIEW)
    _report_label_files_without_photo(known, photo_files, xml_by_stem, report)
    _record(ws, report)
    return report


def _check_folders(images: Path, labels: Path | None) -> None:
    """Refuse a photo or label folder that is not there."""
    if not images.is_dir():
        raise ConfigError(f"image folder {images} not found; check the path (or the [workspace] images setting)")
    if labels is not None and not labels.is_dir():
        raise ConfigError(
            f"label folder {labels} not found; check the path (or the [workspace] labels setting), or give no "
            "label folder when the XML files lie beside the photos"
        )


def _scan_folders(
    ws: Workspace, image_root: Path, labels_root: Path, report: IngestReport
) -> tuple[list[_Found], list[_Found]]:
    """The photo files and the labelImg files (one scan when they share a folder); the workspace is skipped."""
    if labels_root == image_root:
        found = _scan(image_root, CANDIDATE_SUFFIXES + (".xml",), ws.root.resolve(), report)
        photo_files = [f for f in found if not f.rel.lower().endswith(".xml")]
        xml_files = [f for f in found if f.rel.lower().endswith(".xml")]
        return photo_files, xml_files
    photo_files = _scan(image_root, CANDIDATE_SUFFIXES, ws.root.resolve(), report)
    return photo_files, _scan(labels_root, (".xml",), ws.root.resolve(), report)


def _label_files_by_stem(xml_files: list[_Found], report: IngestReport) -> dict[str, _Found]:
    """Each photo stem's labelImg file; a second file for the same stem is reported and not used."""
    xml_by_stem: dict[str, _Found] = {}
    for xml in sorted(xml_files, key=lambda f: not f.rel.endswith(".xml")):  # labelImg's own a.xml before a.XML
        first = xml_by_stem.setdefault(_stem(xml.rel), xml)
        if first is not xml:
            report.add(
                xml.rel,
                "duplicate-xml",
                f"{first.rel} is already the label file for this photo and this "
                "one is not used; merge the two in labelImg and delete one",
                IGNORED,
            )
    return xml_by_stem


@dataclass
class _Sorted:
    """The scanned photos sorted out: new ones to read (with their labelImg file, if any and readable) and
    known ones whose labelImg file is checked again."""

    candidates: list[tuple[str, _Found | None]] = field(default_factory=list)  # (photo, its labelImg file)
    jobs: list[tuple[Path, Path | None]] = field(default_factory=list)  # what a worker reads for each candidate
    known_seen: list[str] = field(default_factory=list)


def _sort_photos(
    photo_files: list[_Found],
    known: set[str],
    xml_by_stem: dict[str, _Found],
    image_root: Path,
    labels_root: Path,
    report: IngestReport,
) -> _Sorted:
    """Count every photo scanned; quarantine unusable names and links out of the image root; split the rest
    into photos to read and photos already in the workspace."""
    out = _Sorted()
    for photo in photo_files:
        report.scanned += 1
        rel = _printable(photo.rel)
        if rel != photo.rel:
            report.add(rel, "bad-file-name", "the file name is not valid UTF-8 text; rename the file", QUARANTINED)
            continue
        if photo.is_link and not is_within(photo.path, image_root):
            report.add(
                rel,
                "outside-image-root",
                f"is a link to {photo.path.resolve()}, outside the image root {image_root}; copy the photo into "
                "the image folder instead",
                QUARANTINED,
            )
            continue
        if rel in known:
            report.already_known += 1
            out.known_seen.append(rel)
            continue
        label = xml_by_stem.get(_stem(rel))
        out.candidates.append((rel, label))
        out.jobs.append((photo.path, label.path if label is not None and _readable_label(label, labels_root) else None))
    return out


def _read_new_photos(
    sorted_out: _Sorted,
    labels_root: Path,
    report: IngestReport,
    *,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
) -> list[_NewPhoto]:
    """Inspect each new photo and parse its labelImg file, in worker processes when there are many;
    a photo that cannot be read is quarantined."""
    workers = workers or min(4, os.cpu_count() or 1)
    total = len(sorted_out.jobs)
    pool = (
        ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent, initargs=(os.getpid(),))
        if workers > 1 and total > 64
        else None
    )
    results = pool.map(_read_pair, sorted_out.jobs, chunksize=32) if pool else map(_read_pair, sorted_out.jobs)
    read: list[_NewPhoto] = []
    try:
        pairs = zip(sorted_out.candidates, results, strict=True)
        for done, ((rel, label), (info, ann, digest)) in enumerate(pairs, start=1):
            if isinstance(info, _Problem):
                report.add(rel, info.reason, info.detail, QUARANTINED)
            else:
                if label is not None and ann is None:
                    ann = _link_problem(label, labels_root)
                read.append(_NewPhoto(rel, info, label, ann, digest))
            if progress:
                progress(done, total)
    finally:
        if pool:
            pool.shutdown()
    return read


def _add_new_photos(
    ws: Workspace, read: list[_NewPhoto], classes: ClassTable, report: IngestReport
) -> list[tuple[str, _NewPhoto]]:
    """Add one photo per content (a labelled copy wins), committed in batches; returns the other copies, each
    with the photo kept for it, whose labels are offered to that photo once every new photo is in."""
    # all copies of a photo are known before one is chosen, so the scan order cannot decide it
    copies: dict[str, list[_NewPhoto]] = {}
    for new in read:
        copies.setdefault(new.info.sha256, []).append(new)
    pending: list[tuple[ImageRecord, LabelVersion | None]] = []
    offers: list[tuple[str, _NewPhoto]] = []  # (the kept photo, a copy whose labels it is offered)
    for group in copies.values():
        for new in group:
            if new.xml is not None:
                assert new.ann is not None
                new.version = _manual_version(new.rel, new.info, new.xml, new.ann, new.digest, classes, new.lines)
        usable = [new for new in group if new.xml is None or new.version is not None]  # the rest are quarantined
        for new in group:
            if new not in usable:
                report.merge(new.lines)
        kept = ws.store.labels.path_with_sha(group[0].info.sha256)
        if kept is None and usable:
            chosen = next((new for new in usable if new.version is not None), usable[0])  # a labelled copy wins
            report.merge(chosen.lines)
            pending.append((chosen.record(), chosen.version))
            kept = chosen.rel
            usable.remove(chosen)
            if len(pending) >= 256:
                _commit(ws, pending, report)
        if kept is not None:
            offers += [(kept, new) for new in usable]
    _commit(ws, pending, report)
    return offers


def _report_label_files_without_photo(
    known: set[str], photo_files: list[_Found], xml_by_stem: dict[str, _Found], report: IngestReport
) -> None:
    """A labelImg file whose photo is neither in the workspace nor in the image folder is reported, not used."""
    photo_stems = {_stem(rel) for rel in known} | {_stem(f.rel) for f in photo_files}
    for stem, xml in sorted(xml_by_stem.items()):
        if stem not in photo_stems:
            report.add(
                xml.rel,
                "xml-without-photo",
                "no photo with this name in the image folder; copy the photo there or delete the XML",
                IGNORED,
            )


def _record(ws: Workspace, report: IngestReport) -> None:
    """Store the report's lines as the workspace's issues, bring the VOC mirror up to date, write the report files."""
    for line in report.lines:
        ws.store.labels.add_issue(line.path, line.reason, line.message, line.action)
    ws.sync_voc_mirror()
    _write_report(ws, report)


@dataclass(eq=False)
class _NewPhoto:
    """A photo file not yet in the workspace, as read: its labelImg file, parsed, and (once checked)
    the manual label version it gives, with the report lines found on the way (kept on the side
    until it is known whether this copy is the one kept)."""

    rel: str
    info: PhotoInfo
    xml: _Found | None
    ann: VocAnnotation | _Problem | None
    digest: str | None
    version: LabelVersion | None = None
    lines: IngestReport = field(default_factory=IngestReport)

    def record(self) -> ImageRecord:
        info = self.info
        return ImageRecord(
            path=self.rel,
            sha256=info.sha256,
            width=info.width,
            height=info.height,
            orientation=info.orientation,
            make=info.make,
            model=info.model,
            device_class=info.device_class,
        )


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
    return _Problem(
        "outside-label-root",
        f"{xml.path.name} is a link to {xml.path.resolve()}, outside the label "
        f"folder {labels_root}; copy the XML into the label folder instead",
    )


def _reconcile_known(
    ws: Workspace,
    known_seen: list[str],
    xml_by_stem: dict[str, _Found],
    labels_root: Path,
    classes: ClassTable,
    report: IngestReport,
    *,
    latest: dict[str, dict[str, LabelVersion]],
    open_conflicts: set[int],
    xml_wins: bool,
) -> None:
    """The labelImg files of photos already in the workspace: one that appeared since becomes the
    photo's manual label, one edited since a new version (see `_apply_label`); an unchanged one (same
    content hash as the version it gave) is not parsed again."""
    store = ws.store
    for rel in known_seen:
        xml = xml_by_stem.get(_stem(rel))
        if xml is None:
            continue
        readable = _readable_label(xml, labels_root)
        previous = latest.get(rel, {}).get(str(xml.path))
        digest = _label_digest(xml.path) if readable and previous is not None else None
        if digest is not None and previous is not None and previous.meta.get("xml_sha256") == digest:
            if xml_wins and previous.id in open_conflicts:
                _let_xml_win(ws, rel, previous, report)
            continue
        ann, digest = _parse(xml.path) if readable else (_link_problem(xml, labels_root), None)
        rec = store.labels.image(rel)
        assert rec is not None
        raw_w, raw_h = displayed_size(rec.width, rec.height, rec.orientation)  # the swap is its own inverse
        info = PhotoInfo(
            rec.sha256, rec.width, rec.height, raw_w, raw_h, rec.orientation, rec.make, rec.model, "?", "?"
        )
        found = IngestReport()
        version = _manual_version(rel, info, xml, ann, digest, classes, found)
        if version is None:
            current = store.labels.current_label(rel)
            if current is not None and current.source is not Source.MODEL:  # the photo is not quarantined
                found.lines = [
                    IngestLine(
                        ln.path,
                        ln.reason,
                        f"{ln.message}; the photo keeps its current label",
                        IGNORED if ln.action == QUARANTINED else ln.action,
                    )
                    for ln in found.lines
                ]
            report.merge(found)
            continue
        outcome = _apply_label(ws, rel, version, previous=previous, xml_wins=xml_wins, report=report)
        if outcome not in ("unchanged", "same"):
            report.merge(found)


def _offer_copy(
    ws: Workspace, kept: str, copy: _NewPhoto, report: IngestReport, *, latest: dict[str, dict[str, LabelVersion]]
) -> None:
    """A copy of the kept photo (same bytes): it is not kept, but its labelImg boxes are never lost."""
    same = f"same content (sha256) as {kept}"
    if copy.version is None:
        report.add(
            copy.rel,
            "duplicate-photo",
            f"{same}; only the first copy is kept, delete this one or check the two are the same patient visit",
            QUARANTINED,
        )
        return
    previous = latest.get(kept, {}).get(str(copy.version.meta["xml"]))
    version = replace(copy.version, image_path=kept, meta={**copy.version.meta, "copy": copy.rel})
    outcome = _apply_label(ws, kept, version, previous=previous, xml_wins=False, report=report)
    boxes = _count_boxes(version.boxes)
    message = {
        "labelled": f"{same}, which had no hand label: this copy's boxes ({boxes}) are now its label; only {kept} "
        "is kept, delete this copy",
        "updated": f"{same}; this copy's label file was edited and its boxes ({boxes}) are now {kept}'s label (the "
        "earlier version is kept in the history); delete this copy",
        "conflict": f"{same} but with different boxes: both label sets are kept in {kept}'s history and {kept} is "
        "flagged for review; delete this copy once the review has decided",
    }.get(outcome, f"{same} and the same boxes; only {kept} is kept, delete this copy")
    if outcome in ("labelled", "updated", "conflict"):  # its box fixes matter only where its boxes were stored
        report.merge(copy.lines)
    report.add(copy.rel, "duplicate-photo", message, QUARANTINED)


def _count_boxes(boxes: tuple[Box, ...]) -> str:
    return f"{len(boxes)} box" if len(boxes) == 1 else f"{len(boxes)} boxes"


def _same_boxes(a: tuple[Box, ...], b: tuple[Box, ...]) -> bool:
    key = lambda boxes: sorted(json.dumps(box.to_dict(), sort_keys=True) for box in boxes)  # noqa: E731
    return key(a) == key(b)


def _apply_label(
    ws: Workspace,
    rel: str,
    version: LabelVersion,
    *,
    previous: LabelVersion | None,
    xml_wins: bool,
    report: IngestReport,
) -> str:
    """Give photo `rel` the manual label `version` read from a labelImg file, never losing a label.

    previous: the latest version this same file gave the photo (None: the file is new to it).
    Returns what happened: "unchanged" (the file says what it said before), "same" (it agrees with the
    current label), "labelled" (the photo had no person's label: this is it), "updated" (the file the
    current label came from was edited: a new version), "conflict" (kept in the history, photo flagged)."""
    store = ws.store
    digest = version.meta.get("xml_sha256")
    if previous is not None and (
        (digest is not None and previous.meta.get("xml_sha256") == digest) or _same_boxes(previous.boxes, version.boxes)
    ):
        return "unchanged"  # e.g. re-saved without a change, or a workspace from before content hashes
    with store.transaction():
        current = store.labels.current_label(rel)
        if current is None or current.source in (Source.MODEL, Source.AUTO_ACCEPTED):  # nobody stands behind it
            store.labels.add_label_version(version)
            report.labelled += 1
            report.boxes += len(version.boxes)
            return "labelled"
        if _same_boxes(current.boxes, version.boxes):
            return "same"
        if current.source is Source.REVIEWED:
            return _label_over_review(ws, rel, version, current, previous=previous, xml_wins=xml_wins, report=report)
        if current.meta.get("xml") == version.meta["xml"]:  # the file this label came from was edited
            store.labels.add_label_version(version)
            report.updated += 1
            report.add(
                rel,
                "edited-xml",
                f"{_xml_name(version)} changed since it was ingested ({_count_boxes(current.boxes)} -> "
                f"{_count_boxes(version.boxes)}): the edited boxes are now the label, the earlier version is kept "
                "in the history",
                UPDATED,
            )
            return "updated"
        vid = _keep_in_history(ws, rel, version, previous)
        store.labels.flag_conflict(
            rel,
            DUPLICATE_LABELS,
            f"copies of this photo carry different boxes: {Path(str(current.meta.get('xml', '?'))).name} "
            f"({_count_boxes(current.boxes)}) is the current label, {_xml_name(version)} "
            f"({_count_boxes(version.boxes)}, version {vid}) is kept in the history; review the photo to decide "
            "(the queue serves it first)",
            vid,
        )
        return "conflict"


def _label_over_review(
    ws: Workspace,
    rel: str,
    version: LabelVersion,
    current: LabelVersion,
    *,
    previous: LabelVersion | None,
    xml_wins: bool,
    report: IngestReport,
) -> str:
    """A labelImg file that differs from a dermatologist's reviewed label: with `xml_wins` it becomes the label
    ("updated"), else it waits in the history and the photo is flagged for review ("conflict")."""
    n = _count_boxes(version.boxes)
    if xml_wins:
        ws.store.labels.add_label_version(replace(version, meta={**version.meta, "replaces_reviewed": current.id}))
        report.updated += 1
        report.add(
            rel,
            "xml-over-review",
            f"{_xml_name(version)} changed after a dermatologist reviewed this photo; as "
            f"--xml-wins asks, its boxes ({n}) are now the label and the reviewed label (version "
            f"{current.id}) is kept in the history",
            UPDATED,
        )
        return "updated"
    vid = _keep_in_history(ws, rel, version, previous)
    ws.store.labels.flag_conflict(
        rel,
        XML_AFTER_REVIEW,
        f"{_xml_name(version)} changed after a dermatologist reviewed this "
        f"photo: the reviewed label ({_count_boxes(current.boxes)}) stays current and the "
        f"XML's boxes ({n}) are kept in the history (version {vid}); review the photo again "
        "to decide, or re-run init with --xml-wins to make the XML current",
        vid,
    )
    return "conflict"


def _keep_in_history(ws: Workspace, rel: str, version: LabelVersion, previous: LabelVersion | None) -> int:
    """Store `version` in the photo's history without making it current; the conflict the same file's previous
    version raised is settled (superseded). Returns the new version's id."""
    vid = ws.store.labels.add_history_version(version)
    if previous is not None:
        ws.store.labels.resolve_conflicts(rel, f"superseded by version {vid}", version_id=previous.id)
    return vid


def _xml_name(version: LabelVersion) -> str:
    """The name of the labelImg file a manual version was read from."""
    return Path(str(version.meta["xml"])).name


def _let_xml_win(ws: Workspace, rel: str, waiting: LabelVersion, report: IngestReport) -> None:
    """--xml-wins on a re-run: the edited XML that waits in the history becomes the current label."""
    with ws.store.transaction():
        current = ws.store.labels.current_label(rel)
        if current is None or current.source is not Source.REVIEWED:
            return
        ws.store.labels.add_label_version(
            replace(waiting, id=None, created_at=now_iso(), meta={**waiting.meta, "replaces_reviewed": current.id})
        )
        ws.store.labels.resolve_conflicts(rel, "xml-wins", version_id=waiting.id)
    report.updated += 1
    report.add(
        rel,
        "xml-over-review",
        f"as --xml-wins asks, the boxes of {Path(str(waiting.meta['xml'])).name} "
        f"({_count_boxes(waiting.boxes)}) are now the label; the reviewed label (version {current.id}) is kept "
        "in the history",
        UPDATED,
    )


def _manual_version(
    rel: str,
    info: PhotoInfo,
    xml: _Found,
    ann: VocAnnotation | _Problem,
    digest: str | None,
    classes: ClassTable,
    report: IngestReport,
) -> LabelVersion | None:
    """The labelImg file's boxes as a manual label version; None when the file is unusable (reported).
    Its provenance names the file and stores its content hash."""
    if isinstance(ann, _Problem):
        message = ann.detail if ann.reason == "outside-label-root" else f"{xml.path.name}: {ann.detail}"
        report.add(rel, ann.reason, message, QUARANTINED)
        return None
    boxes = boxes_from_voc(ann, info, classes, rel, report)
    if boxes is None:
        return None
    return LabelVersion(
        image_path=rel,
        source=Source.MANUAL,
        boxes=tuple(boxes),
        created_at=now_iso(),
        meta={"xml": str(xml.path), "xml_sha256": digest, "verified": ann.verified},
    )


def _commit(ws: Workspace, pending: list[tuple[ImageRecord, LabelVersion | None]], report: IngestReport) -> None:
    if not pending:
        return
    with ws.store.transaction():
        for record, version in pending:
            ws.store.labels.add_image(record)
            report.added += 1
            if version is None:
                report.unlabelled += 1
            else:
                ws.store.labels.add_label_version(version)
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
