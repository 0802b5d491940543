"""training.thresholds: each class's confidence threshold is the F1-maximising score on the val split, with a
floor, or the configured default where val gives no evidence; the user's own thresholds still win."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.config import Config
from annotator.types import Box
from training.thresholds import choose_thresholds, f1_threshold, score_matches, threshold_rule


def test_the_threshold_is_the_score_where_f1_peaks():
    # 4 truth boxes; F1 keeping the top k: 0.40, 0.67, 0.57, 0.75 (k=4, down to 0.5), 0.67, 0.60
    scored = [(0.9, True), (0.8, True), (0.6, False), (0.5, True), (0.3, False), (0.2, False)]
    chosen = f1_threshold("mel", scored, 4, default=0.25, floor=0.05)
    assert (chosen.threshold, chosen.source) == (0.5, "val-f1")
    assert (chosen.f1, chosen.precision, chosen.recall) == (0.75, 0.75, 0.75)


def test_an_under_confident_model_gets_a_threshold_below_the_default():
    scored = [(0.14, True), (0.12, True), (0.09, True), (0.04, False)]
    assert f1_threshold("sl", scored, 3, default=0.25, floor=0.05).threshold == 0.09


def test_the_threshold_never_falls_below_the_floor():
    scored = [(0.03, True), (0.02, True)]
    chosen = f1_threshold("fre", scored, 2, default=0.25, floor=0.05)
    assert chosen.threshold == 0.05 and chosen.source == "val-f1" and chosen.recall == 0.0


def test_a_class_without_val_boxes_keeps_the_default():
    chosen = f1_threshold("ota", [(0.7, False)], 0, default=0.25)
    assert (chosen.threshold, chosen.source, chosen.val_boxes) == (0.25, "default", 0)


def test_a_class_the_model_never_found_on_val_keeps_the_default():
    chosen = f1_threshold("hori", [(0.6, False), (0.4, False)], 2, default=0.3)
    assert (chosen.threshold, chosen.source) == (0.3, "default")


def test_equal_scores_are_kept_or_dropped_together():
    # keeping only the first 0.8 would give F1 2/3, but the two 0.8 boxes cannot be told apart: all or none
    scored = [(0.8, True), (0.8, False), (0.8, False), (0.1, False)]
    chosen = f1_threshold("caf", scored, 2, default=0.25, floor=0.05)
    assert chosen.threshold == 0.8 and chosen.precision == pytest.approx(1 / 3, abs=1e-3)


def test_a_box_counts_only_on_a_same_class_truth_box_at_iou_half_and_only_once():
    truth = [[Box("mel", 0, 0, 10, 10), Box("sl", 50, 50, 60, 60)]]
    pred = [
        [
            Box("mel", 0, 0, 10, 10, score=0.9),  # hit
            Box("mel", 1, 0, 10, 10, score=0.8),  # a duplicate of the same lesion
            Box("fre", 50, 50, 60, 60, score=0.7),  # right place, wrong class
            Box("sl", 55, 55, 65, 65, score=0.6),
        ]
    ]  # right class, IoU 0.14
    scored, counts = score_matches(truth, pred, ("mel", "sl", "fre"))
    assert scored == {"mel": [(0.9, True), (0.8, False)], "sl": [(0.6, False)], "fre": [(0.7, False)]}
    assert counts == {"mel": 1, "sl": 1, "fre": 0}


def test_every_class_gets_a_threshold_from_paired_photos():
    truth = [[Box("mel", 0, 0, 10, 10)], [Box("mel", 20, 20, 30, 30)]]
    pred = [[Box("mel", 0, 0, 10, 10, score=0.2)], [Box("mel", 20, 20, 30, 30, score=0.15)]]
    chosen = choose_thresholds(truth, pred, ("mel", "sl"), default=0.25)
    assert chosen["mel"].threshold == 0.15 and chosen["sl"].source == "default"


def test_the_users_threshold_wins_over_the_rounds_and_the_default_fills_the_rest():
    cfg = Config(images=Path("."), default_threshold=0.25, thresholds={"mel": 0.4})
    rule = threshold_rule(cfg, {"mel": 0.1, "sl": 0.12})
    assert (rule("mel"), rule("sl"), rule("ota")) == (0.4, 0.12, 0.25)
