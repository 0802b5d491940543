"""training.metrics on hand-computed cases: image-level scores, the study's accuracy rule,
confusion matrices, COCOeval mAP, bootstrap intervals and McNemar's test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.types import Box
from training import metrics as M

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")

# Six photos; ota/caf/hori never on a photo, caf and ota predicted once each (false alarms).
TRUE_SETS = [{"sl"}, {"sl", "fre"}, {"mel"}, {"fre"}, {"mel"}, {"sl"}]
PRED_SETS = [{"sl"}, {"sl"}, {"mel", "caf"}, set(), {"mel"}, {"ota"}]


def box(label: str, x1: float, y1: float, x2: float, y2: float, score: float | None = None) -> Box:
    return Box(label, x1, y1, x2, y2, score=score)


# ---- image level -----------------------------------------------------------------------------


def test_counts_per_class_by_hand():
    counts = M.image_counts(TRUE_SETS, PRED_SETS, CLASSES)
    #                                  TP FP FN TN
    assert counts.tolist() == [
        [2, 0, 1, 3],  # sl: photos 1,2 found, 6 missed
        [0, 0, 2, 4],  # fre: both missed
        [2, 0, 0, 4],  # mel
        [0, 1, 0, 5],  # caf: one false alarm, absent from the photos
        [0, 1, 0, 5],  # ota
        [0, 0, 0, 6],
    ]  # hori: nothing anywhere


def test_ratios_per_class_by_hand():
    result = M.image_level_scores(TRUE_SETS, PRED_SETS, CLASSES)
    sl = result.per_class["sl"]
    assert (sl.precision, sl.sensitivity, sl.specificity, sl.f1) == pytest.approx((1.0, 2 / 3, 1.0, 0.8))
    fre = result.per_class["fre"]
    assert fre.precision is None and fre.sensitivity == 0.0 and fre.specificity == 1.0 and fre.f1 is None
    mel = result.per_class["mel"]
    assert (mel.precision, mel.sensitivity, mel.specificity, mel.f1) == (1.0, 1.0, 1.0, 1.0)


def test_specificity_is_tn_over_tn_plus_fp_not_the_papers_typo():
    caf = M.image_level_scores(TRUE_SETS, PRED_SETS, CLASSES).per_class["caf"]
    assert caf.specificity == pytest.approx(5 / 6)  # TN/(TN+FP); the study's TN/(FP+FN) would give 5/1


def test_class_absent_from_the_photos_is_undefined_and_left_out_of_macro():
    result = M.image_level_scores(TRUE_SETS, PRED_SETS, CLASSES)
    for absent in ("caf", "ota", "hori"):
        assert result.per_class[absent].support == 0
        assert result.per_class[absent].sensitivity is None
    assert result.per_class["caf"].precision == 0.0  # predicted but never there
    assert result.per_class["hori"].precision is None  # never predicted either
    # macro over sl, fre, mel only; undefined values (fre precision) skipped
    assert result.macro["precision"] == pytest.approx(1.0)
    assert result.macro["sensitivity"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert result.macro["specificity"] == pytest.approx(1.0)
    assert result.macro["f1"] == pytest.approx((0.8 + 1.0) / 2)


def test_accuracy_needs_the_exact_class_set():
    assert M.photo_correct(TRUE_SETS, PRED_SETS).tolist() == [True, False, False, False, True, False]
    assert M.image_accuracy(TRUE_SETS, PRED_SETS) == pytest.approx(2 / 6)
    result = M.image_level_scores(TRUE_SETS, PRED_SETS, CLASSES)
    assert (result.accuracy, result.n_correct, result.n_photos) == (pytest.approx(1 / 3), 2, 6)


def test_multi_lesion_photo_is_right_only_when_every_subtype_is_found_and_none_added():
    truth = [{"mel", "hori", "sl"}] * 4
    pred = [{"mel", "hori", "sl"}, {"mel", "hori"}, {"mel", "hori", "sl", "fre"}, {"sl", "hori", "mel"}]
    assert M.photo_correct(truth, pred).tolist() == [True, False, False, True]


def test_predicted_class_present_only_at_or_above_its_threshold():
    boxes = [box("sl", 0, 0, 5, 5, 0.30), box("mel", 0, 0, 5, 5, 0.29), box("fre", 0, 0, 5, 5, 0.5)]
    assert M.present_classes(boxes, {"sl": 0.3, "mel": 0.3, "fre": 0.6}) == {"sl"}
    assert M.present_classes(boxes, 0.29) == {"sl", "mel", "fre"}
    assert M.present_classes([box("ota", 0, 0, 1, 1)], 0.99) == {"ota"}  # human boxes have no score


# ---- confusion matrices ----------------------------------------------------------------------


def test_box_confusion_matrix_with_background_by_hand():
    truth = [[box("sl", 0, 0, 10, 10), box("mel", 20, 20, 30, 30), box("fre", 50, 50, 60, 60)]]
    pred = [
        [
            box("sl", 0, 0, 10, 10, 0.9),  # right
            box("fre", 20, 20, 30, 30, 0.8),  # right place, wrong class
            box("sl", 1, 1, 10, 10, 0.7),  # duplicate of the first: nothing left to match
            box("caf", 50, 50, 60, 60, 0.1),
        ]
    ]  # under threshold: ignored, so fre is missed
    cm = M.box_confusion_matrix(truth, pred, CLASSES, thresholds=0.25)
    bg = len(CLASSES)
    expected = np.zeros((bg + 1, bg + 1), dtype=int)
    expected[0, 0] = 1  # sl -> sl
    expected[2, 1] = 1  # mel -> fre
    expected[bg, 0] = 1  # background -> sl (false alarm)
    expected[1, bg] = 1  # fre -> background (missed)
    assert cm.tolist() == expected.tolist()


def test_box_matching_is_greedy_by_score_and_class_agnostic():
    truth = [[box("sl", 0, 0, 10, 10)]]
    pred = [[box("sl", 0, 0, 10, 10, 0.5), box("mel", 0, 0, 10, 6, 0.9)]]  # IoU 1.0 vs 0.6: score wins
    cm = M.box_confusion_matrix(truth, pred, CLASSES)
    bg = len(CLASSES)
    assert cm[0, 2] == 1 and cm[bg, 0] == 1 and cm.sum() == 2


def test_box_under_iou_half_does_not_match():
    truth = [[box("sl", 0, 0, 10, 10)]]
    pred = [[box("sl", 0, 0, 10, 4.9, 0.9)]]  # IoU 0.49
    cm = M.box_confusion_matrix(truth, pred, CLASSES)
    assert cm[0, len(CLASSES)] == 1 and cm[len(CLASSES), 0] == 1 and cm[0, 0] == 0


def test_image_confusion_matrix_counts_single_lesion_photos_only():
    cm = M.image_confusion_matrix(TRUE_SETS, PRED_SETS, CLASSES)
    k_none, k_several = len(CLASSES), len(CLASSES) + 1
    assert cm.shape == (6, 8)
    assert cm[0, 0] == 1  # sl -> sl
    assert cm[0, 4] == 1  # sl -> ota
    assert cm[1, k_none] == 1  # fre -> nothing
    assert cm[2, 2] == 1 and cm[2, k_several] == 1  # mel -> mel; mel -> mel + caf
    assert cm.sum() == 5  # photo 2 has two classes


# ---- COCOeval --------------------------------------------------------------------------------


def test_perfect_predictions_give_map_one():
    photos = ["a.jpg", "b.jpg"]
    truth = [[box("sl", 10, 10, 50, 50)], [box("mel", 5, 5, 60, 40), box("sl", 70, 70, 90, 95)]]
    pred = [[Box(b.label, b.x1, b.y1, b.x2, b.y2, score=0.9) for b in boxes] for boxes in truth]
    q = M.coco_evaluate(coco_ground_truth(photos, truth, CLASSES), coco_results(pred, CLASSES))
    assert q.map50 == pytest.approx(1.0) and q.map50_95 == pytest.approx(1.0)
    assert q.per_class["sl"]["ap50"] == pytest.approx(1.0)


def test_ap_by_hand_with_one_false_positive_ranked_second():
    # sl: GT on both photos; detections .9 right, .8 wrong place, .7 right -> recall .5 at precision 1,
    # recall 1 at precision 2/3; COCO's 101-point interpolation: 51 points at 1, 50 at 2/3.
    photos = ["a.jpg", "b.jpg"]
    truth = [[box("sl", 10, 10, 50, 50)], [box("sl", 10, 10, 50, 50)]]
    pred = [[box("sl", 10, 10, 50, 50, 0.9)], [box("sl", 100, 100, 140, 140, 0.8), box("sl", 10, 10, 50, 50, 0.7)]]
    q = M.coco_evaluate(coco_ground_truth(photos, truth, CLASSES), coco_results(pred, CLASSES))
    expected = (51 + 50 * 2 / 3) / 101
    assert q.per_class["sl"]["ap50"] == pytest.approx(expected)
    assert q.per_class["sl"]["ap50_95"] == pytest.approx(expected)
    assert q.map50 == pytest.approx(expected)
    recall, precision = q.pr_curves["sl"]
    assert recall.shape == precision.shape == (101,)
    assert precision[50] == pytest.approx(1.0) and precision[51] == pytest.approx(2 / 3)


def test_class_absent_from_ground_truth_is_none_and_not_averaged():
    photos = ["a.jpg"]
    truth = [[box("sl", 10, 10, 50, 50)]]
    pred = [[box("sl", 10, 10, 50, 50, 0.9), box("ota", 60, 60, 90, 90, 0.95)]]  # ota: not in any GT
    q = M.coco_evaluate(coco_ground_truth(photos, truth, CLASSES), coco_results(pred, CLASSES))
    assert q.per_class["ota"] == {"ap50": None, "ap50_95": None}
    assert q.per_class["hori"] == {"ap50": None, "ap50_95": None}
    assert q.map50 == pytest.approx(1.0)
    assert "ota" not in q.pr_curves


def test_no_predictions_at_all_gives_zero_ap():
    truth = [[box("sl", 10, 10, 50, 50)]]
    q = M.coco_evaluate(coco_ground_truth(["a.jpg"], truth, CLASSES), [])
    assert q.map50 == 0.0 and q.per_class["sl"]["ap50"] == 0.0


def test_exported_files_give_the_same_map_as_pycocotools_directly(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    photos, truth, pred = [], [], []
    for n in range(12):
        photos.append(f"p{n}.jpg")
        t = []
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 200, 2)
            t.append(box(CLASSES[rng.integers(0, 3)], x, y, x + rng.uniform(10, 60), y + rng.uniform(10, 60)))
        truth.append(t)
        pred.append(
            [
                Box(
                    CLASSES[rng.integers(0, 4)],
                    b.x1 + rng.normal(0, 4),
                    b.y1 + rng.normal(0, 4),
                    b.x2 + rng.normal(0, 4),
                    b.y2,
                    score=float(rng.uniform()),
                )
                for b in t
            ]
        )
    gt = coco_ground_truth(photos, truth, CLASSES)
    dt = coco_results(pred, CLASSES)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    coco_gt = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "dt.json")), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    q = M.coco_evaluate(gt, dt)
    assert q.map50_95 == pytest.approx(ev.stats[0]) and q.map50 == pytest.approx(ev.stats[1])


# ---- bootstrap and McNemar -------------------------------------------------------------------


def _bigger_case(n: int = 80, seed: int = 1):
    rng = np.random.default_rng(seed)
    truth, pred = [], []
    for _ in range(n):
        t = {CLASSES[rng.integers(0, 4)]}
        truth.append(t)
        pred.append(set(t) if rng.uniform() < 0.7 else {CLASSES[rng.integers(0, 6)]})
    return truth, pred


def test_bootstrap_interval_contains_the_point_estimate():
    truth, pred = _bigger_case()
    point = M.image_level_scores(truth, pred, CLASSES)
    ci = M.bootstrap_intervals(truth, pred, CLASSES, n_resamples=1000, seed=0)
    assert ci.accuracy[0] <= point.accuracy <= ci.accuracy[1]
    assert ci.accuracy[0] < ci.accuracy[1]
    for c in ("sl", "fre", "mel", "caf"):
        lo, hi = ci.sensitivity[c]
        assert lo <= point.per_class[c].sensitivity <= hi
        lo, hi = ci.specificity[c]
        assert lo <= point.per_class[c].specificity <= hi
    assert ci.macro_sensitivity[0] <= point.macro["sensitivity"] <= ci.macro_sensitivity[1]


def test_bootstrap_is_deterministic_for_a_seed():
    truth, pred = _bigger_case()
    a = M.bootstrap_intervals(truth, pred, CLASSES, n_resamples=300, seed=7)
    b = M.bootstrap_intervals(truth, pred, CLASSES, n_resamples=300, seed=7)
    c = M.bootstrap_intervals(truth, pred, CLASSES, n_resamples=300, seed=8)
    assert a == b
    assert a.to_dict() != c.to_dict()


def test_bootstrap_sensitivity_of_an_absent_class_is_none():
    truth, pred = _bigger_case()
    ci = M.bootstrap_intervals(truth, pred, CLASSES, n_resamples=100, seed=0)
    assert ci.sensitivity["hori"] is None and ci.sensitivity["ota"] is None


def test_mcnemar_exact_by_hand():
    # 1 photo only A got right, 6 only B, 3 both: p = 2 * P(X <= 1 | n=7, 1/2) = 2 * 8/128
    a = [True] + [False] * 6 + [True] * 3
    b = [False] + [True] * 6 + [True] * 3
    r = M.mcnemar_exact(a, b)
    assert (r.n_photos, r.only_a, r.only_b) == (10, 1, 6)
    assert r.p_value == pytest.approx(0.125)


def test_mcnemar_without_discordant_pairs_is_one():
    assert M.mcnemar_exact([True, False], [True, False]).p_value == 1.0


# ---- the accumulating evaluator --------------------------------------------------------------


def test_clinical_evaluation_by_subset_and_reset():
    ev = M.ClinicalEvaluation(CLASSES, thresholds={"sl": 0.5, "mel": 0.2})
    ev.update([box("sl", 0, 0, 10, 10)], [box("sl", 0, 0, 10, 10, 0.6)], "a.jpg", subset="dslr")
    ev.update([box("mel", 0, 0, 10, 10)], [box("mel", 0, 0, 10, 10, 0.1)], "b.jpg", subset="phone")
    ev.update(
        [box("mel", 0, 0, 10, 10), box("sl", 20, 20, 30, 30)],
        [box("mel", 0, 0, 10, 10, 0.3), box("sl", 20, 20, 30, 30, 0.4)],
        "c.jpg",
        subset="phone",
    )
    everything = ev.compute(n_resamples=50)
    assert everything.correct.tolist() == [True, False, False]
    assert everything.image_level.per_class["mel"].sensitivity == pytest.approx(0.5)
    assert everything.detection.map50 == pytest.approx(1.0)  # every box is in the right place
    phone = ev.compute("phone", n_resamples=0)
    assert phone.photos == ("b.jpg", "c.jpg") and phone.intervals is None
    assert phone.image_level.accuracy == 0.0
    json.dumps(everything.to_dict())  # JSON-ready
    ev.reset()
    assert ev.compute(n_resamples=0).image_level.n_photos == 0


def test_box_f1_carries_its_size_and_interval_and_an_empty_group_prints_none():
    from training.metrics import box_f1

    assert box_f1([]).describe() == "none" and box_f1([]).f1 is None
    assert box_f1([(0, 0, 0)]).f1 is None, "a photo with no box at all has no F1, not 1.0"
    perfect = box_f1([(3, 0, 0)] * 4)
    assert perfect.f1 == 1.0 and perfect.interval == (1.0, 1.0) and "on 4 photos" in perfect.describe()
    mixed = box_f1([(2, 0, 0), (0, 1, 1), (5, 0, 1), (1, 0, 0)], seed=1)
    assert mixed.f1 == pytest.approx(2 * 8 / (2 * 8 + 1 + 2))
    lo, hi = mixed.interval
    assert lo < mixed.f1 <= hi <= 1.0
