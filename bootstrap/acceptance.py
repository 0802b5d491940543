"""The acceptance audit: accept a model's remaining predictions only when a random sample of exactly
those photos, boxed by people, bounds the share of wrong photos at or below a tolerance.

Pure: no I/O. The plan sizes the sample before anyone audits; `judge` reads the audited photos and
says accept, audit more, or keep reviewing. The bound is the exact one-sided Clopper-Pearson upper
bound (scipy's `binomtest(...).proportion_ci`): with k wrong photos in a simple random sample of n,
the share of wrong photos among all photos to accept is at most the bound with the stated confidence.
Sampling without replacement from a finite pool makes the binomial bound conservative.

One look: the decision is taken once the planned sample is audited (or earlier, only to refuse, when
the errors found already exceed what the plan allows). Accepting as soon as a running bound dips below
the tolerance would be several looks at the data and would overstate the confidence.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import binom, binomtest

from annotator.boxes import match_boxes
from annotator.config import DEFAULT_AUDIT_TOLERANCE
from annotator.types import Box

# The tunables of the audit, named once (the tolerance is also a setting: `[finalize] tolerance`).
AUDIT_CONFIDENCE = 0.95  # one-sided confidence of the upper bound
AUDIT_TOLERANCE = DEFAULT_AUDIT_TOLERANCE  # wrong-photo share the accepted photos may hold ([finalize] tolerance)
AUDIT_POWER = 0.80  # the chance a pool at the expected error rate passes its planned audit
AUDIT_MATCH_IOU = 0.5  # the detection standard: two readers' boxes of one lesion differ more than 0.7 allows
MAX_PLANNED_SAMPLE = 20_000  # beyond this, a plan audits the whole pool instead


def upper_bound(errors: int, audited: int, *, confidence: float = AUDIT_CONFIDENCE) -> float:
    """Exact one-sided upper confidence bound (Clopper-Pearson) on an error share, from `errors`
    found among `audited` items drawn at random. 1.0 when nothing was audited."""
    if audited <= 0:
        return 1.0
    if not 0 <= errors <= audited:
        raise ValueError(f"errors must lie between 0 and audited ({audited}), got {errors}")
    ci = binomtest(errors, audited, alternative="less").proportion_ci(confidence_level=confidence)
    return float(ci.high)


def errors_allowed(audited: int, *, tolerance: float, confidence: float = AUDIT_CONFIDENCE) -> int:
    """The most wrong items among `audited` that still bound the share at or below `tolerance`
    (-1 when even none would: the sample is too small)."""
    k = -1
    while k + 1 <= audited and upper_bound(k + 1, audited, confidence=confidence) <= tolerance:
        k += 1
    return k


def zero_error_sample_size(tolerance: float, *, confidence: float = AUDIT_CONFIDENCE) -> int:
    """Photos that bound the share at `tolerance` when none of them is wrong: ln(1-c)/ln(1-t)
    (about 149 at 2%, 59 at 5%), checked against the exact bound."""
    n = max(1, math.ceil(math.log(1 - confidence) / math.log(1 - tolerance)))
    while upper_bound(0, n, confidence=confidence) > tolerance:
        n += 1
    return n


def population_digest(items: Iterable[tuple[str, int]]) -> str:
    """One fingerprint of exactly what would be accepted: (photo path, prediction version id) pairs.
    A new round, a new prediction or a photo reviewed since changes it and voids the audit."""
    h = hashlib.sha256()
    for path, version_id in sorted(items):
        h.update(f"{path}\0{version_id}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class AuditPlan:
    """How many of the photos to accept are audited, and what the audit may find and still pass."""

    population: int  # photos that would be accepted
    population_digest: str  # see `population_digest`
    tolerance: float
    confidence: float
    expected_rate: float  # the wrong-photo share the plan is sized for
    power: float  # chance such a pool passes
    sample_size: int
    errors_allowed: int  # wrong photos the full sample may hold and still pass
    seed: int
    sample: tuple[str, ...]  # the photos to audit, in audit order
    sample_versions: tuple[int, ...]  # the prediction (label version id) of each that would be accepted
    census: bool  # the sample is the whole pool: its count is exact, not a bound

    @property
    def settings(self) -> AuditSettings:
        return AuditSettings(self.tolerance, self.expected_rate, self.confidence, self.power, self.seed)

    def describe(self) -> str:
        """The plan in one sentence, printed before anyone audits."""
        if self.census:
            return (
                f"audit all {self.population} photos to accept (a sample could not bound the error at "
                f"{self.tolerance:.1%} with {self.confidence:.0%} confidence from fewer)"
            )
        zero = zero_error_sample_size(self.tolerance, confidence=self.confidence)
        return (
            f"audit {self.sample_size} of {self.population} photos to accept, drawn at random (seed {self.seed}): "
            f"at most {self.errors_allowed} wrong photos bound the wrong share at {self.tolerance:.1%} "
            f"({self.confidence:.0%} one-sided, Clopper-Pearson); sized for an expected {self.expected_rate:.1%} "
            f"wrong so that such a pool passes with {self.power:.0%} chance "
            f"(with 0 errors, {zero} photos would bound it)"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sample"], out["sample_versions"] = list(self.sample), list(self.sample_versions)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditPlan:
        return cls(**{**data, "sample": tuple(data["sample"]), "sample_versions": tuple(data["sample_versions"])})


@lru_cache(maxsize=256)
def planned_sample_size(
    population: int,
    *,
    tolerance: float,
    expected_rate: float = 0.0,
    confidence: float = AUDIT_CONFIDENCE,
    power: float = AUDIT_POWER,
) -> tuple[int, int]:
    """(sample size, errors allowed): the smallest sample whose exact bound passes a pool whose true
    wrong share is `expected_rate` with chance >= `power`. The whole pool when no smaller sample does."""
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie strictly between 0 and 1, got {tolerance}")
    if not 0 <= expected_rate < tolerance:
        raise ValueError(f"the expected error rate ({expected_rate}) must be below the tolerance ({tolerance})")
    start = zero_error_sample_size(tolerance, confidence=confidence)
    for n in range(start, min(population, MAX_PLANNED_SAMPLE) + 1):
        k = errors_allowed(n, tolerance=tolerance, confidence=confidence)
        if k >= 0 and binom.cdf(k, n, expected_rate) >= power:
            return n, k
    return population, -1  # census


@dataclass(frozen=True)
class AuditSettings:
    """What an audit plan is asked for: the tolerance, the error rate to size for, confidence, power, seed."""

    tolerance: float = AUDIT_TOLERANCE
    expected_rate: float = 0.0
    confidence: float = AUDIT_CONFIDENCE
    power: float = AUDIT_POWER
    seed: int = 0


def plan_audit(candidates: Sequence[tuple[str, int]], settings: AuditSettings = AuditSettings()) -> AuditPlan:
    """Size the audit and draw its simple random sample (seeded, so the plan is reproducible).
    candidates: (photo path, prediction version id) of every photo that would be accepted."""
    versions = dict(candidates)
    paths = sorted(versions)
    size, allowed = planned_sample_size(
        len(paths),
        tolerance=settings.tolerance,
        expected_rate=settings.expected_rate,
        confidence=settings.confidence,
        power=settings.power,
    )
    census = size >= len(paths)
    order = np.random.default_rng(settings.seed).permutation(len(paths))
    sample = tuple(paths[i] for i in order[: min(size, len(paths))])
    return AuditPlan(
        population=len(paths),
        population_digest=population_digest(candidates),
        tolerance=settings.tolerance,
        confidence=settings.confidence,
        expected_rate=settings.expected_rate,
        power=settings.power,
        sample_size=len(sample),
        errors_allowed=allowed,
        seed=settings.seed,
        sample=sample,
        sample_versions=tuple(versions[p] for p in sample),
        census=census,
    )


@dataclass(frozen=True)
class PhotoCheck:
    """One audited photo: the predictions to accept against the auditor's own boxes, one to one at
    the detection standard (same class, IoU >= 0.5)."""

    path: str
    matched: int
    wrong_predicted: int  # predicted boxes with no auditor box (false, mislabelled or misplaced)
    missed: int  # auditor boxes with no predicted box

    @property
    def wrong(self) -> bool:
        return self.wrong_predicted > 0 or self.missed > 0

    @property
    def boxes(self) -> int:
        """Boxes judged: matched pairs once, plus every unmatched box on either side."""
        return self.matched + self.wrong_predicted + self.missed

    @property
    def wrong_boxes(self) -> int:
        return self.wrong_predicted + self.missed


def check_photo(
    path: str, accepted: Sequence[Box], audited: Sequence[Box], *, iou: float = AUDIT_MATCH_IOU
) -> PhotoCheck:
    """Compare the predictions that would be accepted with the auditor's boxes of the same photo."""
    pairs = match_boxes(list(accepted), list(audited), iou_threshold=iou)
    return PhotoCheck(path, len(pairs), len(accepted) - len(pairs), len(audited) - len(pairs))


class Verdict(StrEnum):
    ACCEPT = "accept"
    AUDIT_MORE = "audit more"
    KEEP_REVIEWING = "keep reviewing"


@dataclass(frozen=True)
class AuditOutcome:
    """What an audit found and what it allows."""

    verdict: Verdict
    audited: int
    wrong_photos: int
    photo_bound: float  # upper bound on the wrong-photo share among the photos to accept
    boxes: int
    wrong_boxes: int
    box_bound: float  # the same on boxes (boxes of one photo are not independent: read it as indicative)
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}


def judge(plan: AuditPlan, checks: Sequence[PhotoCheck]) -> AuditOutcome:
    """The verdict of an audit, once: refuse as soon as the errors found exceed what the plan allows;
    otherwise wait for the whole planned sample; accept when its bound is at or below the tolerance."""
    n, k = len(checks), sum(c.wrong for c in checks)
    boxes, wrong_boxes = sum(c.boxes for c in checks), sum(c.wrong_boxes for c in checks)
    bound = upper_bound(k, n, confidence=plan.confidence)
    box_bound = upper_bound(wrong_boxes, boxes, confidence=plan.confidence)
    figures = f"{k} wrong photos of {n} audited" + (f" ({k / n:.1%})" if n else "")
    if plan.census:  # the whole pool is audited: its count is exact, no bound needed
        allowed = math.floor(plan.tolerance * plan.population)
        verdict = _verdict(k > allowed, n < plan.sample_size, k <= allowed)
    else:
        verdict = _verdict(k > plan.errors_allowed, n < plan.sample_size, bound <= plan.tolerance)
    message = {
        Verdict.ACCEPT: f"safe to accept: {figures}; at most {bound:.1%} of the photos to accept are wrong "
        f"({plan.confidence:.0%} one-sided), within the {plan.tolerance:.1%} tolerance",
        Verdict.AUDIT_MORE: f"audit {plan.sample_size - n} more photos ({k} errors so far)",
        Verdict.KEEP_REVIEWING: f"errors at {k / max(n, 1):.1%} ({figures}; bound {bound:.1%} > tolerance "
        f"{plan.tolerance:.1%}): keep reviewing, retrain, and audit the next round's predictions",
    }[verdict]
    return AuditOutcome(verdict, n, k, bound, boxes, wrong_boxes, box_bound, message)


def _verdict(too_many_errors: bool, incomplete: bool, within_tolerance: bool) -> Verdict:
    """Refuse early on errors, wait for the planned sample, then read the bound once."""
    if too_many_errors:
        return Verdict.KEEP_REVIEWING
    if incomplete:
        return Verdict.AUDIT_MORE
    return Verdict.ACCEPT if within_tolerance else Verdict.KEEP_REVIEWING
