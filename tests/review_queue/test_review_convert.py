"""Pure conversions: boxes <-> Label Studio results round-trip, the labeling config, and the
simulated reviewer's plan and time model. (The edit diff is tested in test_corrections.py.)"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from annotator.classes import CLASS_NAMES, ClassTable
from annotator.types import Box, ImageRecord, LabelVersion, Source
from review_queue.effort import DRAW_MAX_S, DRAW_MIN_S, draw_seconds
from review_queue.labelstudio.convert import (
    CONFLICT_SCORE,
    MODEL_SCORE_FLOOR,
    box_to_result,
    labeling_config,
    parse_result,
    prediction_score,
    result_to_box,
    shuffled_score,
    task_payload,
)
from review_queue.simulate import plan_review

CLASSES = ClassTable()


@st.composite
def photo_and_box(draw):
    w = draw(st.integers(16, 6000))
    h = draw(st.integers(16, 6000))
    x1 = draw(st.floats(0, w - 2, allow_nan=False))
    y1 = draw(st.floats(0, h - 2, allow_nan=False))
    x2 = draw(st.floats(x1 + 1, w, allow_nan=False))
    y2 = draw(st.floats(y1 + 1, h, allow_nan=False))
    return w, h, Box(draw(st.sampled_from(CLASS_NAMES)), x1, y1, x2, y2)


@settings(max_examples=300, deadline=None, database=None)
@given(photo_and_box())
def test_box_result_round_trip(case):
    w, h, box = case
    result = box_to_result(box, w, h, "r1")
    back = result_to_box(result, w, h)
    assert back.label == box.label
    assert all(
        abs(a - b) < 1e-6
        for a, b in zip((back.x1, back.y1, back.x2, back.y2), (box.x1, box.y1, box.x2, box.y2), strict=True)
    )
    parsed = parse_result([result], width=w, height=h, classes=CLASSES)
    assert parsed.problems == () and parsed.regions[0][0] == "r1"


def test_result_is_percent_top_left_with_the_photo_size():
    result = box_to_result(Box("mel", 32, 24, 96, 72, score=0.8), 320, 240, "a")
    assert result["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 20.0,
        "height": 20.0,
        "rotation": 0,
        "rectanglelabels": ["mel"],
    }
    assert (result["original_width"], result["original_height"], result["score"]) == (320, 240, 0.8)
    assert (result["from_name"], result["to_name"], result["type"]) == ("label", "image", "rectanglelabels")


def test_labeling_config_has_six_hotkeyed_classes_and_an_exclude_choice():
    root = etree.fromstring(labeling_config(CLASSES).encode())
    image = root.find("Image")
    assert (image.get("name"), image.get("value")) == ("image", "$image")
    rect = root.find("RectangleLabels")
    assert (rect.get("name"), rect.get("toName")) == ("label", "image")
    labels = rect.findall("Label")
    assert [label.get("value") for label in labels] == list(CLASS_NAMES)
    assert [label.get("hotkey") for label in labels] == ["1", "2", "3", "4", "5", "6"]
    assert labels[2].get("background") == CLASSES.describe("mel").colour
    choices = root.find("Choices")
    assert choices.get("name") == "exclude" and [c.get("value") for c in choices] == ["blurred", "atypical"]


def test_task_payload_orders_the_queue_by_uncertainty():
    rec = ImageRecord(path="sub dir/a#1.jpg", sha256="x", width=100, height=50)
    lv = LabelVersion(
        "sub dir/a#1.jpg",
        Source.MODEL,
        (Box("sl", 10, 10, 20, 20, score=0.4),),
        round=2,
        model_version="round-002",
        uncertainty=0.75,
        id=17,
    )
    task = task_payload(rec, lv, "images/sub dir/a#1.jpg")
    assert task["data"]["image"] == "/data/local-files/?d=images/sub%20dir/a%231.jpg"
    assert task["data"]["photo"] == "sub dir/a#1.jpg"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "round-002" and prediction["score"] == 0.25
    assert prediction["result"][0]["id"] == "v17-0" and prediction["result"][0]["score"] == 0.4
    assert prediction_score(0.9) < prediction_score(0.1)  # ascending score = most uncertain first
    assert prediction_score(None) == 0.5 and prediction_score(7.0) == MODEL_SCORE_FLOOR  # clamped to the model range
    assert prediction_score(1.0) > CONFLICT_SCORE  # a label conflict is served before the most uncertain prediction


def test_parse_result_reports_what_cannot_be_merged():
    good = box_to_result(Box("mel", 10, 10, 50, 50), 100, 100, "g")
    cases = {
        "unknown label 'nevus'": {**good, "value": {**good["value"], "rectanglelabels": ["nevus"]}},
        "original_width/original_height missing": {k: v for k, v in good.items() if k != "original_width"},
        "drawn on a 200x100 image": {**good, "original_width": 200},
        "rotated": {**good, "value": {**good["value"], "rotation": 30}},
    }
    for expected, result in cases.items():
        parsed = parse_result([result], width=100, height=100, classes=CLASSES)
        assert parsed.regions == () and expected in parsed.problems[0], expected
    # aliases are accepted, a sub-pixel overshoot is clipped, the exclude choice is read
    alias = {**good, "value": {**good["value"], "rectanglelabels": ["Melasma"]}}
    edge = box_to_result(Box("sl", 95, 95, 100.4, 100.4), 100, 100, "edge")
    exclude = {"type": "choices", "from_name": "exclude", "to_name": "image", "value": {"choices": ["atypical"]}}
    parsed = parse_result([alias, edge, exclude], width=100, height=100, classes=CLASSES)
    assert parsed.problems == () and parsed.excluded == ("atypical",)
    assert parsed.regions[0][1].label == "mel" and parsed.regions[1][1].x2 == 100.0


def test_a_box_reaching_outside_the_photo_is_clipped_and_reported_not_refused():
    # the rule ingest applies to labelImg boxes (annotator.boxes.fit_box): the review stays mergeable
    outside = box_to_result(Box("mel", 90, 90, 120, 99), 100, 100, "o")
    parsed = parse_result([outside], width=100, height=100, classes=CLASSES)
    assert parsed.problems == () and parsed.regions == (("o", Box("mel", 90, 90, 100, 99)),)
    (fix,) = parsed.fixes
    assert (fix.region, fix.reason, fix.action, fix.outside_px) == ("o", "box-outside-photo", "clipped", 20.0)
    assert "20.0 px outside the 100x100 photo" in fix.message


def test_an_overshoot_within_the_edge_tolerance_is_clipped_silently():
    edge = box_to_result(Box("sl", 95, 95, 101.4, 101.4), 100, 100, "edge")
    parsed = parse_result([edge], width=100, height=100, classes=CLASSES)
    assert parsed.regions[0][1] == Box("sl", 95, 95, 100, 100) and parsed.fixes == ()


def test_zero_size_sub_pixel_and_outside_boxes_are_dropped_and_reported():
    cases = {
        "zero": (Box("mel", 10, 10, 10, 30), "zero-area-box"),
        "sub": (Box("mel", 10, 10, 10.6, 30), "zero-area-box"),
        "far": (Box("mel", 120, 10, 140, 30), "box-outside-photo"),
        "sliver": (Box("mel", 99.5, 10, 140, 30), "box-outside-photo"),  # half a pixel of it inside
    }
    good = box_to_result(Box("sl", 10, 10, 50, 50), 100, 100, "g")
    results = [good] + [box_to_result(box, 100, 100, rid) for rid, (box, _) in cases.items()]
    parsed = parse_result(results, width=100, height=100, classes=CLASSES)
    assert parsed.problems == () and [rid for rid, _ in parsed.regions] == ["g"]
    assert [(f.region, f.reason, f.action) for f in parsed.fixes] == [
        (rid, reason, "box dropped") for rid, (_, reason) in cases.items()
    ]


def test_a_pixel_exact_simulated_reviewer_fixes_everything_and_keeps_region_ids():
    truth = [Box("mel", 0, 0, 100, 100), Box("sl", 200, 200, 220, 220), Box("fre", 300, 10, 330, 40)]
    predicted = [
        ("p0", Box("mel", 0, 0, 100, 100)),
        ("p1", Box("caf", 201, 200, 221, 220)),
        ("p2", Box("ota", 500, 300, 540, 340)),
    ]
    regions, actions = plan_review(predicted, truth, width=640, height=480, rng=random.Random(0), accept_iou=None)
    assert sorted((b for _, b in regions), key=repr) == sorted(truth, key=repr)
    ids = {rid for rid, _ in regions}
    assert {"p0", "p1"} <= ids and "p2" not in ids
    assert sorted(a.kind.action for a in actions) == ["adjust", "delete", "draw", "relabel", "verify"]


def test_the_default_reviewer_leaves_a_box_as_good_as_a_hand_drawn_one():
    truth = [Box("mel", 0, 0, 100, 100), Box("sl", 200, 200, 220, 220)]
    close = Box("mel", 3, 2, 104, 101)  # IoU 0.93 with the truth: what a second dermatologist might draw
    far = Box("sl", 203, 203, 223, 223)  # IoU 0.57: the same lesion, but moved onto it
    regions, actions = plan_review([("p0", close), ("p1", far)], truth, width=640, height=480, rng=random.Random(0))
    assert dict(regions) == {"p0": close, "p1": truth[1]}
    assert sorted(a.kind.action for a in actions) == ["adjust", "verify"]


def test_drawing_time_grows_with_the_box():
    small = draw_seconds(Box("fre", 0, 0, 5, 5), 1000, 1000)
    large = draw_seconds(Box("mel", 0, 0, 600, 600), 1000, 1000)
    assert small == DRAW_MIN_S and large == DRAW_MAX_S
    assert small < draw_seconds(Box("caf", 0, 0, 100, 100), 1000, 1000) < large


def test_noise_is_seeded():
    truth = [Box("mel", 0, 0, 100, 100), Box("sl", 200, 200, 220, 220)]
    a = plan_review([], truth, width=640, height=480, rng=random.Random(3), noise=0.9)
    b = plan_review([], truth, width=640, height=480, rng=random.Random(3), noise=0.9)
    assert a == b
    assert [box for _, box in a[0]] != truth  # slips happened


def test_a_random_queue_order_scores_by_a_shuffle_fixed_per_photo_and_round_whatever_the_uncertainty():
    rec = ImageRecord(path="a.jpg", sha256="x", width=100, height=50)
    sure = LabelVersion("a.jpg", Source.MODEL, (), round=1, model_version="round-001", uncertainty=0.1, id=1)
    unsure = replace(sure, uncertainty=0.9)
    score = task_payload(rec, sure, "a.jpg", "random")["predictions"][0]["score"]
    assert (
        score
        == shuffled_score("a.jpg", "round-001")
        == task_payload(rec, unsure, "a.jpg", "random")["predictions"][0]["score"]
    )
    assert 0.0 < score <= 1.0
    assert shuffled_score("a.jpg", "round-002") != score  # the next round reshuffles
    assert len({shuffled_score(f"p{i}.jpg", "round-001") for i in range(100)}) == 100
    assert task_payload(rec, sure, "a.jpg")["predictions"][0]["score"] == prediction_score(0.1)  # the default


def test_the_queue_order_is_read_from_annotator_toml_and_an_unknown_one_refused_with_the_choices(tmp_path):
    from annotator.config import CONFIG_NAME, Config, load_config, save_config
    from annotator.errors import ConfigError

    save_config(tmp_path, Config(images=tmp_path, queue_order="random"))
    assert load_config(tmp_path).queue_order == "random"
    text = (tmp_path / CONFIG_NAME).read_text().replace('queue_order = "random"', 'queue_order = "alphabetical"')
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(ConfigError, match=r"queue_order = 'alphabetical' is unknown; choose one of uncertainty-first"):
        load_config(tmp_path)
