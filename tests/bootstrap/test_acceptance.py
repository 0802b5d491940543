"""The acceptance audit's rule, by simulation: exact bounds, a planner that sizes the sample, and
verdicts that refuse bad pools and pass good ones at the rates the plan promises."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from annotator.types import Box
from bootstrap.acceptance import (
    AuditPlan,
    AuditSettings,
    PhotoCheck,
    Verdict,
    check_photo,
    judge,
    plan_audit,
    planned_sample_size,
    upper_bound,
    zero_error_sample_size,
)


def _pool(size: int, wrong: int, seed: int = 0) -> tuple[list[tuple[str, int]], set[str]]:
    """(path, prediction version id) for `size` photos, `wrong` of them picked at random as wrong."""
    candidates = [(f"img/{i:05d}.jpg", 1000 + i) for i in range(size)]
    rng = np.random.default_rng(seed)
    wrong_paths = {candidates[i][0] for i in rng.choice(size, size=wrong, replace=False)}
    return candidates, wrong_paths


def _audit(plan: AuditPlan, wrong_paths: set[str]) -> Verdict:
    checks = [PhotoCheck(p, 0 if p in wrong_paths else 1, int(p in wrong_paths), 0) for p in plan.sample]
    return judge(plan, checks).verdict


@pytest.mark.parametrize(("k", "n"), [(0, 1), (0, 149), (1, 149), (3, 386), (10, 50), (7, 7)])
def test_upper_bound_is_the_clopper_pearson_bound(k: int, n: int) -> None:
    expected = 1.0 if k == n else beta.ppf(0.95, k + 1, n - k)  # the one-sided exact bound, from the beta law
    assert upper_bound(k, n) == pytest.approx(expected, abs=1e-9)


def test_zero_error_sample_sizes_match_the_published_figures() -> None:
    assert zero_error_sample_size(0.02) == 149
    assert zero_error_sample_size(0.05) == 59


def test_the_planner_sizes_for_the_expected_rate() -> None:
    assert planned_sample_size(100_000, tolerance=0.02) == (149, 0)
    size, allowed = planned_sample_size(100_000, tolerance=0.02, expected_rate=0.005)
    assert 300 <= size <= 500 and allowed >= 1, (size, allowed)  # several hundred, not 150


def test_a_pool_with_five_percent_wrong_is_refused_at_two_percent() -> None:
    candidates, wrong = _pool(3000, 150)
    for expected_rate in (0.0, 0.005):
        verdicts = [
            _audit(plan_audit(candidates, AuditSettings(expected_rate=expected_rate, seed=s)), wrong)
            for s in range(200)
        ]
        refused = sum(v is Verdict.KEEP_REVIEWING for v in verdicts)
        assert refused >= 190, (expected_rate, refused)  # at least 95% of 200 seeded audits


def test_a_pool_with_half_a_percent_wrong_passes_a_plan_sized_for_it() -> None:
    candidates, wrong = _pool(5000, 25)
    verdicts = [_audit(plan_audit(candidates, AuditSettings(expected_rate=0.005, seed=s)), wrong) for s in range(200)]
    accepted = sum(v is Verdict.ACCEPT for v in verdicts)
    assert accepted >= 160, accepted  # at least 80%


def test_few_photos_left_from_a_weak_model_are_refused() -> None:
    candidates, wrong = _pool(12, 12)  # every remaining prediction wrong: what a fully corrected batch foretells
    plan = plan_audit(candidates)
    assert plan.census and plan.sample_size == 12
    outcome = judge(plan, [PhotoCheck(p, 0, 1, 1) for p in plan.sample[:1]])
    assert outcome.verdict is Verdict.KEEP_REVIEWING
    assert "keep reviewing" in outcome.message


def test_an_incomplete_audit_says_how_many_more() -> None:
    candidates, _ = _pool(1000, 0)
    plan = plan_audit(candidates)
    outcome = judge(plan, [PhotoCheck(p, 1, 0, 0) for p in plan.sample[:40]])
    assert outcome.verdict is Verdict.AUDIT_MORE
    assert outcome.message == "audit 109 more photos (0 errors so far)"
    assert judge(plan, [PhotoCheck(p, 1, 0, 0) for p in plan.sample]).verdict is Verdict.ACCEPT


def test_the_plan_is_reproducible_and_bound_to_its_predictions() -> None:
    candidates, _ = _pool(500, 0)
    a, b = plan_audit(candidates, AuditSettings(seed=7)), plan_audit(list(reversed(candidates)), AuditSettings(seed=7))
    assert a.sample == b.sample and a.population_digest == b.population_digest
    assert plan_audit(candidates, AuditSettings(seed=8)).sample != a.sample
    changed = [(p, v + 1 if i == 0 else v) for i, (p, v) in enumerate(candidates)]
    assert plan_audit(changed, AuditSettings(seed=7)).population_digest != a.population_digest
    assert AuditPlan.from_dict(a.to_dict()) == a


def test_a_photo_is_wrong_unless_every_box_matches_one_to_one() -> None:
    lesion = Box("mel", 10, 10, 50, 50)
    assert not check_photo("a", [lesion], [Box("mel", 12, 12, 52, 52)]).wrong
    assert check_photo("a", [lesion], [Box("hori", 10, 10, 50, 50)]).wrong  # class confused
    assert check_photo("a", [lesion], [Box("mel", 30, 30, 70, 70)]).wrong  # IoU below 0.5
    missed = check_photo("a", [], [lesion])
    assert missed.wrong and (missed.missed, missed.boxes) == (1, 1)
    assert not check_photo("a", [], []).wrong
