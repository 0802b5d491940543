"""Splits: a balanced held-out test split, stratified train/val, never reshuffled."""

from __future__ import annotations

from collections import Counter

from bootstrap.split import SplitCandidate, held_out_size, late_split, make_splits

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


def _candidates(n: int) -> list[SplitCandidate]:
    out = []
    for i in range(n):
        labels = {CLASSES[i % 6]} | ({CLASSES[(i * 7) % 6]} if i % 4 == 0 else set())
        out.append(SplitCandidate(f"p{i:04d}.jpg", frozenset(labels), "phone" if i % 5 == 0 else "dslr"))
    return out


def test_test_split_is_300_or_ten_percent_whichever_is_smaller():
    assert held_out_size(4868, 300, 0.10) == 300
    assert held_out_size(1000, 300, 0.10) == 100


def test_every_photo_gets_exactly_one_split_and_val_is_twenty_percent_of_the_rest():
    splits = make_splits(_candidates(600), test_size=300, test_fraction=0.10, val_fraction=0.20, seed=3)
    counts = Counter(splits.values())
    assert len(splits) == 600 and counts["test"] == 60
    assert abs(counts["val"] - 0.2 * 540) <= 1


def test_test_split_is_balanced_over_classes():
    cands = _candidates(600)
    splits = make_splits(cands, test_size=300, test_fraction=0.10, seed=1)
    per_class = Counter(label for c in cands if splits[c.path] == "test" for label in c.classes)
    assert set(per_class) == set(CLASSES)
    assert max(per_class.values()) - min(per_class.values()) <= 6


def test_same_seed_same_splits_and_another_seed_differs():
    cands = _candidates(200)
    assert make_splits(cands, seed=5) == make_splits(list(reversed(cands)), seed=5)
    assert make_splits(cands, seed=5) != make_splits(cands, seed=6)


def test_late_labelled_photos_never_join_the_test_split_and_are_stable():
    assignments = [late_split(f"new{i}.jpg") for i in range(500)]
    assert set(assignments) == {"train", "val"}
    assert assignments == [late_split(f"new{i}.jpg") for i in range(500)]


def test_every_seed_set_size_from_the_minimum_up_gets_a_train_and_a_val_photo():
    """4 photos once split 4 train / 0 val and training crashed; every accepted size must train."""
    from bootstrap.split import MIN_LABELLED

    for n in range(MIN_LABELLED, 40):
        for seed in range(6):
            counts = Counter(make_splits(_candidates(n), seed=seed).values())
            assert counts["train"] >= 1 and counts["val"] >= 1, (n, seed, counts)
            assert sum(counts.values()) == n
