"""Helpers for the annotator tests: a folder of real photo and labelImg files, and what ingest made of it.

Files are written with the corpus writers (make_corpus.py), so the tests and the hostile corpus
make photos and XML the same way. Each bad-input test also ingests two control photos and checks
they come through untouched: one problem never costs another photo.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotator.ingest import IngestLine, IngestReport
from annotator.store import Workspace
from annotator.types import Box
from tests.corpus.make_corpus import GOOD_BOX, Obj, jpeg_bytes, voc_xml, write_bytes

ROOT = Path(__file__).resolve().parents[2]
PLAYING_CARDS = Path("/work/shared/data/labelimg-playingcards")
CARD_CLASSES = ("ace", "jack", "king", "nine", "queen", "ten")
CONTROL_LABELLED, CONTROL_UNLABELLED = "control_labelled.jpg", "control_unlabelled.jpg"
CONTROL_BOXES = (Obj("sl", 3, 3, 20, 15), Obj("hori", 30, 20, 60, 45))


def unique_colour(name: str) -> tuple[int, int, int]:
    """Each photo a different colour, so no two test photos share a sha256 by accident."""
    h = zlib.crc32(name.encode("utf-8", "surrogateescape"))
    return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)


@dataclass
class PhotoFolder:
    """An image folder and a label folder under tmp_path, filled the way a clinic would."""

    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    def photo(self, rel: str, data: bytes | None = None, size: tuple[int, int] = (64, 48), **jpeg) -> Path:
        if data is None:
            data = jpeg_bytes(size, unique_colour(rel), **jpeg)
        return write_bytes(self.images / rel, data)

    def xml(
        self,
        rel_photo: str,
        objects: Sequence[Obj] = (GOOD_BOX,),
        size: tuple[int, int] | None = (64, 48),
        raw: str | bytes | None = None,
        **voc,
    ) -> Path:
        """The labelImg file for `rel_photo`; `raw` writes exactly those bytes/text instead."""
        target = self.labels / Path(rel_photo).with_suffix(".xml")
        if raw is None:
            raw = voc_xml(Path(rel_photo).name, objects, size, **voc)
        return write_bytes(target, raw.encode("utf-8") if isinstance(raw, str) else raw)

    def pair(self, rel: str, objects: Sequence[Obj] = (GOOD_BOX,), size: tuple[int, int] = (64, 48), **voc) -> None:
        self.photo(rel, size=size)
        self.xml(rel, objects, size, **voc)

    def controls(self) -> None:
        """Two healthy photos that must survive any bad neighbour."""
        self.pair(CONTROL_LABELLED, CONTROL_BOXES)
        self.photo(CONTROL_UNLABELLED)


@dataclass
class Ingested:
    ws: Workspace
    report: IngestReport
    folder: PhotoFolder

    def lines(self, path: str | None = None, reason: str | None = None) -> list[IngestLine]:
        return [
            ln
            for ln in self.report.lines
            if (path is None or ln.path == path) and (reason is None or ln.reason == reason)
        ]

    def only_line(self, path: str) -> IngestLine:
        found = self.lines(path)
        assert len(found) == 1, f"expected one report line for {path}, got {found}"
        return found[0]

    def boxes(self, path: str) -> tuple[Box, ...]:
        version = self.ws.store.labels.current_label(path)
        assert version is not None, f"{path} has no label"
        return version.boxes

    def is_ingested(self, path: str) -> bool:
        return self.ws.store.labels.image(path) is not None

    def assert_controls_intact(self) -> None:
        assert [b.label for b in self.boxes(CONTROL_LABELLED)] == ["sl", "hori"]
        assert self.boxes(CONTROL_LABELLED)[0] == Box("sl", 2, 2, 20, 15)
        assert self.is_ingested(CONTROL_UNLABELLED)
        assert self.ws.store.labels.current_label(CONTROL_UNLABELLED) is None
        assert not self.lines(CONTROL_LABELLED) and not self.lines(CONTROL_UNLABELLED)


@dataclass
class Counted:
    photos: int = 0
    objects: int = 0
    per_file: dict[str, int] = field(default_factory=dict)


def count_voc_objects(folder: Path) -> Counted:
    """Count <object> elements the plain way (a regex, not our parser), per XML file."""
    out = Counted()
    for xml in sorted(folder.glob("*.xml")):
        n = len(re.findall(r"<object>", xml.read_text("utf-8")))
        out.per_file[xml.stem] = n
        out.objects += n
        out.photos += 1
    return out
