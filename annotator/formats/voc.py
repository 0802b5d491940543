"""labelImg-compatible Pascal VOC XML: read what labelImg really writes, write what it reads.

Parsing is defensive: entity resolution, DTDs and network access are off, and any DOCTYPE or
ENTITY declaration is refused before parsing (XXE, billion laughs). VOC pixels are 1-based and
inclusive; conversion to the internal frame is in `annotator.boxes`.
Our extra fields (score, provenance) go in elements labelImg ignores: `<score>` inside
`<object>` and `<annotator>` under the root. `<depth>` is what labelImg writes for the photo:
1 for greyscale, 3 for colour (`photo_depth`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from annotator.boxes import box_to_voc
from annotator.errors import InputFileError
from annotator.fsutil import atomic_write_bytes
from annotator.types import Box

MAX_XML_BYTES = 2 * 1024 * 1024  # a labelImg file with hundreds of boxes is ~100 kB
_HOSTILE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class VocObject:
    """One <object> as written, before class normalisation or clipping (VOC 1-based corners)."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False
    score: float | None = None


@dataclass(frozen=True)
class VocAnnotation:
    filename: str | None
    path: str | None
    width: int | None
    height: int | None
    depth: int | None
    objects: tuple[VocObject, ...]
    verified: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
    )


def _text(node, tag: str) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _number(raw: str | None, what: str, source: str) -> float:
    if raw is None or raw == "":
        raise InputFileError(source, "malformed-xml", f"<{what}> is missing; fix or delete the object in labelImg")
    try:
        value = float(raw)
    except ValueError:
        raise InputFileError(
            source, "bad-coordinate", f"<{what}> is not a number ({raw!r}); fix it in labelImg"
        ) from None
    if not math.isfinite(value):
        raise InputFileError(source, "bad-coordinate", f"<{what}> is {raw!r}; redraw the box in labelImg")
    return value


def _flag(raw: str | None) -> bool:
    return (raw or "0").strip().lower() in ("1", "true", "yes")


def parse_voc_bytes(data: bytes, source: str = "<xml>") -> VocAnnotation:
    """Parse labelImg VOC. Raises InputFileError with a reason code on anything unusable."""
    root = _annotation_root(data, source)
    width, height, depth = _size(root, source)
    annotator = root.find("annotator")
    return VocAnnotation(
        filename=_text(root, "filename"),
        path=_text(root, "path"),
        width=width,
        height=height,
        depth=depth,
        objects=tuple(_object(obj, source) for obj in root.iter("object")),
        verified=_flag(root.get("verified")),
        extra={child.tag: (child.text or "") for child in annotator} if annotator is not None else {},
    )


def _annotation_root(data: bytes, source: str) -> Any:
    """The <annotation> element of a file that is small, not empty, well-formed and declares no DOCTYPE or
    ENTITY (parsed with entity resolution, DTDs and the network off)."""
    if len(data) > MAX_XML_BYTES:
        raise InputFileError(
            source,
            "xml-too-large",
            f"{len(data):,} bytes is far larger than any labelImg file; check it is the right file",
        )
    if not data.strip():
        raise InputFileError(
            source, "malformed-xml", "the file is empty; delete it or save the labels again in labelImg"
        )
    if _HOSTILE.search(data):
        raise InputFileError(
            source,
            "hostile-xml",
            "contains a DOCTYPE/ENTITY declaration, which labelImg never writes; refused for safety",
        )
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc)
        low = msg.lower()
        not_utf8 = "encoding" in low or "utf-8" in low or "char" in low and "0x" in low
        reason = "not-utf8" if not_utf8 else "malformed-xml"
        raise InputFileError(
            source, reason, f"not well-formed XML ({msg.splitlines()[0]}); re-save it in labelImg"
        ) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # the byte check above misses UTF-16/UTF-32 files; entities were not expanded, but refuse all the same
        raise InputFileError(
            source,
            "hostile-xml",
            "contains a DOCTYPE/ENTITY declaration, which labelImg never writes; refused for safety",
        )
    if root.tag != "annotation":
        raise InputFileError(source, "malformed-xml", f"root element is <{root.tag}>, not <annotation>; not a VOC file")
    return root


def _size(root: Any, source: str) -> tuple[int | None, int | None, int | None]:
    """<size> as (width, height, depth); width and height None when absent or 0x0 (labelImg writes that when it
    could not read the photo: the size is then taken from the photo)."""
    size = root.find("size")
    if size is None:
        return None, None, None
    w, h, d = _text(size, "width"), _text(size, "height"), _text(size, "depth")
    try:
        width = int(float(w)) if w else None
        height = int(float(h)) if h else None
        depth = int(float(d)) if d else None
    except (ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise InputFileError(
            source, "malformed-xml", "<size> holds something that is not a number; fix the XML"
        ) from None
    if width is not None and width <= 0 or height is not None and height <= 0:
        return None, None, depth
    return width, height, depth


def _object(obj: Any, source: str) -> VocObject:
    """One <object>: its name and box as written (VOC 1-based corners), flags and optional score."""
    name = _text(obj, "name")
    bnd = obj.find("bndbox")
    if not name:
        raise InputFileError(source, "malformed-xml", "an <object> has no <name>; label it in labelImg")
    if bnd is None:
        raise InputFileError(source, "malformed-xml", f"object {name!r} has no <bndbox>; redraw it in labelImg")
    score_raw = _text(obj, "score")
    score = _number(score_raw, "score", source) if score_raw else None
    return VocObject(
        name=name,
        xmin=_number(_text(bnd, "xmin"), "xmin", source),
        ymin=_number(_text(bnd, "ymin"), "ymin", source),
        xmax=_number(_text(bnd, "xmax"), "xmax", source),
        ymax=_number(_text(bnd, "ymax"), "ymax", source),
        difficult=_flag(_text(obj, "difficult")),
        truncated=_flag(_text(obj, "truncated")),
        score=score,
    )


def read_voc(path: str | Path) -> VocAnnotation:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_XML_BYTES:  # checked before reading, so a multi-GB file never reaches memory
            raise InputFileError(
                str(p),
                "xml-too-large",
                f"{size:,} bytes is far larger than any labelImg file; check it is the right file",
            )
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(str(p), "unreadable", f"cannot read ({exc.strerror}); check permissions") from exc
    return parse_voc_bytes(data, source=str(p))


def depth_of(img: Any) -> int:
    """labelImg's <depth> for an opened PIL image: 1 when it is greyscale (Qt's `isGrayscale`: grey
    modes, or a palette of greys only), else 3 (alpha and CMYK included, as labelImg writes them)."""
    from PIL import Image

    mode = img.mode
    if mode in ("P", "PA"):
        palette = img.getpalette() or []
        greys = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
        return 1 if palette and greys and mode == "P" else 3
    return 1 if Image.getmodebase(mode) == "L" else 3


def photo_depth(photo: str | Path) -> int:
    """The <depth> labelImg writes for the photo file (see `depth_of`). Reads only its header; 3 when
    it cannot be read (a missing photo is reported by the commands that need its pixels)."""
    from PIL import Image

    try:
        with Image.open(photo) as img:
            return depth_of(img)
    except (OSError, ValueError, Image.DecompressionBombError):
        return 3


def _sub(parent, tag: str, text: Any | None = None):
    node = etree.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


def voc_xml_bytes(
    *,
    filename: str,
    path: str,
    width: int,
    height: int,
    depth: int | None,
    boxes: tuple[Box, ...] | list[Box],
    folder: str = "images",
    provenance: dict[str, Any] | None = None,
    verified: bool = False,
) -> bytes:
    """VOC XML in labelImg's own element order, tab-indented, with integer 1-based corners.

    depth: the photo's channels as labelImg writes them; None reads it from the photo at `path`."""
    if depth is None:
        depth = photo_depth(path)
    root = etree.Element("annotation")
    if verified:
        root.set("verified", "yes")
    _sub(root, "folder", folder)
    _sub(root, "filename", filename)
    _sub(root, "path", path)
    source = _sub(root, "source")
    _sub(source, "database", "Unknown")
    size = _sub(root, "size")
    _sub(size, "width", int(width))
    _sub(size, "height", int(height))
    _sub(size, "depth", int(depth))
    _sub(root, "segmented", 0)
    for box in boxes:
        obj = _sub(root, "object")
        _sub(obj, "name", box.label)
        _sub(obj, "pose", "Unspecified")
        _sub(obj, "truncated", int(box.truncated))
        _sub(obj, "difficult", int(box.difficult))
        bnd = _sub(obj, "bndbox")
        xmin, ymin, xmax, ymax = box_to_voc(box)
        _sub(bnd, "xmin", xmin)
        _sub(bnd, "ymin", ymin)
        _sub(bnd, "xmax", xmax)
        _sub(bnd, "ymax", ymax)
        if box.score is not None:
            _sub(obj, "score", f"{box.score:.4f}")
    if provenance:
        ann = _sub(root, "annotator")
        for key, value in provenance.items():
            if value is not None:
                _sub(ann, key, value)
    etree.indent(root, space="\t")
    return etree.tostring(root, encoding="utf-8", pretty_print=True)


def write_voc(target: str | Path, **kwargs) -> None:
    """Atomically write a VOC file (see `voc_xml_bytes` for the arguments)."""
    atomic_write_bytes(target, voc_xml_bytes(**kwargs))
