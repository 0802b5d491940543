"""Test-split figures: mAP50 is pycocotools', its bootstrap interval resamples photos, per-class
precision is undefined (n/a) for a class never predicted, and the rule that says when rounds cannot
be compared."""

from __future__ import annotations

import random

import numpy as np
import pytest

from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.types import Box
from bootstrap.evaluation import (
    MIN_TEST_PHOTOS,
    RoundMap,
    comparison_warning,
    describe_map,
    map50_interval,
    round_map,
    split_figures,
)
from training.metrics import coco_evaluate

CLASSES = ("mel", "fre", "caf", "sl", "hori", "ota")
LESION = Box("mel", 10, 10, 50, 50)


def test_the_interval_of_a_hand_built_case():
    # photo A: one lesion, found (score 0.9); photo B: no lesion, one false alarm scored higher (0.95).
    # Both photos: the false alarm ranks first, so precision is 1/2 at full recall: AP50 = 0.5.
    # A resample of A and B alike is 0.5 too, one of A twice is 1.0, one of B twice has no lesion (left
    # out): the defined resamples are 1.0 a third of the time and 0.5 otherwise -> 95% interval 0.5-1.0.
    truth = [(LESION,), ()]
    pred = [[Box("mel", 10, 10, 50, 50, score=0.9)], [Box("mel", 60, 60, 90, 90, score=0.95)]]
    point, interval = map50_interval(truth, pred, CLASSES, n_resamples=2000, seed=1)
    assert point == pytest.approx(0.5)
    assert interval == pytest.approx((0.5, 1.0))


def test_photos_that_are_all_alike_give_an_interval_of_no_width():
    truth = [(LESION,)] * 6
    pred = [[Box("mel", 10, 10, 50, 50, score=0.9)]] * 6
    assert map50_interval(truth, pred, CLASSES, n_resamples=200) == (pytest.approx(1.0), pytest.approx((1.0, 1.0)))


def test_no_truth_box_gives_no_figure():
    assert map50_interval([(), ()], [[], [Box("mel", 0, 0, 5, 5, score=0.5)]], CLASSES) == (None, None)


def _random_split(seed: int, n: int = 30) -> tuple[list[tuple[Box, ...]], list[list[Box]]]:
    rng = random.Random(seed)
    truth, pred = [], []
    for _ in range(n):
        t, p = [], []
        for _ in range(rng.randint(0, 3)):
            c, x, y, w = rng.choice(CLASSES), rng.uniform(0, 400), rng.uniform(0, 400), rng.uniform(10, 60)
            t.append(Box(c, x, y, x + w, y + w))
            if rng.random() < 0.7:
                p.append(Box(c, x + rng.uniform(-6, 6), y, x + w, y + w + 3, score=rng.random()))
        for _ in range(rng.randint(0, 8)):
            x, y = rng.uniform(0, 400), rng.uniform(0, 400)
            p.append(Box(rng.choice(CLASSES), x, y, x + 20, y + 20, score=0.4 * rng.random()))
        truth.append(tuple(t))
        pred.append(p)
    return truth, pred


def test_each_resample_is_pycocotools_map50_of_the_resampled_photos():
    from training.metrics import coco_evaluation, resampled_map50

    truth, pred = _random_split(3)
    evaluated = coco_evaluation(
        coco_ground_truth([str(i) for i in range(len(truth))], truth, CLASSES), coco_results(pred, CLASSES)
    )
    draws = np.random.default_rng(0).integers(0, len(truth), size=(4, len(truth)))
    for draw in draws:
        ours = resampled_map50(evaluated.matches, np.bincount(draw, minlength=len(truth))[None, :])[0]
        theirs = coco_evaluate(
            coco_ground_truth([str(i) for i in range(len(draw))], [truth[i] for i in draw], CLASSES),
            coco_results([pred[i] for i in draw], CLASSES),
        ).map50
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_a_split_is_evaluated_by_pycocotools_once(monkeypatch: pytest.MonkeyPatch):
    import training.metrics as metrics

    runs = []
    original = metrics._cocoeval
    monkeypatch.setattr(metrics, "_cocoeval", lambda *args: runs.append(1) or original(*args))
    truth, pred = _random_split(7)
    figures = split_figures(truth, pred, CLASSES, thresholds={c: 0.25 for c in CLASSES}, n_resamples=50)
    assert len(runs) == 1
    theirs = coco_evaluate(
        coco_ground_truth([str(i) for i in range(len(truth))], truth, CLASSES), coco_results(pred, CLASSES)
    )
    assert figures.map50 == pytest.approx(theirs.map50) and figures.interval is not None
    assert {c: f.ap50 for c, f in figures.per_class.items()} == {c: v["ap50"] for c, v in theirs.per_class.items()}


def test_the_point_estimate_is_pycocotools_map50_and_lies_in_its_interval():
    truth, pred = _random_split(5)
    point, (lo, hi) = map50_interval(truth, pred, CLASSES, n_resamples=300)
    theirs = coco_evaluate(
        coco_ground_truth([str(i) for i in range(len(truth))], truth, CLASSES), coco_results(pred, CLASSES)
    ).map50
    assert point == pytest.approx(theirs) and lo <= point <= hi and lo < hi


def test_precision_is_na_for_a_class_never_predicted_and_zero_for_one_predicted_wrongly():
    truth = [(LESION, Box("fre", 100, 100, 120, 120)), (Box("caf", 0, 0, 30, 30),)]
    pred = [
        [Box("mel", 10, 10, 50, 50, score=0.9), Box("sl", 200, 200, 230, 230, score=0.8)],
        [Box("caf", 0, 0, 30, 30, score=0.1)],
    ]  # caf found, but under its threshold
    figures = split_figures(truth, pred, CLASSES, thresholds={c: 0.25 for c in CLASSES}, n_resamples=50)
    assert (figures.photos, figures.boxes) == (2, 3)
    assert figures.per_class["mel"].precision == 1.0 and figures.per_class["mel"].sensitivity == 1.0
    assert figures.per_class["fre"].precision is None and figures.per_class["fre"].sensitivity == 0.0
    assert figures.per_class["caf"].precision is None and figures.per_class["caf"].predicted_boxes == 0
    assert figures.per_class["sl"].precision == 0.0 and figures.per_class["sl"].sensitivity is None
    assert figures.per_class["caf"].ap50 == pytest.approx(1.0)  # mAP uses every score, thresholds do not


def test_a_split_under_the_minimum_cannot_compare_rounds():
    small = RoundMap(photos=9, boxes=18, map50=0.13, interval=(0.02, 0.30))
    warning = comparison_warning([(0, small), (1, RoundMap(9, 18, 0.06, (0.0, 0.15)))])
    assert warning is not None and f"9 photos (< {MIN_TEST_PHOTOS})" in warning


def test_overlapping_intervals_cannot_compare_rounds_and_separate_ones_can():
    r0 = RoundMap(photos=60, boxes=120, map50=0.40, interval=(0.32, 0.48))
    overlapping = RoundMap(photos=60, boxes=120, map50=0.45, interval=(0.37, 0.53))
    separate = RoundMap(photos=60, boxes=120, map50=0.62, interval=(0.55, 0.69))
    warning = comparison_warning([(0, r0), (1, overlapping)])
    assert warning is not None and "overlaps round 0's" in warning
    assert comparison_warning([(0, r0), (1, separate)]) is None


def test_a_round_map_is_described_with_its_interval_and_the_split_size():
    text = describe_map(RoundMap(photos=42, boxes=80, map50=0.4567, interval=(0.40, 0.51)))
    assert text == "mAP50 0.457 (95% CI 0.400-0.510) on 42 test photos, 80 boxes"


def test_a_round_map_names_the_backend_that_predicted_its_test_split_without_the_reason():
    figures = split_figures([(LESION,)], [[Box("mel", 10, 10, 50, 50, score=0.9)]], CLASSES, thresholds={})
    runtime = {"test_split": {**figures.to_dict(), "backend": "onnxruntime"}}
    reason = "torch (9 photos: fewer than the 200 an ONNX export pays for)"
    small = {"test_split": {**figures.to_dict(), "backend": reason}}
    assert describe_map(round_map(runtime)).endswith("on 1 test photos, 1 boxes, predicted with onnxruntime")
    assert describe_map(round_map(small)).endswith("1 boxes, predicted with torch")
    assert describe_map(round_map({"test_split": figures.to_dict()})).endswith("1 boxes"), "not recorded: not shown"
