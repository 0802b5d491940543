"""The queue-order study: how each order serves the pool, and how finalize's rule ends it."""

from __future__ import annotations

import pytest

from annotator.types import Box
from bootstrap.queue_order import (
    CLASS_BALANCED,
    MOST_CONFIDENT_FIRST,
    ORDERS,
    RANDOM,
    TARGET_F1,
    UNCERTAINTY_FIRST,
    PoolPhoto,
    order_pool,
    simulate_order,
    winner,
)
from review_queue.effort import LOOK_S, VERIFY_S, draw_seconds

W = H = 200


def _photo(name: str, uncertainty: float, *, right: bool, label: str = "sl") -> PoolPhoto:
    """A photo with one lesion; the model boxed it exactly (right) or boxed the wrong place."""
    truth = Box(label, 20, 20, 60, 60)
    guess = Box(label, 20, 20, 60, 60, score=0.9) if right else Box(label, 120, 120, 160, 160, score=0.3)
    return PoolPhoto(name, W, H, (guess,), uncertainty, (truth,))


def _paths(photos: list[PoolPhoto]) -> list[str]:
    return [p.path for p in photos]


def test_uncertainty_first_serves_the_most_uncertain_photo_first_and_most_confident_first_the_reverse():
    pool = [_photo("a", 0.2, right=True), _photo("b", 0.9, right=True), _photo("c", 0.5, right=True)]
    assert _paths(order_pool(pool, UNCERTAINTY_FIRST)) == ["b", "c", "a"]
    assert _paths(order_pool(pool, MOST_CONFIDENT_FIRST)) == ["a", "c", "b"]


def test_random_order_is_a_seeded_permutation_of_the_pool():
    pool = [_photo(f"p{i:02}", i / 30, right=True) for i in range(30)]
    first, again, other = (order_pool(pool, RANDOM, seed=s) for s in (1, 1, 2))
    assert sorted(_paths(first)) == sorted(_paths(pool))
    assert first == again
    assert first != other


def test_class_balanced_order_takes_the_rarest_class_first_and_turns_round_the_classes():
    pool = [
        _photo("sl-1", 0.1, right=True),
        _photo("sl-2", 0.8, right=True),
        _photo("sl-3", 0.5, right=True),
        _photo("ota-1", 0.2, right=True, label="ota"),
        PoolPhoto("empty", W, H, (), 0.6, ()),
    ]
    # groups by frequency: empty (0 predicted classes), ota (1 photo), sl (3 photos); most uncertain first within
    assert _paths(order_pool(pool, CLASS_BALANCED)) == ["empty", "ota-1", "sl-2", "sl-3", "sl-1"]


def test_an_unknown_order_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="uncertainty-first"):
        order_pool([], "alphabetical")


def test_a_model_that_predicted_nothing_costs_the_reviewer_what_drawing_costs_and_is_not_auto_accepted():
    pool = [PoolPhoto(f"p{i}", W, H, (), 0.5, (Box("mel", 10, 10, 90, 90),)) for i in range(6)]
    # no seed boxes: two empty photos left would be 2 misses in 6 boxes, far above finalize's tolerated 2%
    outcome = simulate_order(pool, UNCERTAINTY_FIRST, batch=2, human_boxes=0)
    assert outcome.reviewed_photos == 6 and outcome.auto_accepted == 0
    assert outcome.finished_by == "every photo reviewed"
    assert outcome.reviewer_seconds == pytest.approx(outcome.scratch_seconds)
    assert outcome.reviewer_seconds == pytest.approx(6 * (LOOK_S + draw_seconds(Box("mel", 10, 10, 90, 90), W, H)))
    assert outcome.pool_f1 == 1.0


def test_a_small_enough_rest_is_accepted_even_after_a_fully_corrected_batch_when_its_misses_fit_the_tolerance():
    pool = [PoolPhoto(f"p{i}", W, H, (), 0.5, (Box("mel", 10, 10, 90, 90),)) for i in range(6)]
    # 100 seed boxes: 2 empty photos left are at most 2 misses in 106 boxes, under finalize's 2%
    outcome = simulate_order(pool, UNCERTAINTY_FIRST, batch=2, human_boxes=100)
    assert outcome.finished_by == "finalize after 4 photos"
    assert outcome.pool_f1 == pytest.approx(2 * 4 / (2 * 4 + 2))


def test_a_perfect_model_is_accepted_after_the_first_batch_and_the_reviewer_only_verified():
    pool = [_photo(f"p{i}", i / 10, right=True) for i in range(10)]
    outcome = simulate_order(pool, RANDOM, batch=3, human_boxes=100, seed=4)
    assert (outcome.reviewed_photos, outcome.auto_accepted) == (3, 7)
    assert outcome.finished_by == "finalize after 3 photos"
    assert outcome.reviewer_seconds == pytest.approx(3 * (LOOK_S + VERIFY_S))
    assert outcome.pool_f1 == 1.0 and outcome.oracle_photos == 0


def _half_wrong() -> list[PoolPhoto]:
    """The model is right and sure on 10 photos, wrong and unsure on 10: the uncertainty ranks them."""
    return [_photo(f"good{i}", 0.1 + i / 100, right=True) for i in range(10)] + [
        _photo(f"bad{i}", 0.8 + i / 100, right=False) for i in range(10)
    ]


def test_serving_sure_photos_first_lets_finalize_accept_the_wrong_ones_unchecked():
    outcome = simulate_order(_half_wrong(), MOST_CONFIDENT_FIRST, batch=5, human_boxes=200)
    assert outcome.finished_by == "finalize after 5 photos"  # the first batch needed no correction
    assert outcome.pool_f1 < TARGET_F1 and not outcome.meets_target
    assert outcome.oracle_photos == 19  # one wrong photo left: F1 38/40 = 0.95; in this order that is the last one


def test_serving_uncertain_photos_first_finishes_at_the_target_and_wins():
    served = simulate_order(_half_wrong(), UNCERTAINTY_FIRST, batch=5, human_boxes=200)
    assert served.finished_by == "finalize after 15 photos"  # two corrected batches, then a clean one
    assert served.pool_f1 == 1.0 and served.meets_target
    assert served.oracle_photos == 9  # the last wrong photo may go unreviewed: F1 38/40 = 0.95
    sure_first = simulate_order(_half_wrong(), MOST_CONFIDENT_FIRST, batch=5, human_boxes=200)
    assert winner([served, sure_first]) == UNCERTAINTY_FIRST
    assert winner([sure_first]) is None  # no order met the target: no winner is named


def test_every_order_reviews_every_photo_it_does_not_accept():
    pool = _half_wrong()
    for order in ORDERS:
        outcome = simulate_order(pool, order, batch=4, human_boxes=200, seed=3)
        assert outcome.reviewed_photos + outcome.auto_accepted == len(pool), order
        assert outcome.scratch_seconds > 0, order
