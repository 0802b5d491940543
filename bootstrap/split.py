"""Fixed splits: a held-out test split no round ever trains on, and train/val for the rest.

The test split is balanced over the classes (like the study's test set) by picking photos
class by class in turn; train/val is stratified over (class combination, device class) by
systematic sampling within each stratum. Splits are made once and stored; photos labelled
later (reviewed, auto-accepted) join train/val by a stable hash, never the test split.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass

from annotator.types import EVAL_SPLIT

__all__ = ["EVAL_SPLIT", "SplitCandidate", "held_out_size", "late_split", "make_splits"]


@dataclass(frozen=True)
class SplitCandidate:
    path: str
    classes: frozenset[str]
    device: str


def held_out_size(n_labelled: int, test_size: int, test_fraction: float) -> int:
    """The study's rule: `test_size` photos or `test_fraction` of the labelled set, whichever is smaller."""
    return max(0, min(test_size, int(round(test_fraction * n_labelled))))


def make_splits(
    candidates: list[SplitCandidate],
    *,
    test_size: int = 300,
    test_fraction: float = 0.10,
    val_fraction: float = 0.20,
    seed: int = 0,
) -> dict[str, str]:
    """path -> "test" | "train" | "val" for every candidate. Deterministic for a seed."""
    rng = random.Random(seed)
    ordered = sorted(candidates, key=lambda c: c.path)
    n_test = held_out_size(len(ordered), test_size, test_fraction)

    by_class: dict[str, list[SplitCandidate]] = defaultdict(list)
    for cand in ordered:
        for label in sorted(cand.classes):
            by_class[label].append(cand)
    for pool in by_class.values():
        rng.shuffle(pool)
    test: set[str] = set()
    classes = sorted(by_class, key=lambda k: len(by_class[k]))  # rarest first, so rare classes get their share
    while len(test) < n_test and any(by_class.values()):
        for label in classes:
            pool = by_class[label]
            while pool and pool[-1].path in test:
                pool.pop()
            if pool and len(test) < n_test:
                test.add(pool.pop().path)

    strata: dict[tuple, list[SplitCandidate]] = defaultdict(list)
    for cand in ordered:
        if cand.path not in test:
            strata[(tuple(sorted(cand.classes)), cand.device)].append(cand)
    result = {p: "test" for p in test}
    carry = rng.random()  # systematic sampling across strata keeps the overall ratio exact
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        for cand in members:
            carry += val_fraction
            if carry >= 1.0:
                carry -= 1.0
                result[cand.path] = "val"
            else:
                result[cand.path] = "train"
    _ensure_train_and_val(result, rng)
    return result


MIN_LABELLED = 3  # one photo each for train and val, and one more for either: below this no round can train


def _ensure_train_and_val(result: dict[str, str], rng: random.Random) -> None:
    """Systematic sampling can give a tiny set no val photo (4 photos x 20% = 0.8) or no train
    photo; Ultralytics cannot train without both. Move one photo across, deterministically."""
    for missing, donor in (("val", "train"), ("train", "val")):
        members = sorted(p for p, s in result.items() if s == donor)
        if missing not in result.values() and len(members) >= 2:
            result[members[rng.randrange(len(members))]] = missing


def late_split(path: str, val_fraction: float = 0.20) -> str:
    """Split for a photo labelled after bootstrap: stable, never "test"."""
    bucket = int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"
