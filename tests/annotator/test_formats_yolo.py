"""annotator.formats.yolo: label files read back into the boxes they were written from; data.yaml
reads back (with a YAML parser) into the folders and classes it names, whatever the names are."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotator.errors import ConfigError, InputFileError
from annotator.formats.yolo import (
    data_yaml_text,
    label_path_for,
    parse_yolo_labels,
    read_yolo_labels,
    write_data_yaml,
    write_yolo_labels,
    yolo_label_text,
)
from annotator.types import Box

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


@st.composite
def photo_and_boxes(draw, max_side: int = 8000):
    """(width, height, up to 5 boxes inside the photo)."""
    w = draw(st.integers(1, max_side))
    h = draw(st.integers(1, max_side))
    boxes = []
    for _ in range(draw(st.integers(0, 5))):
        x1, x2 = sorted(draw(st.floats(0, w, allow_nan=False)) for _ in range(2))
        y1, y2 = sorted(draw(st.floats(0, h, allow_nan=False)) for _ in range(2))
        boxes.append(Box(draw(st.sampled_from(CLASSES)), x1, y1, x2, y2))
    return w, h, boxes


def same_boxes(a: list[Box], b: list[Box], tol: float) -> bool:
    return len(a) == len(b) and all(
        u.label == v.label
        and all(math.isclose(p, q, abs_tol=tol) for p, q in ((u.x1, v.x1), (u.y1, v.y1), (u.x2, v.x2), (u.y2, v.y2)))
        for u, v in zip(a, b, strict=True)
    )


@given(photo_and_boxes())
def test_written_text_reads_back_into_the_same_boxes(data):
    w, h, boxes = data
    back = parse_yolo_labels(yolo_label_text(boxes, CLASSES, w, h), CLASSES, w, h)
    assert same_boxes(back, boxes, tol=max(w, h) * 1e-6)  # six decimals of the normalised coordinates


def test_a_label_file_round_trips_on_disk(tmp_path: Path):
    boxes = [Box("ota", 4, 4, 31, 31), Box("sl", 0, 10, 64, 48)]
    path = tmp_path / "labels" / "train" / "a.txt"
    write_yolo_labels(path, boxes, CLASSES, 64, 48)
    assert path.read_text().splitlines()[0].split()[0] == "4"  # ota is class index 4
    assert same_boxes(read_yolo_labels(path, CLASSES, 64, 48), boxes, tol=1e-4)


def test_a_photo_without_boxes_is_an_empty_file_and_reads_back_empty(tmp_path: Path):
    path = tmp_path / "empty.txt"
    write_yolo_labels(path, [], CLASSES, 64, 48)
    assert path.read_text() == ""
    assert read_yolo_labels(path, CLASSES, 64, 48) == []


def test_a_missing_label_file_is_a_photo_without_boxes(tmp_path: Path):
    assert read_yolo_labels(tmp_path / "nope.txt", CLASSES, 64, 48) == []


def test_the_reader_gives_boxes_in_the_frame_it_is_asked_for():
    (box,) = parse_yolo_labels("2 0.5 0.5 0.25 0.5\n", CLASSES, 200, 100)
    assert box == Box("mel", 75, 25, 125, 75)


def test_a_malformed_line_is_one_clear_error_naming_file_and_line():
    with pytest.raises(InputFileError, match=r"a\.txt: line 2: expected `class cx cy w h`"):
        parse_yolo_labels("0 0.5 0.5 0.1 0.1\n0 0.5 0.5\n", CLASSES, 10, 10, source="a.txt")


def test_a_class_index_outside_the_classes_is_refused():
    with pytest.raises(InputFileError, match="class index 6 is outside the 6 classes"):
        parse_yolo_labels("6 0.5 0.5 0.1 0.1\n", CLASSES, 10, 10, source="a.txt")


def test_writing_a_label_outside_the_classes_is_a_config_error():
    with pytest.raises(ConfigError, match="'nevus' is not one of the classes"):
        yolo_label_text([Box("nevus", 0, 0, 1, 1)], CLASSES, 10, 10)


def test_label_path_follows_the_yolo_convention_under_any_root():
    image = Path("/data/images/view/images/train/a__b.jpg")
    assert label_path_for(image) == Path("/data/images/view/labels/train/a__b.txt")


def test_data_yaml_reads_back_with_a_yaml_parser(tmp_path: Path):
    yaml = pytest.importorskip("yaml")
    root = tmp_path / "a view: #1"
    path = write_data_yaml(
        root / "data.yaml", root, {"train": "images/train", "val": "images/val"}, ["sl", "yes", "1", "a: b", "null"]
    )
    assert yaml.safe_load(path.read_text()) == {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "sl", 1: "yes", 2: "1", 3: "a: b", 4: "null"},
    }


def test_data_yaml_writes_plain_names_plainly(tmp_path: Path):
    assert "names:\n  0: sl\n  1: fre\n" in data_yaml_text(tmp_path, {"train": "images"}, ["sl", "fre"])
