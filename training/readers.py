"""Human readers' answers (dermatologists naming the lesion types on each test photo) and the
per-photo device table, read from CSV, so they are scored like the detectors in the benchmark.

Reader CSV: a header row with `photo`, `reader`, `classes`; classes separated by ';' or '|'
(empty: the reader saw no lesion). Device CSV: a header row with `path`, `device`.
Photos are named by their workspace path, or by file name / stem when that is unique.
`annotator review readers pull` writes the reads of the reader study in Label Studio in the same format
to reports/READER_READS_FILE, which `annotator benchmark` reads when no --readers file is given.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from annotator.classes import ClassTable
from annotator.errors import InputFileError

READER_READS_FILE = "reader-reads.csv"  # under the workspace's reports/: the reader study's reads

DEVICE_ALIASES = {
    "dslr": "dslr",
    "camera": "dslr",
    "slr": "dslr",
    "phone": "phone",
    "smartphone": "phone",
    "mobile": "phone",
    "unknown": "unknown",
    "": "unknown",
}


@dataclass(frozen=True)
class ReaderAnswers:
    """One reader's answers: photo (workspace path) -> the set of classes they named."""

    reader: str
    answers: dict[str, frozenset[str]]
    source: Path


class PhotoNames:
    """Resolve what a person typed (path, file name or stem) to one workspace path."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = set(paths)
        by_name: dict[str, set[str]] = defaultdict(set)
        for p in self.paths:
            pp = PurePosixPath(p)
            by_name[pp.name.lower()].add(p)
            by_name[pp.stem.lower()].add(p)
        self._by_name = by_name

    def resolve(self, typed: str) -> str | None:
        typed = typed.strip().replace("\\", "/")
        if typed in self.paths:
            return typed
        hits = self._by_name.get(PurePosixPath(typed).name.lower(), set())
        return next(iter(hits)) if len(hits) == 1 else None


def _rows(path: Path, required: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise InputFileError(str(path), "unreadable", f"cannot read the CSV ({exc.strerror}); check the path") from exc
    except UnicodeDecodeError:
        raise InputFileError(str(path), "not-utf8", "the CSV is not UTF-8 text; save it as CSV UTF-8") from None
    reader = csv.DictReader(text.splitlines())
    header = {(h or "").strip().lower(): h for h in (reader.fieldnames or [])}
    missing = [c for c in required if c not in header]
    if missing:
        raise InputFileError(
            str(path),
            "bad-header",
            f"the first row must name the columns {', '.join(required)} (missing: {', '.join(missing)})",
        )
    for line_no, row in enumerate(reader, start=2):
        yield line_no, {c: (row.get(header[c]) or "").strip() for c in required}


def read_reader_csv(path: Path, classes: ClassTable, photos: PhotoNames) -> tuple[list[ReaderAnswers], list[str]]:
    """Every reader in the file and a list of warnings (answers for photos not in `photos`).

    Class names go through the workspace's aliases ('Melasma' -> 'mel'); an unknown class or a
    photo answered twice by one reader is an error naming the line.
    """
    answers: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)
    unknown_photos: list[str] = []
    for line_no, row in _rows(path, ("photo", "reader", "classes")):
        if not row["reader"]:
            raise InputFileError(str(path), "missing-reader", f"line {line_no}: the reader column is empty")
        named = set()
        for raw in re.split(r"[;|]", row["classes"]):
            if not raw.strip():
                continue
            label = classes.normalise(raw)
            if label is None:
                raise InputFileError(
                    str(path),
                    "unknown-class",
                    f"line {line_no}: {raw.strip()!r} is not one of {', '.join(classes.names)} "
                    "(or an alias in annotator.toml); fix the name",
                )
            named.add(label)
        photo = photos.resolve(row["photo"])
        if photo is None:
            unknown_photos.append(row["photo"])
            continue
        if photo in answers[row["reader"]]:
            raise InputFileError(
                str(path),
                "duplicate-answer",
                f"line {line_no}: {row['reader']} already answered {photo}; keep one row per photo",
            )
        answers[row["reader"]][photo] = frozenset(named)
    warnings = []
    if unknown_photos:
        shown = ", ".join(unknown_photos[:5]) + (" ..." if len(unknown_photos) > 5 else "")
        warnings.append(f"{path}: {len(unknown_photos)} answers name photos outside the test split, ignored: {shown}")
    return [ReaderAnswers(r, a, path) for r, a in answers.items()], warnings


def read_device_csv(path: Path, photos: PhotoNames) -> dict[str, str]:
    """photo (workspace path) -> 'dslr' | 'phone' | 'unknown', overriding what EXIF said."""
    out: dict[str, str] = {}
    for line_no, row in _rows(path, ("path", "device")):
        device = DEVICE_ALIASES.get(row["device"].lower())
        if device is None:
            raise InputFileError(
                str(path), "unknown-device", f"line {line_no}: device {row['device']!r} must be dslr, phone or unknown"
            )
        photo = photos.resolve(row["path"])
        if photo is not None:
            out[photo] = device
    return out
