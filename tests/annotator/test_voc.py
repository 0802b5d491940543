"""annotator.formats.voc: reads what labelImg really writes, refuses what is hostile, and writes files
that read back identically (our own files and the 67 real labelImg files of the playing-card set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.boxes import voc_to_box
from annotator.classes import ClassTable
from annotator.errors import InputFileError
from annotator.formats.voc import MAX_XML_BYTES, parse_voc_bytes, read_voc, voc_xml_bytes, write_voc
from annotator.types import Box
from tests.corpus.make_corpus import SECRET, Obj, hostile_xml, voc_xml, write_text
from tests.corpus.psl_testkit import CARD_CLASSES, PLAYING_CARDS


def parse(text: str | bytes):
    return parse_voc_bytes(text.encode("utf-8") if isinstance(text, str) else text, "photo.xml")


def refused(text: str | bytes) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        parse(text)
    return info.value


# ---- what labelImg writes ---------------------------------------------------------------------


def test_reads_labelimg_layout_without_declaration_with_tabs_and_verified():
    ann = parse(voc_xml("IMG_1.jpg", [Obj("mel", 10, 8, 40, 30)], (64, 48), verified=True))
    assert ann.verified
    assert (ann.filename, ann.width, ann.height, ann.depth) == ("IMG_1.jpg", 64, 48, 3)
    assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in ann.objects] == [("mel", 10, 8, 40, 30)]


def test_reads_file_with_xml_declaration_and_space_indentation():
    ann = parse(voc_xml("a.jpg", [Obj("sl", 1, 2, 3, 4)], declaration=True, indent="  "))
    assert len(ann.objects) == 1 and not ann.verified


def test_reads_utf8_byte_order_mark():
    ann = parse(b"\xef\xbb\xbf" + voc_xml("a.jpg", [Obj("sl", 1, 2, 3, 4)], declaration=True).encode())
    assert len(ann.objects) == 1


@pytest.mark.parametrize("path", [r"C:\Users\derm\Desktop\PSL\IMG_0042.JPG", "/Users/derm/Desktop/PSL/IMG_0042.JPG"])
def test_windows_and_mac_absolute_paths_are_kept_as_text_only(path):
    ann = parse(voc_xml("IMG_0042.JPG", [Obj("sl", 1, 2, 3, 4)], path=path))
    assert (ann.path, ann.filename) == (path, "IMG_0042.JPG")


def test_float_coordinates_are_read_as_written():
    ann = parse(voc_xml("a.jpg", [Obj("fre", 10.4, 8.6, 40.25, 30.9)]))
    o = ann.objects[0]
    assert (o.xmin, o.ymin, o.xmax, o.ymax) == (10.4, 8.6, 40.25, 30.9)


def test_missing_depth_is_none():
    ann = parse(voc_xml("a.jpg", [], (64, 48), depth=None))
    assert (ann.width, ann.height, ann.depth) == (64, 48, None)


def test_missing_size_leaves_the_size_to_the_photo():
    ann = parse(voc_xml("a.jpg", [Obj("sl", 1, 2, 3, 4)], size=None))
    assert (ann.width, ann.height) == (None, None)


def test_zero_size_written_when_labelimg_could_not_read_the_photo_is_ignored():
    ann = parse(voc_xml("a.jpg", [Obj("sl", 1, 2, 3, 4)], size=(0, 0)))
    assert (ann.width, ann.height) == (None, None)


def test_greyscale_depth_one():
    assert parse(voc_xml("a.jpg", [], depth=1)).depth == 1


def test_truncated_and_difficult_flags():
    ann = parse(voc_xml("a.jpg", [Obj("sl", 1, 2, 3, 4, difficult=1, truncated=1), Obj("sl", 1, 2, 3, 4)]))
    assert [(o.difficult, o.truncated) for o in ann.objects] == [(True, True), (False, False)]


def test_object_without_flags_or_pose():
    text = (
        "<annotation><object><name>ota</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"
        "<ymax>4</ymax></bndbox></object></annotation>"
    )
    o = parse(text).objects[0]
    assert (o.name, o.difficult, o.truncated, o.score) == ("ota", False, False, None)


def test_latin1_with_its_declaration_is_read():
    text = voc_xml("café.jpg", [Obj("mel", 1, 2, 3, 4)]).replace(
        "<annotation>", '<?xml version="1.0" encoding="ISO-8859-1"?>\n<annotation>', 1
    )
    assert parse(text.encode("latin-1")).filename == "café.jpg"


# ---- what is refused, with which reason ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        ("<annotation><object><name>mel</name>", "malformed-xml"),
        ("", "malformed-xml"),
        ("   \n", "malformed-xml"),
        ("<html/>", "malformed-xml"),
        ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>", "malformed-xml"),
        ("<annotation><object><name>mel</name></object></annotation>", "malformed-xml"),
        ("<annotation><size><width>wide</width></size></annotation>", "malformed-xml"),
        ("<annotation><size><width>inf</width><height>2</height></size></annotation>", "malformed-xml"),
    ],
    ids=["unclosed", "empty", "blank", "wrong-root", "no-name", "no-bndbox", "size-text", "size-inf"],
)
def test_malformed_files_are_refused(text, reason):
    assert refused(text).reason == reason


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "ten", ""])
def test_non_finite_or_missing_coordinates_are_refused(value):
    err = refused(voc_xml("a.jpg", [Obj("mel", value, 1, 5, 5)]))
    assert err.reason == ("malformed-xml" if value == "" else "bad-coordinate")
    assert "xmin" in str(err)


def test_a_score_that_is_not_a_number_is_refused():
    text = voc_xml("a.jpg", [Obj("mel", 1, 1, 5, 5)]).replace("</bndbox>", "</bndbox><score>high</score>")
    assert refused(text).reason == "bad-coordinate"


def test_latin1_without_declaration_is_reported_as_not_utf8():
    assert refused(voc_xml("café.jpg", []).encode("latin-1")).reason == "not-utf8"


def test_file_larger_than_any_labelimg_file_is_refused_unparsed():
    text = voc_xml("a.jpg", []).replace("</annotation>", " " * MAX_XML_BYTES + "</annotation>")
    assert refused(text).reason == "xml-too-large"


def test_huge_file_on_disk_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.xml"
    with open(path, "wb") as fh:  # sparse: 1 GB on paper, nothing on disk
        fh.truncate(1 << 30)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read a huge file into memory"))
    with pytest.raises(InputFileError) as info:
        read_voc(path)
    assert info.value.reason == "xml-too-large"


@pytest.mark.parametrize("name", sorted(hostile_xml(Path("/nonexistent")).keys()))
def test_hostile_xml_is_refused_and_never_reads_the_local_file(tmp_path, name):
    secret = write_text(tmp_path / "secret.txt", SECRET)
    data = hostile_xml(secret)[name]
    with pytest.raises(InputFileError) as info:
        parse(data)
    assert info.value.reason == "hostile-xml"
    assert SECRET not in str(info.value)


# ---- writing ------------------------------------------------------------------------------------

BOXES = (Box("sl", 0, 0, 10, 5), Box("mel", 12, 7, 40, 33, difficult=True), Box("hori", 3, 4, 5, 6, truncated=True))


def test_writer_output_reads_back_identically(tmp_path):
    target = tmp_path / "sub" / "a.xml"
    write_voc(
        target,
        filename="a.jpg",
        path="/photos/a.jpg",
        width=64,
        height=48,
        depth=3,
        boxes=BOXES,
        verified=True,
        provenance={"source": "manual", "round": None},
    )
    ann = read_voc(target)
    assert (ann.filename, ann.path, ann.width, ann.height, ann.depth, ann.verified) == (
        "a.jpg",
        "/photos/a.jpg",
        64,
        48,
        3,
        True,
    )
    back = tuple(
        voc_to_box(o.name, o.xmin, o.ymin, o.xmax, o.ymax, difficult=o.difficult, truncated=o.truncated)
        for o in ann.objects
    )
    assert back == BOXES
    assert ann.extra == {"source": "manual"}


def test_writer_output_is_labelimg_layout():
    text = voc_xml_bytes(filename="a.jpg", path="a.jpg", width=64, height=48, depth=3, boxes=BOXES[:1]).decode()
    assert text.startswith("<annotation>\n\t<folder>")  # no declaration, tabs: what labelImg writes
    assert "<xmin>1</xmin>" in text and "<xmax>10</xmax>" in text and "<ymax>5</ymax>" in text
    assert "<pose>Unspecified</pose>" in text


def test_scores_are_written_where_labelimg_ignores_them_and_read_back():
    text = voc_xml_bytes(
        filename="a.jpg", path="a.jpg", width=64, height=48, depth=3, boxes=[Box("sl", 0, 0, 10, 5, score=0.8125)]
    )
    assert parse(text).objects[0].score == pytest.approx(0.8125)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a.xml"
    for n in range(3):
        write_voc(target, filename="a.jpg", path="a.jpg", width=64, height=48, depth=3, boxes=BOXES[:n])
    assert [p.name for p in tmp_path.iterdir()] == ["a.xml"]
    assert len(read_voc(target).objects) == 2


# ---- class names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["mel", "Mel", "MEL", " melasma ", "Melasma", "chloasma"])
def test_melasma_aliases(raw):
    assert ClassTable().normalise(raw) == "mel"


@pytest.mark.parametrize(
    "raw, name",
    [
        ("Hori's nevus", "hori"),
        ("HORI", "hori"),
        ("Nevus of Ota", "ota"),
        ("solar  lentigo", "sl"),
        ("freckles", "fre"),
        ("Cafe-au-lait", "caf"),
    ],
)
def test_built_in_aliases(raw, name):
    assert ClassTable().normalise(raw) == name


def test_custom_alias_from_config():
    table = ClassTable(aliases={"Hori nevus (ABNOM)": "hori", "pigment": "nonexistent"})
    assert table.normalise("hori nevus (abnom)") == "hori"
    assert table.normalise("pigment") is None  # an alias to a class the workspace lacks is ignored


def test_unknown_names_are_none():
    assert ClassTable().normalise("nevus spilus") is None


# ---- the real labelImg files ---------------------------------------------------------------------

needs_cards = pytest.mark.skipif(not PLAYING_CARDS.is_dir(), reason=f"{PLAYING_CARDS} not present")


@needs_cards
def test_every_playing_card_file_round_trips_through_our_writer(tmp_path):
    files = sorted(PLAYING_CARDS.glob("*.xml"))
    assert len(files) == 67
    for xml in files:
        first = read_voc(xml)
        boxes = [
            voc_to_box(o.name, o.xmin, o.ymin, o.xmax, o.ymax, difficult=o.difficult, truncated=o.truncated)
            for o in first.objects
        ]
        assert {b.label for b in boxes} <= set(CARD_CLASSES)
        out = tmp_path / xml.name
        write_voc(
            out,
            filename=first.filename,
            path=first.path,
            width=first.width,
            height=first.height,
            depth=first.depth,
            boxes=boxes,
        )
        second = read_voc(out)
        assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated) for o in second.objects] == [
            (o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated) for o in first.objects
        ], xml.name
        assert (second.filename, second.path, second.width, second.height, second.depth) == (
            first.filename,
            first.path,
            first.width,
            first.height,
            first.depth,
        )
