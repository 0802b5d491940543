"""annotator.formats.coco: a ground-truth document reads back into the boxes it was built from, a
results list refers to the same images and categories, and a document that does not hold
together is one clear error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotator.errors import InputFileError
from annotator.formats.coco import boxes_by_image, coco_ground_truth, coco_results, read_coco, write_coco
from annotator.types import Box

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")
COORD = st.floats(0, 8000, allow_nan=False)


@st.composite
def boxes(draw, scored: bool = False):
    out = []
    for _ in range(draw(st.integers(0, 4))):
        x1, x2 = sorted((draw(COORD), draw(COORD)))
        y1, y2 = sorted((draw(COORD), draw(COORD)))
        score = draw(st.floats(0, 1)) if scored else None
        out.append(Box(draw(st.sampled_from(CLASSES)), x1, y1, x2, y2, score=score))
    return out


def same_boxes(a, b, tol: float = 1e-3) -> bool:  # the document keeps a thousandth of a pixel
    return len(a) == len(b) and all(
        u.label == v.label
        and u.score == v.score
        and all(math.isclose(p, q, abs_tol=tol) for p, q in ((u.x1, v.x1), (u.y1, v.y1), (u.x2, v.x2), (u.y2, v.y2)))
        for u, v in zip(a, b, strict=True)
    )


@given(st.lists(st.booleans().flatmap(lambda scored: boxes(scored=scored)), min_size=1, max_size=4))
def test_a_document_reads_back_into_the_same_boxes_per_photo(per_photo):
    photos = [f"dir/p{n}.jpg" for n in range(len(per_photo))]
    back = boxes_by_image(coco_ground_truth(photos, per_photo, CLASSES))
    assert list(back) == photos  # photos without boxes are listed too
    assert all(same_boxes(back[p], b, tol=2e-3) for p, b in zip(photos, per_photo, strict=True))


def test_a_written_file_reads_back_with_scores_and_empty_photos(tmp_path: Path):
    per_photo = [[Box("mel", 10.25, 20, 50, 60.5, score=0.75), Box("sl", 0, 0, 5, 5)], []]
    path = write_coco(tmp_path / "annotations.json", coco_ground_truth(["a.jpg", "b.jpg"], per_photo, CLASSES))
    assert read_coco(path) == {"a.jpg": tuple(per_photo[0]), "b.jpg": ()}


def test_ids_are_positions_and_results_refer_to_the_same_images_and_categories():
    truth = [[Box("sl", 0, 0, 10, 10)], [Box("ota", 5, 5, 30, 30)]]
    pred = [[], [Box("ota", 4, 4, 31, 31, score=0.5), Box("mel", 1, 1, 2, 2)]]
    gt = coco_ground_truth(["a.jpg", "b.jpg"], truth, CLASSES)
    assert [(i["id"], i["file_name"]) for i in gt["images"]] == [(1, "a.jpg"), (2, "b.jpg")]
    assert [(c["id"], c["name"]) for c in gt["categories"]] == list(enumerate(CLASSES, start=1))
    assert coco_results(pred, CLASSES) == [
        {"image_id": 2, "category_id": 5, "bbox": [4.0, 4.0, 27.0, 27.0], "score": 0.5},
        {"image_id": 2, "category_id": 3, "bbox": [1.0, 1.0, 1.0, 1.0], "score": 1.0},  # unscored: 1.0
    ]


def test_sizes_and_extra_image_fields_go_into_the_image_entries():
    gt = coco_ground_truth(
        ["a.jpg"], [[]], CLASSES, sizes=[(64, 48)], image_fields=[{"device_class": "phone"}], description="export"
    )
    assert gt["images"] == [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48, "device_class": "phone"}]
    assert gt["info"] == {"description": "export"}


def test_labels_outside_the_classes_are_left_out():
    stray = [[Box("nevus", 0, 0, 10, 10), Box("sl", 0, 0, 10, 10)]]
    assert [a["category_id"] for a in coco_ground_truth(["a.jpg"], stray, CLASSES)["annotations"]] == [1]
    assert [r["category_id"] for r in coco_results(stray, CLASSES)] == [1]


def test_an_annotation_of_an_unlisted_category_is_one_clear_error(tmp_path: Path):
    document = coco_ground_truth(["a.jpg"], [[Box("sl", 0, 0, 10, 10)]], CLASSES)
    document["annotations"][0]["category_id"] = 99
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputFileError, match=r"bad\.json: annotation 1 refers to .* category 99"):
        read_coco(path)


def test_a_file_that_is_not_a_coco_document_is_one_clear_error(tmp_path: Path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text('{"images": []}')
    with pytest.raises(InputFileError, match="cannot read it as JSON"):
        read_coco(tmp_path / "a.json")
    with pytest.raises(InputFileError, match="not a COCO ground-truth document"):
        read_coco(tmp_path / "b.json")


def test_a_results_list_reads_back_per_photo_in_the_order_it_was_written():
    from annotator.formats.coco import results_by_photo

    classes = ("sl", "fre", "mel")
    boxes = [
        [Box("mel", 1.5, 2, 30.25, 40, score=0.9), Box("sl", 5, 5, 9, 9, score=0.31)],
        [],
        [Box("fre", 0, 0, 4, 4)],
    ]
    back = results_by_photo(coco_results(boxes, classes), ["a.jpg", "b.jpg", "c.jpg"], classes)
    assert back["a.jpg"] == tuple(boxes[0]) and back["b.jpg"] == ()
    assert back["c.jpg"] == (Box("fre", 0, 0, 4, 4, score=1.0),), "an unscored box was written with score 1"
    with pytest.raises(InputFileError, match="out of range"):
        results_by_photo(coco_results(boxes, classes), ["a.jpg"], classes)
