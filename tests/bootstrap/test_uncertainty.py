"""The photo uncertainty ranks photos by how likely their pre-annotation needs a fix."""

from __future__ import annotations

from annotator.types import Box
from bootstrap.uncertainty import keep_confident, photo_uncertainty


def threshold(_: str) -> float:
    return 0.25


def test_a_photo_with_no_confident_box_is_the_most_uncertain():
    assert photo_uncertainty([Box("mel", 0, 0, 10, 10, score=0.05)], threshold) == 1.0
    assert photo_uncertainty([], threshold) == 1.0


def test_confident_boxes_give_low_uncertainty_and_a_shaky_box_raises_it():
    sure = photo_uncertainty([Box("caf", 0, 0, 10, 10, score=0.95)], threshold)
    shaky = photo_uncertainty([Box("caf", 0, 0, 10, 10, score=0.95), Box("sl", 50, 50, 60, 60, score=0.3)], threshold)
    assert sure < 0.1 < shaky


def test_a_near_threshold_dropped_box_signals_a_possible_miss():
    base = [Box("caf", 0, 0, 10, 10, score=0.95)]
    with_near_miss = base + [Box("sl", 50, 50, 60, 60, score=0.24)]
    assert photo_uncertainty(with_near_miss, threshold) > 0.9


def test_two_classes_competing_for_one_region_signal_confusion():
    mel = Box("mel", 0, 0, 100, 100, score=0.6)
    hori = Box("hori", 2, 2, 100, 100, score=0.55)
    assert photo_uncertainty([mel, hori], threshold) > 0.9


def test_keep_confident_applies_per_class_thresholds():
    boxes = [Box("mel", 0, 0, 1, 1, score=0.35), Box("sl", 0, 0, 1, 1, score=0.35)]
    kept = keep_confident(boxes, lambda label: 0.4 if label == "mel" else 0.3)
    assert [b.label for b in kept] == ["sl"]
