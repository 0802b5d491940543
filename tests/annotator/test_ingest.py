"""annotator.ingest: every photo and labelImg file is either ingested (with all its boxes) or
named in a report line with a reason code and an action; one bad file never costs another.

Each bad-input test ingests the bad file beside two control photos (see psl_testkit.PhotoFolder.controls)
and checks the controls came through untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from annotator.boxes import orient_box
from annotator.config import Config
from annotator.errors import ConfigError
from annotator.formats.voc import read_voc
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import PHONES
from annotator.types import Box, DeviceClass, LabelVersion, Source
from tests.corpus.make_corpus import (
    GOOD_BOX,
    SECRET,
    Obj,
    hostile_xml,
    jpeg_bytes,
    jpeg_claiming_size,
    voc_xml,
    write_solid_png,
    write_text,
)
from tests.corpus.psl_testkit import CARD_CLASSES, PLAYING_CARDS, count_voc_objects, unique_colour

GOOD = Box("mel", 9, 7, 40, 30)  # GOOD_BOX (VOC 10,8,40,30) in our frame


def assert_quarantined(result, rel: str, reason: str) -> None:
    line = result.only_line(rel)
    assert (line.reason, line.action) == (reason, "quarantined")
    assert not result.is_ingested(rel)
    result.assert_controls_intact()


# ---- real and synthetic data sets --------------------------------------------------------------


@pytest.mark.skipif(not PLAYING_CARDS.is_dir(), reason=f"{PLAYING_CARDS} not present")
def test_playing_cards_all_67_photos_with_all_their_boxes(run_ingest):
    counted = count_voc_objects(PLAYING_CARDS)
    result = run_ingest(images=PLAYING_CARDS, labels=None, classes=CARD_CLASSES)
    assert (result.report.added, result.report.labelled, result.report.unlabelled) == (67, 67, 0)
    assert result.report.boxes == counted.objects == 143
    assert result.report.lines == []
    for rec in result.ws.store.labels.images():
        boxes = result.boxes(rec.path)
        assert len(boxes) == counted.per_file[Path(rec.path).stem], rec.path
        xml = read_voc(PLAYING_CARDS / (Path(rec.path).stem + ".xml"))
        assert [b.label for b in boxes] == [o.name for o in xml.objects]
        assert [(b.x1 + 1, b.y1 + 1, b.x2, b.y2) for b in boxes] == [
            (o.xmin, o.ymin, o.xmax, o.ymax) for o in xml.objects
        ]


def test_synthetic_set_counts_match_what_was_generated(tmp_path, synth_set):
    data = synth_set(60, 0.38, 3)
    truth = {p.stem: read_voc(p) for p in (data / "labels").glob("*.xml")}
    with Workspace.create(tmp_path / "ws", Config(images=data / "images", labels=data / "labels")) as ws:
        report = ingest(ws, images=data / "images", labels=data / "labels")
        status = ws.store.status_counts()
    assert report.lines == []
    assert status["images"] == 60
    assert (
        status["by_status"] == {"manual": len(truth), "unlabelled": 60 - len(truth)} == {"manual": 23, "unlabelled": 37}
    )
    photos_by_class: dict[str, int] = {}
    boxes_by_class: dict[str, int] = {}
    for ann in truth.values():
        for name in {o.name for o in ann.objects}:
            photos_by_class[name] = photos_by_class.get(name, 0) + 1
        for o in ann.objects:
            boxes_by_class[o.name] = boxes_by_class.get(o.name, 0) + 1
    assert status["photos_by_class"] == dict(sorted(photos_by_class.items()))
    assert status["boxes_by_class"] == dict(sorted(boxes_by_class.items()))
    phone_makes = {make for make, _ in PHONES}
    phones = sum(Image.open(p).getexif().get(0x010F) in phone_makes for p in (data / "images").glob("*.jpg"))
    assert status["by_device"] == {"dslr": 60 - phones, "phone": phones}


# ---- what labelImg writes is ingested as written ----------------------------------------------


@pytest.mark.parametrize(
    "rel, voc",
    [
        ("plain.jpg", {}),
        ("declared.jpg", {"declaration": True}),
        ("verified.jpg", {"verified": True}),
        ("IMG_0042.JPG", {"path": r"C:\Users\derm\Desktop\PSL\IMG_0042.JPG"}),
        ("mac.jpg", {"path": "/Users/derm/Desktop/PSL/mac.jpg"}),
        ("no_depth.jpg", {"depth": None}),
        ("naïve ñame 日本 photo (1).jpg", {}),
        ("visit 2/sub dir/nested.jpg", {}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_labelimg_variants_are_ingested_with_their_box(folder, run_ingest, rel, voc):
    folder.controls()
    folder.pair(rel, **voc)
    result = run_ingest()
    assert result.boxes(rel) == (GOOD,)
    assert result.lines() == []
    result.assert_controls_intact()


def test_float_coordinates_are_kept(folder, run_ingest):
    folder.pair("float.jpg", [Obj("fre", 10.4, 8.6, 40.2, 30.9)])
    assert run_ingest().boxes("float.jpg") == (Box("fre", 10.4 - 1, 8.6 - 1, 40.2, 30.9),)


def test_missing_size_is_taken_from_the_photo(folder, run_ingest):
    folder.photo("no_size.jpg", size=(80, 60))
    folder.xml("no_size.jpg", [Obj("mel", 1, 1, 80, 60)], size=None)
    result = run_ingest()
    assert result.boxes("no_size.jpg") == (Box("mel", 0, 0, 80, 60),)
    assert (result.ws.store.labels.image("no_size.jpg").width, result.ws.store.labels.image("no_size.jpg").height) == (
        80,
        60,
    )


def test_truncated_and_difficult_flags_are_kept(folder, run_ingest):
    folder.pair("flags.jpg", [Obj("sl", 1, 1, 20, 20, difficult=1, truncated=1)])
    (box,) = run_ingest().boxes("flags.jpg")
    assert box.difficult and box.truncated


@pytest.mark.parametrize("mode, depth", [("L", 1), ("CMYK", 4)])
def test_greyscale_and_cmyk_jpegs_are_ingested(folder, run_ingest, mode, depth):
    folder.controls()
    folder.photo(f"{mode}.jpg", mode=mode)
    folder.xml(f"{mode}.jpg", depth=depth)
    result = run_ingest()
    assert result.boxes(f"{mode}.jpg") == (GOOD,)
    result.assert_controls_intact()


@pytest.mark.parametrize(
    "rel, fmt", [("scan.png", "PNG"), ("scan.bmp", "BMP"), ("phone_mpo.jpg", "MPO"), ("scan.tif", "TIFF")]
)
def test_other_photo_formats_under_their_own_name_are_ingested(folder, run_ingest, rel, fmt):
    folder.photo(rel, fmt=fmt)
    folder.xml(rel)
    assert run_ingest().boxes(rel) == (GOOD,)


def test_class_aliases_become_the_canonical_names(folder, run_ingest):
    folder.pair(
        "aliases.jpg", [Obj("Mel", 1, 1, 10, 10), Obj("melasma", 2, 2, 10, 10), Obj("Hori's nevus", 3, 3, 9, 9)]
    )
    assert [b.label for b in run_ingest().boxes("aliases.jpg")] == ["mel", "mel", "hori"]


def test_custom_alias_from_the_config(folder, run_ingest):
    folder.pair("abnom.jpg", [Obj("Hori nevus (ABNOM)", 1, 1, 10, 10)])
    assert [b.label for b in run_ingest(aliases={"hori nevus (abnom)": "hori"}).boxes("abnom.jpg")] == ["hori"]


def test_photos_without_xml_join_the_unlabelled_pool(folder, run_ingest):
    folder.controls()
    result = run_ingest()
    assert result.ws.store.labels.unlabelled_paths() == ["control_unlabelled.jpg"]
    assert (result.report.labelled, result.report.unlabelled) == (1, 1)


def test_xml_beside_the_photos_is_found_without_a_label_folder(folder, run_ingest):
    folder.photo("beside.jpg")
    write_text(folder.images / "beside.xml", voc_xml("beside.jpg", [GOOD_BOX]))
    assert run_ingest(labels=None).boxes("beside.jpg") == (GOOD,)


def test_xml_path_and_filename_are_never_used_to_find_the_photo(folder, run_ingest):
    folder.photo("a.jpg")
    folder.photo("b.jpg")
    folder.xml("a.jpg", path="b.jpg")
    folder.labels.joinpath("a.xml").write_text(
        folder.labels.joinpath("a.xml").read_text().replace("<filename>a.jpg", "<filename>b.jpg")
    )
    result = run_ingest()
    assert result.boxes("a.jpg") == (GOOD,)
    assert result.ws.store.labels.current_label("b.jpg") is None


def test_camera_make_sets_the_device_class(folder, run_ingest):
    folder.photo("phone.jpg", make="Apple", model="iPhone 13")
    folder.photo("dslr.jpg", make="Canon", model="Canon EOS 800D")
    folder.photo("scanner.jpg")
    store = run_ingest().ws.store
    assert [store.labels.image(p).device_class for p in ("phone.jpg", "dslr.jpg", "scanner.jpg")] == [
        DeviceClass.PHONE,
        DeviceClass.DSLR,
        DeviceClass.UNKNOWN,
    ]


# ---- EXIF orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_xml_on_the_displayed_photo_is_kept_for_every_orientation(folder, run_ingest, orientation):
    raw = (64, 48)
    shown = (48, 64) if orientation >= 5 else (64, 48)
    folder.photo("o.jpg", size=raw, orientation=orientation)
    folder.xml("o.jpg", [Obj("ota", 3, 5, 20, 40)], size=shown)
    result = run_ingest()
    rec = result.ws.store.labels.image("o.jpg")
    assert ((rec.width, rec.height), rec.orientation) == (shown, orientation)
    assert result.boxes("o.jpg") == (Box("ota", 2, 4, 20, 40),)
    if orientation in (2, 3, 4):  # same size either way: the frame is assumed, and the user told so
        line = result.only_line("o.jpg")
        assert (line.reason, line.action) == ("exif-frame-assumed", "note")
    else:
        assert result.lines() == []


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_xml_on_the_stored_unrotated_photo_is_rotated_into_the_displayed_frame(folder, run_ingest, orientation):
    folder.photo("raw.jpg", size=(64, 48), orientation=orientation)
    folder.xml("raw.jpg", [Obj("ota", 3, 5, 60, 40)], size=(64, 48))  # labelImg ignores EXIF: it saw 64x48
    result = run_ingest()
    assert result.boxes("raw.jpg") == (orient_box(Box("ota", 2, 4, 60, 40), 64, 48, orientation),)
    line = result.only_line("raw.jpg")
    assert (line.reason, line.action) == ("exif-rotated-xml", "fixed")


def test_xml_size_matching_neither_frame_quarantines_the_photo(folder, run_ingest):
    folder.controls()
    folder.photo("resized.jpg", size=(64, 48), orientation=6)
    folder.xml("resized.jpg", size=(1024, 768))
    result = run_ingest()
    assert_quarantined(result, "resized.jpg", "size-mismatch")
    assert "1024x768" in result.only_line("resized.jpg").message


# ---- photos that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rel, data, reason",
    [
        ("zero_bytes.jpg", b"", "empty-photo"),
        ("garbage.jpg", bytes(range(256)) * 8, "unsupported-format"),
        ("heic_named.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "unsupported-format"),
        ("IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(65), "unsupported-format"),
        ("png_named.jpg", jpeg_bytes(fmt="PNG"), "wrong-extension"),
        ("bmp_named.jpg", jpeg_bytes(fmt="BMP"), "wrong-extension"),
        ("jpeg_named.png", jpeg_bytes(), "wrong-extension"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else None,
)
def test_unusable_photo_is_quarantined_with_its_reason(folder, run_ingest, rel, data, reason):
    folder.controls()
    folder.photo(rel, data)
    folder.xml(rel)
    assert_quarantined(run_ingest(), rel, reason)


def test_heic_report_says_what_the_file_is(folder, run_ingest):
    folder.photo("heic_named.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    assert "HEIC" in run_ingest().only_line("heic_named.jpg").message


def test_png_named_jpg_report_names_both_formats(folder, run_ingest):
    folder.photo("png_named.jpg", jpeg_bytes(fmt="PNG"))
    message = run_ingest().only_line("png_named.jpg").message
    assert "PNG" in message and ".jpg" in message


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_photo_is_quarantined(folder, run_ingest, keep):
    folder.controls()
    data = jpeg_bytes((640, 480), (90, 60, 40))
    folder.photo("truncated.jpg", data[: int(len(data) * keep)])
    folder.xml("truncated.jpg")
    assert_quarantined(run_ingest(), "truncated.jpg", "truncated-photo")


@pytest.mark.parametrize("make", ["png", "jpeg_header"])
def test_100_megapixel_photo_is_refused_without_decoding_it(folder, run_ingest, make):
    folder.controls()
    if make == "png":  # a real, valid 10000 x 10000 PNG (~12 kB on disk, 100-300 MB decoded)
        write_solid_png(folder.images / "bomb.png", 10_000, 10_000)
        rel = "bomb.png"
    else:
        rel = "bomb.jpg"
        folder.photo(rel, jpeg_claiming_size(12_000, 12_000))
    start = time.perf_counter()
    result = run_ingest()
    assert time.perf_counter() - start < 10
    assert_quarantined(result, rel, "too-many-pixels")
    assert "MP" in result.only_line(rel).message


def test_100_megapixel_guard_keeps_memory_low(tmp_path):
    """In a fresh process (peak memory is per process): inspecting the bomb costs almost nothing."""
    bomb = write_solid_png(tmp_path / "bomb.png", 10_000, 10_000)
    script = (
        "import resource, sys\n"
        "from annotator.images import inspect_photo\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    inspect_photo(sys.argv[1])\nexcept Exception as exc:\n    print(exc.reason)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[0] == "too-many-pixels"
    assert int(out[1]) < 30, f"inspecting the 100-MP photo grew memory by {out[1]} MB (decoding it takes ~100 MB)"


def test_identical_photos_keep_the_first_and_quarantine_the_copy(folder, run_ingest):
    folder.controls()
    folder.pair("a_original.jpg")
    shutil.copy(folder.images / "a_original.jpg", folder.images / "b_copy.jpg")
    folder.xml("b_copy.jpg", [Obj("sl", 1, 1, 5, 5)])
    result = run_ingest()
    assert result.boxes("a_original.jpg") == (GOOD,)
    assert_quarantined(result, "b_copy.jpg", "duplicate-photo")
    assert "a_original.jpg" in result.only_line("b_copy.jpg").message


def test_link_escaping_the_image_root_is_quarantined(folder, run_ingest, tmp_path):
    folder.controls()
    outside = tmp_path / "elsewhere" / "patient.jpg"
    outside.parent.mkdir()
    outside.write_bytes(jpeg_bytes(colour=unique_colour("elsewhere")))
    os.symlink(outside, folder.images / "link.jpg")
    result = run_ingest()
    assert_quarantined(result, "link.jpg", "outside-image-root")


def test_link_inside_the_image_root_is_just_a_duplicate(folder, run_ingest):
    folder.pair("real.jpg")
    os.symlink("real.jpg", folder.images / "z_alias.jpg")
    result = run_ingest()
    assert result.boxes("real.jpg") == (GOOD,)
    assert result.only_line("z_alias.jpg").reason == "duplicate-photo"


def test_linked_folder_is_reported_not_silently_skipped(folder, run_ingest, tmp_path):
    folder.controls()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "inside.jpg").write_bytes(jpeg_bytes(colour=unique_colour("inside")))
    os.symlink(elsewhere, folder.images / "visit 3")
    result = run_ingest()
    line = result.only_line("visit 3")
    assert (line.reason, line.action) == ("linked-folder", "ignored")
    result.assert_controls_intact()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
def test_a_folder_that_cannot_be_listed_is_reported(folder, run_ingest):
    folder.controls()
    locked = folder.images / "locked"
    locked.mkdir()
    (locked / "x.jpg").write_bytes(jpeg_bytes(colour=unique_colour("locked")))
    locked.chmod(0)
    try:
        result = run_ingest()
    finally:
        locked.chmod(0o755)
    line = result.only_line("locked")
    assert (line.reason, line.action) == ("unreadable-folder", "ignored")
    result.assert_controls_intact()


def test_a_pipe_or_a_broken_link_named_like_a_photo_is_reported_not_read(folder, run_ingest):
    folder.controls()
    os.mkfifo(folder.images / "pipe.jpg")  # reading it would block for ever
    os.symlink("gone.jpg", folder.images / "broken.jpg")
    os.mkfifo(folder.labels / "control_unlabelled.xml")
    result = run_ingest()
    for rel in ("pipe.jpg", "broken.jpg", "control_unlabelled.xml"):
        line = result.only_line(rel)
        assert (line.reason, line.action) == ("not-a-file", "ignored")
    assert not result.is_ingested("pipe.jpg")
    result.assert_controls_intact()


def test_file_name_that_is_not_utf8_is_reported(folder, run_ingest):
    folder.controls()
    name = os.fsdecode(b"scan_\xff.jpg")
    try:
        folder.photo(name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    result = run_ingest()
    (line,) = result.lines(reason="bad-file-name")
    assert line.action == "quarantined" and line.path == "scan_\\xff.jpg"
    assert "scan_\\xff.jpg" in (result.ws.reports_dir / "ingest.txt").read_text("utf-8")
    result.assert_controls_intact()


def test_problems_found_by_worker_processes_are_reported_like_any_other(folder, run_ingest):
    # a large folder is inspected by worker processes; their findings must come back, not kill the pool
    for i in range(70):
        folder.photo(f"bulk/p{i:03d}.jpg")
    folder.controls()
    folder.photo("zero.jpg", b"")
    folder.pair("bad_xml.jpg")
    folder.xml("bad_xml.jpg", raw="<annotation>")
    result = run_ingest(workers=2)
    assert (result.report.added, result.report.quarantined) == (72, 2)
    assert result.only_line("zero.jpg").reason == "empty-photo"
    assert result.only_line("bad_xml.jpg").reason == "malformed-xml"
    result.assert_controls_intact()


# ---- label files that cannot be used ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("<annotation><object><name>mel</name>", "malformed-xml"),
        ("", "malformed-xml"),
        ("<html><body/></html>", "malformed-xml"),
        (voc_xml("x.jpg", [GOOD_BOX, Obj("mel", "nan", 1, 5, 5)]), "bad-coordinate"),
        (voc_xml("x.jpg", [Obj("mel", 1, 1, "", 5)]), "malformed-xml"),
        (voc_xml("café.jpg", [GOOD_BOX]).encode("latin-1"), "not-utf8"),
    ],
    ids=["unclosed", "empty", "wrong-root", "nan", "missing-xmax", "latin1"],
)
def test_unusable_xml_quarantines_its_photo(folder, run_ingest, raw, reason):
    folder.controls()
    folder.photo("x.jpg")
    folder.xml("x.jpg", raw=raw)
    result = run_ingest()
    assert_quarantined(result, "x.jpg", reason)
    assert result.only_line("x.jpg").message.startswith("x.xml: ")


def test_huge_xml_is_refused(folder, run_ingest):
    folder.controls()
    folder.photo("x.jpg")
    folder.xml("x.jpg", raw=voc_xml("x.jpg", [GOOD_BOX]).replace("</annotation>", " " * 3_000_000 + "</annotation>"))
    assert_quarantined(run_ingest(), "x.jpg", "xml-too-large")


@pytest.mark.parametrize("name", sorted(hostile_xml(Path("/nonexistent")).keys()))
def test_hostile_xml_is_refused_and_the_secret_never_appears_anywhere(folder, run_ingest, tmp_path, name):
    secret = write_text(tmp_path / "outside" / "secret.txt", SECRET + "\n")
    folder.controls()
    folder.photo("x.jpg")
    folder.xml("x.jpg", raw=hostile_xml(secret)[name])
    start = time.perf_counter()
    result = run_ingest()
    assert time.perf_counter() - start < 10
    assert_quarantined(result, "x.jpg", "hostile-xml")
    result.ws.close()
    assert_secret_nowhere(result, tmp_path / "ws")


def assert_secret_nowhere(result, ws_root: Path) -> None:
    assert SECRET not in json.dumps(result.report.to_dict())
    for path in ws_root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_xml_link_escaping_the_label_folder_is_not_read(folder, run_ingest, tmp_path):
    secret = write_text(tmp_path / "outside" / "secret.xml", voc_xml(SECRET, [GOOD_BOX]))
    folder.controls()
    folder.photo("x.jpg")
    folder.labels.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, folder.labels / "x.xml")
    result = run_ingest()
    assert_quarantined(result, "x.jpg", "outside-label-root")
    result.ws.close()
    assert_secret_nowhere(result, tmp_path / "ws")


def test_a_second_label_file_for_the_same_photo_is_reported_and_labelimgs_own_used(folder, run_ingest):
    folder.pair("x.jpg")
    write_text(folder.labels / "x.XML", voc_xml("x.jpg", [Obj("sl", 1, 1, 5, 5)]))
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.XML")
    assert (line.reason, line.action) == ("duplicate-xml", "ignored")


def test_linked_label_folder_is_reported(folder, run_ingest, tmp_path):
    folder.controls()
    elsewhere = tmp_path / "elsewhere"
    write_text(elsewhere / "x.xml", voc_xml("x.jpg", [GOOD_BOX]))
    folder.photo("visit 3/x.jpg")
    os.symlink(elsewhere, folder.labels / "visit 3")
    result = run_ingest()
    assert result.only_line("visit 3").reason == "linked-folder"
    assert result.ws.store.labels.current_label("visit 3/x.jpg") is None
    result.assert_controls_intact()


def test_the_workspace_inside_the_image_folder_is_not_ingested(tmp_path, folder):
    folder.controls()
    cfg = Config(images=folder.images, labels=folder.labels)
    with Workspace.create(folder.images / "ws", cfg) as ws:
        ingest(ws, images=folder.images, labels=folder.labels)
        (ws.root / "rounds").mkdir()
        (ws.root / "rounds" / "crop.jpg").write_bytes(jpeg_bytes(colour=(1, 2, 3)))
        report = ingest(ws, images=folder.images, labels=folder.labels)
        assert (report.scanned, report.lines) == (2, [])


def test_xml_without_its_photo_is_reported_and_ignored(folder, run_ingest):
    folder.controls()
    write_text(folder.labels / "lost.xml", voc_xml("lost.jpg", [GOOD_BOX]))
    result = run_ingest()
    line = result.only_line("lost.xml")
    assert (line.reason, line.action) == ("xml-without-photo", "ignored")
    result.assert_controls_intact()


def test_unknown_class_quarantines_the_photo_and_names_the_class(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [GOOD_BOX, Obj("nevus spilus", 1, 1, 5, 5)])
    result = run_ingest()
    assert_quarantined(result, "x.jpg", "unknown-class")
    assert "'nevus spilus'" in result.only_line("x.jpg").message
    assert "aliases" in result.only_line("x.jpg").message


# ---- box problems: the photo is kept, the box fixed or dropped, and it is reported -------------


@pytest.mark.parametrize("bad", [Obj("sl", 20, 20, 20, 30), Obj("sl", 20, 20, 30, 20)], ids=["no-width", "no-height"])
def test_zero_area_box_is_dropped_and_the_rest_kept(folder, run_ingest, bad):
    folder.controls()
    folder.pair("x.jpg", [GOOD_BOX, bad])
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("zero-area-box", "box dropped")
    result.assert_controls_intact()


def test_box_partly_outside_is_clipped_to_the_photo(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", 50, 40, 90, 70)])
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD, Box("caf", 49, 39, 64, 48))
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("box-outside-photo", "clipped")
    result.assert_controls_intact()


def test_negative_coordinates_are_clipped(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [Obj("caf", -20, -5, 20, 20)])
    result = run_ingest()
    assert result.boxes("x.jpg") == (Box("caf", 0, 0, 20, 20),)
    assert result.only_line("x.jpg").action == "clipped"
    result.assert_controls_intact()


def test_box_fully_outside_is_dropped(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", 100, 100, 120, 120)])
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("box-outside-photo", "box dropped")
    result.assert_controls_intact()


def test_labelimg_edge_rounding_is_fixed_silently(folder, run_ingest):
    # labelImg writes xmin=0 or xmax=width+1 for a box touching the edge; that is not worth a line
    folder.pair("x.jpg", [Obj("sl", 0, 0, 65, 49)])
    result = run_ingest()
    assert result.boxes("x.jpg") == (Box("sl", 0, 0, 64, 48),)
    assert result.lines() == []


def test_swapped_corners_are_fixed(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [Obj("mel", 40, 30, 10, 8)])
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("swapped-corners", "fixed")
    result.assert_controls_intact()


# ---- re-running --------------------------------------------------------------------------------


def _snapshot(ws: Workspace) -> tuple:
    store = ws.store
    return (
        sorted(store.labels.known_paths()),
        {p: store.labels.history(p) for p in store.labels.known_paths()},
        store.status_counts(),
    )


def test_rerunning_is_idempotent(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg", [GOOD_BOX, Obj("caf", 50, 40, 90, 70)])
    folder.photo("broken.jpg", b"")
    first = run_ingest()
    before = _snapshot(first.ws)
    second = run_ingest()
    assert _snapshot(second.ws) == before
    assert (second.report.added, second.report.already_known) == (0, 3)
    assert [ln.reason for ln in second.lines()] == ["empty-photo"]  # still broken, still reported


def test_a_grown_folder_adds_only_what_is_new(folder, run_ingest):
    folder.controls()
    first = run_ingest()
    history = {p: first.ws.store.labels.history(p) for p in first.ws.store.labels.known_paths()}
    folder.pair("new_labelled.jpg")
    folder.photo("visit 2/new_unlabelled.jpg")
    second = run_ingest()
    assert (second.report.added, second.report.labelled, second.report.unlabelled) == (2, 1, 1)
    assert second.report.already_known == 2
    assert {p: second.ws.store.labels.history(p) for p in history} == history
    assert second.boxes("new_labelled.jpg") == (GOOD,)
    second.assert_controls_intact()


def test_a_quarantined_photo_is_picked_up_once_fixed(folder, run_ingest):
    folder.controls()
    folder.photo("x.jpg")
    folder.xml("x.jpg", [Obj("Nevus spilus", 1, 1, 5, 5)])
    first = run_ingest()
    assert first.ws.store.status_counts()["quarantined"] == 1
    folder.xml("x.jpg", [Obj("sl", 1, 1, 5, 5)])
    second = run_ingest()
    assert second.boxes("x.jpg") == (Box("sl", 0, 0, 5, 5),)
    assert second.lines() == []
    assert second.ws.store.status_counts()["quarantined"] == 0


def test_xml_added_later_for_an_unlabelled_photo_becomes_its_manual_label(folder, run_ingest):
    folder.photo("x.jpg")
    assert run_ingest().ws.store.labels.current_label("x.jpg") is None
    folder.xml("x.jpg")
    result = run_ingest()
    version = result.ws.store.labels.current_label("x.jpg")
    assert (version.source, version.boxes) == (Source.MANUAL, (GOOD,))
    assert (result.report.added, result.report.labelled) == (0, 1)


def test_xml_added_later_for_a_photo_with_only_predictions_becomes_its_manual_label(folder, run_ingest):
    folder.photo("x.jpg")
    first = run_ingest()
    first.ws.store.labels.add_label_version(
        LabelVersion("x.jpg", Source.MODEL, (Box("fre", 1, 1, 5, 5, score=0.5),), round=0)
    )
    folder.xml("x.jpg")
    result = run_ingest()
    assert [v.source for v in result.ws.store.labels.history("x.jpg")] == [Source.MODEL, Source.MANUAL]
    assert result.boxes("x.jpg") == (GOOD,)


def test_xml_of_an_already_labelled_photo_is_not_ingested_twice(folder, run_ingest):
    folder.pair("x.jpg")
    run_ingest()
    result = run_ingest()
    assert len(result.ws.store.labels.history("x.jpg")) == 1


def test_the_report_is_saved_in_the_workspace(folder, run_ingest):
    folder.controls()
    folder.photo("broken.jpg", b"")
    result = run_ingest()
    saved = json.loads((result.ws.reports_dir / "ingest.json").read_text())
    assert saved["by_reason"] == {"empty-photo": 1} and saved["quarantined"] == 1
    assert (result.ws.reports_dir / "ingest.txt").read_text().startswith("broken.jpg: empty-photo: ")
    assert [(i["path"], i["reason"]) for i in result.ws.store.labels.issues()] == [("broken.jpg", "empty-photo")]


def test_the_voc_mirror_holds_every_labelled_photo(folder, run_ingest):
    folder.controls()
    folder.pair("visit 2/x.jpg")
    result = run_ingest()
    mirror = result.ws.labels_dir
    assert sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.xml")) == [
        "control_labelled.xml",
        "visit 2/x.xml",
    ]
    assert len(read_voc(mirror / "visit 2" / "x.xml").objects) == 1


# ---- folders -------------------------------------------------------------------------------------


def test_missing_image_folder_is_a_config_error(tmp_path):
    with Workspace.create(tmp_path / "ws", Config(images=tmp_path / "nope")) as ws:
        with pytest.raises(ConfigError, match="nope"):
            ingest(ws, images=tmp_path / "nope")


def test_missing_label_folder_is_a_config_error_not_an_unlabelled_set(folder, tmp_path):
    folder.controls()
    with Workspace.create(tmp_path / "ws", Config(images=folder.images)) as ws:
        with pytest.raises(ConfigError, match="lables"):
            ingest(ws, images=folder.images, labels=folder.root / "lables")
        assert ws.store.labels.known_paths() == set()
