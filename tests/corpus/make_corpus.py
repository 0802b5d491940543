"""A hostile and broken input corpus for `annotator init`, written from scratch with PIL alone.

Nothing binary is committed: `build(root)` writes every case into `root/images` and
`root/labels` at test time (deterministic, ~190 inputs, 3 MB: small photos and XML, a valid
100-MP PNG that costs 12 kB, a 2.3 MB XML file, links in and out of the folders, pipes and a
non-UTF-8 file name) and returns what ingest must say about each input. The writers below
(`jpeg_bytes`, `voc_xml`, ...) are also the tests' way of making labelImg-like files.
Run `python tests/corpus/make_corpus.py OUT` to look at the corpus.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

SECRET = "CORPUS-SECRET-7f3a9c"  # content of a local file that hostile XML tries to read
OK = "ok"  # expected outcome: ingested, every box kept

_EXIF_ORIENTATION, _EXIF_MAKE, _EXIF_MODEL = 0x0112, 0x010F, 0x0110


# ---- writers ---------------------------------------------------------------------------------


def photo_image(
    size: tuple[int, int] = (64, 48),
    colour: tuple[int, int, int] = (150, 110, 90),
    square: tuple[int, int, int, int] | None = None,
    square_colour: tuple[int, int, int] = (255, 0, 0),
) -> Image.Image:
    """An RGB photo of one colour; `square` (x1, y1, x2, y2, exclusive) painted in `square_colour`."""
    img = Image.new("RGB", size, colour)
    if square is not None:
        img.paste(square_colour, square)
    return img


def jpeg_bytes(
    size: tuple[int, int] = (64, 48),
    colour: tuple[int, int, int] = (150, 110, 90),
    *,
    image: Image.Image | None = None,
    mode: str = "RGB",
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    fmt: str = "JPEG",
    quality: int = 92,
) -> bytes:
    """Encoded photo bytes. `orientation` only writes the EXIF tag: the pixels are stored as given."""
    img = (image or photo_image(size, colour)).convert(mode)
    exif = Image.Exif()
    if orientation is not None:
        exif[_EXIF_ORIENTATION] = orientation
    if make:
        exif[_EXIF_MAKE] = make
    if model:
        exif[_EXIF_MODEL] = model
    out = io.BytesIO()
    kwargs: dict = {}
    if fmt in ("JPEG", "MPO"):
        kwargs["quality"] = quality
    if len(exif) and fmt in ("JPEG", "PNG", "MPO"):
        kwargs["exif"] = exif.tobytes()
    if fmt == "MPO":  # a JPEG with a second (preview) frame, as many phones and cameras write
        kwargs.update(save_all=True, append_images=[img.copy()])
    img.save(out, fmt, **kwargs)
    return out.getvalue()


@dataclass(frozen=True)
class Obj:
    """One <object> as a labelImg user would write it (VOC: 1-based inclusive corners)."""

    name: str
    xmin: float | str
    ymin: float | str
    xmax: float | str
    ymax: float | str
    difficult: int = 0
    truncated: int = 0


def _num(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def voc_xml(
    filename: str,
    objects: Sequence[Obj],
    size: tuple[int, int] | None = (64, 48),
    *,
    depth: int | None = 3,
    path: str | None = None,
    folder: str = "images",
    declaration: bool = False,
    verified: bool = False,
    indent: str = "\t",
) -> str:
    """labelImg's own layout: no XML declaration, tab indentation, Windows <path>, verified attribute."""
    i1, i2, i3 = indent, indent * 2, indent * 3
    lines = ['<?xml version="1.0" encoding="utf-8"?>'] if declaration else []
    lines.append('<annotation verified="yes">' if verified else "<annotation>")
    lines += [
        f"{i1}<folder>{folder}</folder>",
        f"{i1}<filename>{filename}</filename>",
        f"{i1}<path>{path or 'C:/Users/derm/Desktop/PSL/' + filename}</path>",
        f"{i1}<source>",
        f"{i2}<database>Unknown</database>",
        f"{i1}</source>",
    ]
    if size is not None:
        lines += [f"{i1}<size>", f"{i2}<width>{size[0]}</width>", f"{i2}<height>{size[1]}</height>"]
        if depth is not None:
            lines.append(f"{i2}<depth>{depth}</depth>")
        lines.append(f"{i1}</size>")
    lines.append(f"{i1}<segmented>0</segmented>")
    for o in objects:
        lines += [
            f"{i1}<object>",
            f"{i2}<name>{o.name}</name>",
            f"{i2}<pose>Unspecified</pose>",
            f"{i2}<truncated>{o.truncated}</truncated>",
            f"{i2}<difficult>{o.difficult}</difficult>",
            f"{i2}<bndbox>",
            f"{i3}<xmin>{_num(o.xmin)}</xmin>",
            f"{i3}<ymin>{_num(o.ymin)}</ymin>",
            f"{i3}<xmax>{_num(o.xmax)}</xmax>",
            f"{i3}<ymax>{_num(o.ymax)}</ymax>",
            f"{i2}</bndbox>",
            f"{i1}</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_solid_png(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit PNG of any size, streamed: 100 MP costs ~100 kB on disk and no memory."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", idat))
        fh.write(chunk(b"IEND", b""))
    return path


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims `width` x `height` (a decompression bomb's header)."""
    data = bytearray(jpeg_bytes((16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# ---- the corpus --------------------------------------------------------------------------------

GOOD_BOX = Obj("mel", 10, 8, 40, 30)


def _photo(root: Path, rel: str, data: bytes) -> None:
    write_bytes(root / "images" / rel, data)


def _label(root: Path, rel_photo: str, text: str | bytes) -> None:
    path = root / "labels" / Path(rel_photo).with_suffix(".xml")
    write_bytes(path, text.encode("utf-8") if isinstance(text, str) else text)


def _pair(
    root: Path,
    rel: str,
    objects: Sequence[Obj] = (GOOD_BOX,),
    *,
    data: bytes | None = None,
    size: tuple[int, int] | None = (64, 48),
    **voc,
) -> None:
    _photo(root, rel, data if data is not None else jpeg_bytes(colour=_colour_for(rel)))
    _label(root, rel, voc_xml(Path(rel).name, objects, size, **voc))


def _colour_for(name: str) -> tuple[int, int, int]:
    """A distinct colour per file, so no two corpus photos share a sha256 by accident."""
    h = zlib.crc32(name.encode("utf-8", "surrogateescape"))
    return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)


def build(root: Path) -> dict[str, str]:
    """Write the corpus under root/images and root/labels (and root/outside, the files links point
    at). Returns {input path relative to root: expected reason code, or "ok"}."""
    root = Path(root)
    expected: dict[str, str] = {}

    def case(rel_photo: str | None, reason: str, *, xml: bool = True) -> None:
        if rel_photo is not None:
            expected[f"images/{rel_photo}"] = reason
            if xml and (root / "labels" / Path(rel_photo).with_suffix(".xml")).exists():
                expected[f"labels/{Path(rel_photo).with_suffix('.xml').as_posix()}"] = reason

    secret = write_text(root / "outside" / "secret.txt", SECRET + "\n")

    # -- what labelImg really writes: all must be ingested with every box --
    _pair(root, "good_plain.jpg", declaration=True)
    case("good_plain.jpg", OK)
    _pair(root, "good_labelimg_tabs_verified.jpg", verified=True)
    case("good_labelimg_tabs_verified.jpg", OK)
    _pair(root, "good_upper.JPG", path=r"C:\Users\derm\PSL\good_upper.JPG")
    case("good_upper.JPG", OK)
    _pair(root, "good_mac_path.jpg", path="/Users/derm/Desktop/PSL/good_mac_path.jpg")
    case("good_mac_path.jpg", OK)
    _pair(root, "good_float.jpg", [Obj("fre", 10.4, 8.6, 40.2, 30.9)])
    case("good_float.jpg", OK)
    _pair(root, "good_no_depth.jpg", depth=None)
    case("good_no_depth.jpg", OK)
    _pair(root, "good_no_size.jpg", size=None)
    case("good_no_size.jpg", OK)
    _pair(root, "good_flags.jpg", [Obj("sl", 1, 1, 20, 20, difficult=1, truncated=1)])
    case("good_flags.jpg", OK)
    _pair(root, "good_grey.jpg", data=jpeg_bytes(colour=_colour_for("grey"), mode="L"), depth=1)
    case("good_grey.jpg", OK)
    _pair(root, "good_cmyk.jpg", data=jpeg_bytes(colour=_colour_for("cmyk"), mode="CMYK"), depth=4)
    case("good_cmyk.jpg", OK)
    _pair(root, "good_mpo.jpg", data=jpeg_bytes(colour=_colour_for("mpo"), fmt="MPO"))
    case("good_mpo.jpg", OK)
    _pair(root, "good.png", data=jpeg_bytes(colour=_colour_for("png"), fmt="PNG"))
    case("good.png", OK)
    _pair(
        root,
        "good_aliases.jpg",
        [Obj("Mel", 1, 1, 10, 10), Obj("melasma", 20, 20, 30, 30), Obj("Hori's nevus", 5, 5, 9, 9)],
    )
    case("good_aliases.jpg", OK)
    _pair(root, "naïve ñame 日本 photo (1).jpg")
    case("naïve ñame 日本 photo (1).jpg", OK)
    _pair(root, "visit 2/sub dir/nested.jpg")
    case("visit 2/sub dir/nested.jpg", OK)
    _pair(root, "good_bom.jpg")
    _label(root, "good_bom.jpg", b"\xef\xbb\xbf" + voc_xml("good_bom.jpg", [GOOD_BOX], declaration=True).encode())
    case("good_bom.jpg", OK)
    _pair(root, "good_latin1_declared.jpg")
    _label(
        root,
        "good_latin1_declared.jpg",
        voc_xml("café.jpg", [GOOD_BOX])
        .replace("<annotation>", '<?xml version="1.0" encoding="ISO-8859-1"?>\n<annotation>', 1)
        .encode("latin-1"),
    )
    case("good_latin1_declared.jpg", OK)
    _photo(root, "unlabelled.jpg", jpeg_bytes(colour=_colour_for("unlabelled")))
    case("unlabelled.jpg", OK)
    for o in range(1, 9):  # EXIF orientations, XML drawn on the displayed photo
        disp = (48, 64) if o >= 5 else (64, 48)
        raw = (disp[1], disp[0]) if o >= 5 else disp
        _pair(root, f"orientation_{o}.jpg", data=jpeg_bytes(raw, _colour_for(f"o{o}"), orientation=o), size=disp)
        case(f"orientation_{o}.jpg", "exif-frame-assumed" if o in (2, 3, 4) else OK)

    for i in range(48):  # enough photos that ingest hands them to worker processes
        if i % 3:
            _photo(root, f"bulk/photo_{i:03d}.jpg", jpeg_bytes(colour=_colour_for(f"bulk{i}")))
        else:
            _pair(root, f"bulk/photo_{i:03d}.jpg", [GOOD_BOX, Obj("sl", 1, 1, 6, 6)])
        case(f"bulk/photo_{i:03d}.jpg", OK)

    # -- fixable: kept, with a report line --
    _pair(
        root,
        "exif_raw_size_xml.jpg",
        [Obj("ota", 5, 5, 60, 40)],
        data=jpeg_bytes((64, 48), _colour_for("rawxml"), orientation=6),
        size=(64, 48),
    )
    case("exif_raw_size_xml.jpg", "exif-rotated-xml")
    _pair(root, "box_partly_outside.jpg", [GOOD_BOX, Obj("caf", 50, 40, 90, 70)])
    case("box_partly_outside.jpg", "box-outside-photo")
    _pair(root, "box_negative.jpg", [GOOD_BOX, Obj("caf", -20, -5, 20, 20)])
    case("box_negative.jpg", "box-outside-photo")
    _pair(root, "box_fully_outside.jpg", [GOOD_BOX, Obj("caf", 100, 100, 120, 120)])
    case("box_fully_outside.jpg", "box-outside-photo")
    _pair(root, "box_zero_area.jpg", [GOOD_BOX, Obj("sl", 20, 20, 20, 30)])
    case("box_zero_area.jpg", "zero-area-box")
    _pair(root, "box_swapped.jpg", [Obj("sl", 40, 30, 10, 8)])
    case("box_swapped.jpg", "swapped-corners")

    # -- photos that cannot be used --
    good = jpeg_bytes((640, 480), (90, 60, 40))
    _pair(root, "truncated.jpg", data=good[: len(good) // 2])
    case("truncated.jpg", "truncated-photo")
    _pair(root, "zero_bytes.jpg", data=b"")
    case("zero_bytes.jpg", "empty-photo")
    _pair(root, "garbage.jpg", data=bytes(range(256)) * 8)
    case("garbage.jpg", "unsupported-format")
    _pair(root, "png_named.jpg", data=jpeg_bytes(colour=_colour_for("pngj"), fmt="PNG"))
    case("png_named.jpg", "wrong-extension")
    _pair(root, "bmp_named.jpg", data=jpeg_bytes(colour=_colour_for("bmpj"), fmt="BMP"))
    case("bmp_named.jpg", "wrong-extension")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    _pair(root, "heic_named.jpg", data=heic)
    case("heic_named.jpg", "unsupported-format")
    _photo(root, "IMG_0001.HEIC", heic + b"\x01")
    case("IMG_0001.HEIC", "unsupported-format")
    _pair(root, "z_copy_of_good_plain.jpg", data=(root / "images" / "good_plain.jpg").read_bytes())
    case("z_copy_of_good_plain.jpg", "duplicate-photo")  # sorts after the original, which is kept
    write_solid_png(root / "images" / "bomb_100mp.png", 10_000, 10_000)
    case("bomb_100mp.png", "too-many-pixels")
    _photo(root, "bomb_header.jpg", jpeg_claiming_size(12_000, 12_000))
    case("bomb_header.jpg", "too-many-pixels")

    # -- label files that cannot be used (the photo is quarantined until the XML is fixed) --
    _pair(root, "xml_malformed.jpg")
    _label(root, "xml_malformed.jpg", "<annotation><object><name>mel</name>")
    case("xml_malformed.jpg", "malformed-xml")
    _pair(root, "xml_empty.jpg")
    _label(root, "xml_empty.jpg", b"")
    case("xml_empty.jpg", "malformed-xml")
    _pair(root, "xml_wrong_root.jpg")
    _label(root, "xml_wrong_root.jpg", "<html><body/></html>")
    case("xml_wrong_root.jpg", "malformed-xml")
    _pair(root, "xml_no_xmax.jpg", [Obj("mel", 1, 1, "", 5)])
    case("xml_no_xmax.jpg", "malformed-xml")
    _pair(root, "xml_nan.jpg", [GOOD_BOX, Obj("mel", "nan", 1, 5, 5)])
    case("xml_nan.jpg", "bad-coordinate")
    _pair(root, "xml_text_coord.jpg", [Obj("mel", "ten", 1, 5, 5)])
    case("xml_text_coord.jpg", "bad-coordinate")
    _pair(root, "xml_inf_size.jpg", size=None)
    _label(root, "xml_inf_size.jpg", voc_xml("x.jpg", [GOOD_BOX], ("inf", 48)))  # type: ignore[arg-type]
    case("xml_inf_size.jpg", "malformed-xml")
    _pair(root, "xml_unknown_class.jpg", [GOOD_BOX, Obj("nevus spilus", 1, 1, 5, 5)])
    case("xml_unknown_class.jpg", "unknown-class")
    _pair(root, "xml_size_mismatch.jpg", size=(1024, 768))
    case("xml_size_mismatch.jpg", "size-mismatch")
    _pair(root, "xml_not_utf8.jpg")
    _label(root, "xml_not_utf8.jpg", voc_xml("café.jpg", [GOOD_BOX]).encode("latin-1"))
    case("xml_not_utf8.jpg", "not-utf8")
    _pair(root, "xml_huge.jpg")
    filler = "\n".join(f"\t<!-- padding {i:07d} -->" for i in range(90_000))
    _label(
        root, "xml_huge.jpg", voc_xml("xml_huge.jpg", [GOOD_BOX]).replace("</annotation>", filler + "\n</annotation>")
    )
    case("xml_huge.jpg", "xml-too-large")
    for rel, text in hostile_xml(secret).items():
        _pair(root, rel)
        _label(root, rel, text)
        case(rel, "hostile-xml")
    _pair(root, "two_label_files.jpg")
    write_text(root / "labels" / "two_label_files.XML", voc_xml("two_label_files.jpg", [GOOD_BOX, GOOD_BOX]))
    case("two_label_files.jpg", OK)
    expected["labels/two_label_files.XML"] = "duplicate-xml"
    write_text(root / "labels" / "orphan_without_photo.xml", voc_xml("orphan_without_photo.jpg", [GOOD_BOX]))
    expected["labels/orphan_without_photo.xml"] = "xml-without-photo"

    # -- the file system itself --
    _photo(root, "../outside/escaped.jpg", jpeg_bytes(colour=_colour_for("escaped")))
    _link(root / "images" / "link_outside.jpg", root / "outside" / "escaped.jpg")
    case("link_outside.jpg", "outside-image-root")
    (root / "outside" / "linked folder").mkdir(parents=True, exist_ok=True)
    _photo(root, "../outside/linked folder/inside_link.jpg", jpeg_bytes(colour=_colour_for("linkdir")))
    _link(root / "images" / "linked_folder", root / "outside" / "linked folder")
    expected["images/linked_folder"] = "linked-folder"
    _pair(root, "xml_link_outside.jpg")
    (root / "labels" / "xml_link_outside.xml").unlink()
    _link(root / "labels" / "xml_link_outside.xml", secret)
    case("xml_link_outside.jpg", "outside-label-root")
    os.mkfifo(root / "images" / "pipe.jpg")  # reading it would block for ever
    expected["images/pipe.jpg"] = "not-a-file"
    os.symlink("gone.jpg", root / "images" / "broken_link.jpg")
    expected["images/broken_link.jpg"] = "not-a-file"
    os.mkfifo(root / "labels" / "pipe_label.xml")
    expected["labels/pipe_label.xml"] = "not-a-file"
    bad_name = os.fsdecode(b"bad_name_\xff\xfe.jpg")
    if _supports_raw_names(root):
        _photo(root, bad_name, jpeg_bytes(colour=_colour_for("badname")))
        expected["images/" + bad_name] = "bad-file-name"
    return expected


def hostile_xml(secret: Path) -> dict[str, str | bytes]:
    """XML that tries to read a local file or explode in memory; all must be refused unread."""
    url = secret.resolve().as_uri()
    body = (
        "<annotation><filename>x.jpg</filename><size><width>64</width><height>48</height></size>"
        "<object><name>mel&xxe;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>"
        "</bndbox></object><path>&xxe;</path></annotation>"
    )
    xxe = f'<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "{url}">]>\n{body}'
    lol = (
        '<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
        + "]>\n"
        + body.replace("&xxe;", "&lol9;")
    )
    return {
        "hostile_xxe.jpg": xxe,
        "hostile_xxe_utf16.jpg": xxe.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode(
            "utf-16"
        ),
        "hostile_xxe_parameter.jpg": (
            f'<!DOCTYPE annotation [<!ENTITY % p SYSTEM "{url}"> %p;]>\n' + body.replace("&xxe;", "")
        ),
        "hostile_billion_laughs.jpg": lol,
        "hostile_doctype_only.jpg": '<!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd">\n'
        + body.replace("&xxe;", ""),
    }


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(os.path.relpath(target, link.parent), link)


def _supports_raw_names(root: Path) -> bool:
    """Linux file systems take any bytes in a name; macOS and Windows refuse non-UTF-8 ones."""
    probe = root / os.fsdecode(b"probe_\xff")
    try:
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except (OSError, UnicodeEncodeError):
        return False


def input_files(root: Path) -> list[str]:
    """Every input ingest must account for: candidate photos, XML files and folder links (relative to root)."""
    found = []
    for top in ("images", "labels"):
        for dirpath, dirnames, filenames in os.walk(root / top):
            found += [Path(dirpath, d).relative_to(root).as_posix() for d in dirnames if Path(dirpath, d).is_symlink()]
            found += [Path(dirpath, f).relative_to(root).as_posix() for f in filenames]
    return sorted(found)


def main(argv: Iterable[str] = ()) -> int:
    args = list(argv)
    if len(args) != 1:
        print("usage: python tests/corpus/make_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    if out.exists():
        shutil.rmtree(out)
    expected = build(out)
    print(f"wrote {len(expected)} corpus inputs to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
