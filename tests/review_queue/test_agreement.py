"""Agreement between two reviews, computed by hand on small cases (pure: no server)."""

from __future__ import annotations

import pytest

from annotator.types import Box
from review_queue.agreement import compare, kappa, merge, summarise

CLASSES = ("mel", "fre", "sl", "caf", "hori", "ota")


def test_two_empty_reviews_agree_fully():
    assert compare("p", "a", [], "b", []).f1 == 1.0


def test_a_box_of_another_class_is_no_match():
    pair = compare("p", "a", [Box("mel", 0, 0, 10, 10)], "b", [Box("fre", 0, 0, 10, 10)])
    assert pair.f1 == 0.0 and pair.mean_iou is None


def test_box_f1_counts_both_reviewers_boxes():
    pair = compare("p", "a", [Box("mel", 0, 0, 10, 10), Box("sl", 50, 50, 60, 60)], "b", [Box("mel", 0, 0, 10, 8)])
    assert pair.f1 == pytest.approx(2 * 1 / 3)
    assert pair.mean_iou == pytest.approx(0.8)


def test_merge_takes_the_mean_corners_of_matched_boxes_and_keeps_unmatched_ones():
    pair = compare("p", "a", [Box("mel", 0, 0, 10, 10), Box("sl", 50, 50, 60, 60)], "b", [Box("mel", 2, 0, 12, 10)])
    assert merge(pair) == (Box("mel", 1, 0, 11, 10), Box("sl", 50, 50, 60, 60))


def test_photos_that_disagree_on_exclusion_are_never_merged():
    assert not compare("p", "a", [], "b", [], excluded_a=True).agrees(0.0)


def test_kappa_is_sklearns_and_undefined_without_variation():
    # po = 3/4; A says yes half the time, B a quarter: pe = 0.5*0.25 + 0.5*0.75 = 0.5 -> kappa 0.5
    assert kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(
        (0.75 - (0.5 * 0.25 + 0.5 * 0.75)) / (1 - (0.5 * 0.25 + 0.5 * 0.75))
    )
    assert kappa([False, False], [False, False]) is None


def test_summary_is_split_per_class_and_per_reviewer_pair():
    pairs = [
        compare("p0", "a", [Box("mel", 0, 0, 10, 10)], "b", [Box("mel", 0, 0, 10, 10)]),
        compare("p1", "c", [Box("fre", 0, 0, 10, 10)], "a", []),
    ]
    summary = summarise(pairs, CLASSES)
    assert summary.overall.box_f1 == pytest.approx(2 * 1 / 3)
    assert summary.per_class["mel"].box_f1 == 1.0 and summary.per_class["fre"].box_f1 == 0.0
    assert summary.per_pair["a + b"].box_f1 == 1.0 and summary.per_pair["a + c"].box_f1 == 0.0
    assert summary.disagreeing == ("p1",)
