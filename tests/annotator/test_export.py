"""annotator.export: the labels a person stands behind, as VOC, YOLO or COCO in the displayed frame;
a VOC export ingests back into the same boxes, writes each photo's real depth, and links the photos
(or copies them, atomically, with `copy_images`)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from annotator.config import Config
from annotator.errors import ConfigError
from annotator.export import export_labels
from annotator.formats.voc import read_voc
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.types import Box, LabelVersion, Source
from tests.corpus.make_corpus import Obj
from tests.corpus.psl_testkit import CONTROL_LABELLED, CONTROL_UNLABELLED

PREDICTED = (Box("fre", 1, 1, 9, 9, score=0.9),)


@pytest.fixture
def labelled(folder, run_ingest):
    """control_labelled (manual, 2 boxes), control_unlabelled (a model prediction), reviewed.jpg
    (reviewed, 1 box), excluded.jpg (excluded by the reviewer), empty.jpg (reviewed: no lesion)."""
    folder.controls()
    folder.pair("reviewed.jpg", [Obj("ota", 5, 5, 30, 30)])
    folder.pair("excluded.jpg", [Obj("sl", 5, 5, 30, 30)])
    folder.pair("empty.jpg", [Obj("sl", 5, 5, 30, 30)])
    result = run_ingest()
    store = result.ws.store
    store.labels.add_label_version(
        LabelVersion(CONTROL_UNLABELLED, Source.MODEL, PREDICTED, round=0, model_version="m0")
    )
    store.labels.add_label_version(
        LabelVersion("reviewed.jpg", Source.REVIEWED, (Box("ota", 4, 4, 31, 31),), reviewer="dr")
    )
    store.labels.add_label_version(LabelVersion("excluded.jpg", Source.REVIEWED, (), excluded=True, reviewer="dr"))
    store.labels.add_label_version(LabelVersion("empty.jpg", Source.REVIEWED, (), reviewer="dr"))
    return result


def test_exports_human_labels_only_by_default(labelled, tmp_path):
    summary = export_labels(labelled.ws, "coco", tmp_path / "out")
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in data["images"]) == [CONTROL_LABELLED, "empty.jpg", "reviewed.jpg"]
    assert (summary["photos"], summary["boxes"]) == (3, 3)


def test_predictions_only_when_asked(labelled, tmp_path):
    export_labels(labelled.ws, "coco", tmp_path / "out", include_predictions=True)
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert CONTROL_UNLABELLED in [i["file_name"] for i in data["images"]]
    assert [a["score"] for a in data["annotations"] if "score" in a] == [0.9]


def test_excluded_photos_are_left_out_of_every_format(labelled, tmp_path):
    for fmt in ("voc", "yolo", "coco"):
        export_labels(labelled.ws, fmt, tmp_path / fmt)
    assert not (tmp_path / "voc" / "Annotations" / "excluded.xml").exists()
    assert not (tmp_path / "yolo" / "labels" / "excluded.txt").exists()
    assert "excluded.jpg" not in (tmp_path / "coco" / "annotations.json").read_text()


def test_coco_ids_and_categories(labelled, tmp_path):
    export_labels(labelled.ws, "coco", tmp_path / "out")
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["sl", "fre", "mel", "caf", "ota", "hori"]
    assert [c["id"] for c in data["categories"]] == [1, 2, 3, 4, 5, 6]
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"]) == 3
    image_ids = {i["id"] for i in data["images"]}
    assert all(a["image_id"] in image_ids for a in data["annotations"])
    by_name = {i["id"]: i["file_name"] for i in data["images"]}
    reviewed = [a for a in data["annotations"] if by_name[a["image_id"]] == "reviewed.jpg"]
    assert [(a["bbox"], a["area"], a["category_id"]) for a in reviewed] == [([4, 4, 27, 27], 729, 5)]


def test_yolo_layout_and_lines(labelled, tmp_path):
    out = tmp_path / "out"
    export_labels(labelled.ws, "yolo", out)
    assert (out / "classes.txt").read_text().split() == ["sl", "fre", "mel", "caf", "ota", "hori"]
    assert "names:\n  0: sl\n" in (out / "data.yaml").read_text()
    (line,) = (out / "labels" / "reviewed.txt").read_text().splitlines()
    cls, cx, cy, w, h = line.split()
    assert cls == "4"  # ota
    assert [float(v) for v in (cx, cy, w, h)] == pytest.approx([17.5 / 64, 17.5 / 48, 27 / 64, 27 / 48], abs=1e-6)
    assert (out / "labels" / "empty.txt").read_text().strip() == ""  # a photo with no lesion is a negative
    assert (out / "images" / "reviewed.jpg").is_symlink()


def test_voc_export_ingests_back_into_the_same_boxes(labelled, tmp_path):
    out = tmp_path / "out"
    export_labels(labelled.ws, "voc", out, link_images=False)
    cfg = Config(images=labelled.folder.images, labels=out / "Annotations")
    with Workspace.create(tmp_path / "ws2", cfg) as again:
        report = ingest(again, images=cfg.images, labels=cfg.labels)
        assert report.lines == []
        for path in (CONTROL_LABELLED, "reviewed.jpg", "empty.jpg"):
            assert again.store.labels.current_label(path).boxes == labelled.ws.store.labels.current_label(path).boxes
        assert again.store.labels.current_label("excluded.jpg") is None


def test_photos_are_linked_not_copied(labelled, tmp_path):
    export_labels(labelled.ws, "voc", tmp_path / "out")
    link = tmp_path / "out" / "JPEGImages" / "reviewed.jpg"
    assert link.is_symlink() and link.resolve() == (labelled.folder.images / "reviewed.jpg").resolve()


def test_exporting_twice_to_the_same_folder_replaces_the_links(labelled, tmp_path):
    for _ in range(2):
        summary = export_labels(labelled.ws, "voc", tmp_path / "out")
    assert summary["photos"] == 3


def test_unknown_format_is_a_config_error(labelled, tmp_path):
    with pytest.raises(ConfigError, match="yolo"):
        export_labels(labelled.ws, "csv", tmp_path / "out")


# ---- the photo's real depth (labelImg writes 1 for greyscale) ------------------------------------------


def _greyscale_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def with_greyscale(folder, run_ingest):
    folder.photo("grey.jpg", data=_greyscale_jpeg())
    folder.xml("grey.jpg", [Obj("sl", 5, 5, 30, 30)])
    folder.pair("colour.jpg", [Obj("sl", 5, 5, 30, 30)])
    return run_ingest()


def test_voc_export_writes_depth_1_for_a_greyscale_photo_and_3_for_colour(with_greyscale, tmp_path):
    export_labels(with_greyscale.ws, "voc", tmp_path / "out", link_images=False)
    assert read_voc(tmp_path / "out" / "Annotations" / "grey.xml").depth == 1
    assert read_voc(tmp_path / "out" / "Annotations" / "colour.xml").depth == 3


def test_the_workspace_label_mirror_writes_the_real_depth_too(with_greyscale):
    ws = with_greyscale.ws
    assert read_voc(ws.voc_path("grey.jpg")).depth == 1 and read_voc(ws.voc_path("colour.jpg")).depth == 3


# ---- photos: links by default, copies when asked ------------------------------------------------------


def test_copy_images_writes_real_files_equal_to_the_originals(labelled, tmp_path):
    summary = export_labels(labelled.ws, "yolo", tmp_path / "out", copy_images=True)
    copied = tmp_path / "out" / "images" / "reviewed.jpg"
    assert summary["photo_files"] == "copied"
    assert not copied.is_symlink() and copied.read_bytes() == (labelled.folder.images / "reviewed.jpg").read_bytes()
    assert not list((tmp_path / "out").rglob("*.tmp")), "a copy is renamed into place, no temp file is left"


def test_copying_over_an_earlier_linked_export_replaces_the_links_not_the_originals(labelled, tmp_path):
    original = labelled.folder.images / "reviewed.jpg"
    before = original.read_bytes()
    assert export_labels(labelled.ws, "voc", tmp_path / "out")["photo_files"] == "linked"
    export_labels(labelled.ws, "voc", tmp_path / "out", copy_images=True)
    copied = tmp_path / "out" / "JPEGImages" / "reviewed.jpg"
    assert copied.is_file() and not copied.is_symlink()
    assert original.read_bytes() == before and not original.is_symlink()


def test_coco_writes_no_photo_files(labelled, tmp_path):
    summary = export_labels(labelled.ws, "coco", tmp_path / "out", copy_images=True)
    assert summary["photo_files"] == "none"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["annotations.json"]
