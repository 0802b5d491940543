"""What reviewing really cost: Label Studio's measured lead time of every pulled review, grouped by what
the reviewer did, and the effort model's per-action seconds fitted to them, so a team's own clock
replaces the model's constants (`review_queue.effort`).

The fit: a review's seconds = look + sum over its edits of that edit kind's seconds, solved by
non-negative least squares (scipy.optimize.nnls) over the workspace's timed reviews; the spread of
each fitted time is a percentile bootstrap interval over reviews. Simulated reviews are left out by
default: their lead times are the effort model's own, and fitting the model to itself proves nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from annotator.boxes import match_boxes
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from review_queue.edits import EditKind
from review_queue.effort import DRAW_MAX_S, DRAW_MIN_S, EDIT_SECONDS, LOOK_S
from review_queue.review_meta import ReviewMeta
from training.constants import BOOTSTRAP_RESAMPLES, INTERVAL_LEVEL, MATCH_IOU
from training.metrics import BoxF1, box_f1, percentile_interval

LOOK = "look"  # the per-photo term of the fit (look at the photo, submit)
MIN_REVIEWS_PER_TERM = 3  # a fit needs at least this many timed reviews per fitted time


@dataclass(frozen=True)
class TimedReview:
    """One pulled review with Label Studio's measured seconds and what the reviewer did."""

    path: str
    seconds: float
    edits: Mapping[EditKind, int]
    simulated: bool

    @property
    def group(self) -> str:
        """What the reviewer did, coarsely: the groups `measured_by_group` reports."""
        if self.edits.get(EditKind.ADDED):
            return "drew a missed box"
        if any(self.edits.get(k) for k in (EditKind.MOVED, EditKind.RELABELLED, EditKind.DELETED)):
            return "changed predicted boxes"
        return "verified only"


def timed_reviews(versions: Iterable[LabelVersion], *, include_simulated: bool = False) -> list[TimedReview]:
    """The reviewed versions that carry a measured lead time and an edit diff (a review of a prediction)."""
    out = []
    for version in versions:
        if version.source is not Source.REVIEWED:
            continue
        meta = ReviewMeta.from_dict(version.meta)
        if meta.lead_time is None or meta.operations is None or (meta.simulated and not include_simulated):
            continue
        edits = Counter(op.kind for op in meta.operations)
        out.append(TimedReview(version.image_path, meta.lead_time, edits, meta.simulated))
    return out


@dataclass(frozen=True)
class GroupTime:
    group: str
    photos: int
    mean_seconds: float


def measured_by_group(reviews: Sequence[TimedReview]) -> list[GroupTime]:
    """Measured seconds per photo by what the reviewer did (verified only / changed boxes / drew a box)."""
    groups: dict[str, list[float]] = {}
    for review in reviews:
        groups.setdefault(review.group, []).append(review.seconds)
    return [GroupTime(g, len(s), float(np.mean(s))) for g, s in sorted(groups.items())]


@dataclass(frozen=True)
class ActionTime:
    """One fitted per-action time beside the effort model's constant."""

    action: str  # "look" or an EditKind's reviewer word (verify, adjust, relabel, delete, draw)
    seconds: float
    interval: tuple[float, float] | None
    modelled: str  # the effort model's constant, as text ("2", "7-35 by size")


@dataclass(frozen=True)
class EffortFit:
    reviews: int
    actions: tuple[ActionTime, ...]
    median_abs_error_s: float  # of the fitted seconds against the measured, per review

    def lines(self) -> list[str]:
        """The fit as plain lines for `review status --effort`."""
        rows = [
            f"  {a.action:>8}: {a.seconds:6.1f} s"
            + (f" [{a.interval[0]:.1f}-{a.interval[1]:.1f}]" if a.interval else "")
            + f"   (model: {a.modelled} s)"
            for a in self.actions
        ]
        return [
            f"per-action seconds fitted to {self.reviews} measured reviews (non-negative least squares; "
            f"{INTERVAL_LEVEL:.0%} bootstrap intervals over reviews; median error {self.median_abs_error_s:.1f} s "
            "per review):",
            *rows,
        ]


def _design(reviews: Sequence[TimedReview]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1 + kinds) [1, count of each EditKind] and (N,) seconds."""
    x = np.array([[1.0, *(float(r.edits.get(k, 0)) for k in EditKind)] for r in reviews])
    return x, np.array([r.seconds for r in reviews], dtype=float)


def _modelled(kind: EditKind) -> str:
    return f"{DRAW_MIN_S:g}-{DRAW_MAX_S:g} by size" if kind is EditKind.ADDED else f"{EDIT_SECONDS[kind]:g}"


def fit_effort(
    reviews: Sequence[TimedReview], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> EffortFit | None:
    """Fit look + per-edit-kind seconds to the measured reviews; None with too few reviews to fit."""
    terms = 1 + len(EditKind)
    if len(reviews) < MIN_REVIEWS_PER_TERM * terms:
        return None
    x, y = _design(reviews)
    fitted, _ = nnls(x, y)
    rng = np.random.default_rng(seed)
    draws = np.array([nnls(x[idx], y[idx])[0] for idx in rng.integers(0, len(y), size=(resamples, len(y)))])
    names = [LOOK, *(k.action for k in EditKind)]
    modelled = [f"{LOOK_S:g}", *(_modelled(k) for k in EditKind)]
    actions = tuple(
        ActionTime(names[i], float(fitted[i]), percentile_interval(draws[:, i], INTERVAL_LEVEL), modelled[i])
        for i in range(terms)
    )
    return EffortFit(len(reviews), actions, float(np.median(np.abs(x @ fitted - y))))


MAX_BOX_STRATUM = 5  # photos with this many final boxes or more are compared as one stratum


@dataclass(frozen=True)
class ArmComparison:
    """The effort study: measured seconds per photo reviewing predictions vs drawing from scratch (the
    control arm), on comparable photos: strata of (round, final box count), the control arm's mean in each
    stratum weighted by the reviewed arm's photos there. ratio < 1: the model saved time."""

    reviewed_photos: int  # in strata both arms reached
    control_photos: int
    reviewed_seconds: float | None  # per photo
    control_seconds: float | None  # per photo, standardised to the reviewed arm's mix of strata
    ratio: float | None
    interval: tuple[float, float] | None

    def line(self) -> str:
        if self.ratio is None:
            return "effort study (push --control): none (no stratum has photos of both arms yet)"
        interval = f" [{self.interval[0]:.2f}-{self.interval[1]:.2f}]" if self.interval else ""
        return (
            f"effort study, same round and box count: reviewing predictions {self.reviewed_seconds:.1f} s per photo "
            f"({self.reviewed_photos} photos) vs drawing from scratch {self.control_seconds:.1f} s "
            f"({self.control_photos} photos): ratio {self.ratio:.2f}{interval}"
        )


def _stratum(version: LabelVersion) -> tuple[int, int]:
    return (version.round if version.round is not None else -1, min(len(version.boxes), MAX_BOX_STRATUM))


def _arm_seconds(versions: Iterable[LabelVersion], include_simulated: bool) -> tuple[dict, dict]:
    """stratum -> measured seconds of each arm's photos."""
    arms: tuple[dict[tuple[int, int], list[float]], dict[tuple[int, int], list[float]]] = ({}, {})
    for version in versions:
        meta = ReviewMeta.from_dict(version.meta)
        if version.source is not Source.REVIEWED or meta.lead_time is None or version.excluded:
            continue
        if meta.simulated and not include_simulated:
            continue
        arm = 1 if meta.arm == "control" else 0 if meta.operations is not None else None
        if arm is not None:
            arms[arm].setdefault(_stratum(version), []).append(meta.lead_time)
    return arms


def _standardised(reviewed: dict, control: dict, strata: Sequence, pick: Any) -> tuple[float, float]:
    """(reviewed s per photo, control s per photo weighted by the reviewed arm's photos per stratum)."""
    weights = np.array([len(reviewed[s]) for s in strata], dtype=float)
    r = np.array([np.mean(pick(reviewed[s])) for s in strata])
    c = np.array([np.mean(pick(control[s])) for s in strata])
    return float(weights @ r / weights.sum()), float(weights @ c / weights.sum())


def compare_arms(
    versions: Iterable[LabelVersion],
    *,
    include_simulated: bool = False,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> ArmComparison:
    """The effort study's figures, with a percentile bootstrap interval of the ratio (photos resampled
    within each arm and stratum)."""
    reviewed, control = _arm_seconds(versions, include_simulated)
    strata = sorted(set(reviewed) & set(control))
    if not strata:
        return ArmComparison(0, 0, None, None, None, None)
    r, c = _standardised(reviewed, control, strata, lambda xs: xs)
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(resamples):
        rr, cc = _standardised(reviewed, control, strata, lambda xs: rng.choice(xs, size=len(xs)))
        ratios.append(rr / cc if cc else np.nan)
    return ArmComparison(
        reviewed_photos=sum(len(reviewed[s]) for s in strata),
        control_photos=sum(len(control[s]) for s in strata),
        reviewed_seconds=r,
        control_seconds=c,
        ratio=r / c if c else None,
        interval=percentile_interval(np.array(ratios), INTERVAL_LEVEL),
    )


@dataclass(frozen=True)
class ArmAgreement:
    """With double review on: how close each arm's single reviews came to the settled (merged or adjudicated)
    label, box F1 over photos. Pre-annotations that pull reviewers toward the model's mistakes show as a
    reviewed arm further from the settled label than the control arm (drawn from scratch)."""

    reviewed: BoxF1
    control: BoxF1

    def line(self) -> str:
        return (
            "each review against the settled double-review label: reviewing predictions "
            f"{self.reviewed.describe()}; drawing from scratch (control arm) {self.control.describe()}"
        )


def arm_agreement(ws: Workspace) -> ArmAgreement:
    """Box F1 (IoU 0.5, same class) of every single review of a settled double review against the settled label,
    by the arm the review was made in."""
    arms: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
    for version in ws.store.labels.current_labels().values():
        settled = ReviewMeta.from_dict(version.meta).settled if version.source is Source.REVIEWED else None
        for review_id in settled.reviews if settled else ():
            review = ws.store.labels.version(review_id)
            if review is None or review.excluded:
                continue
            matched = len(match_boxes(list(review.boxes), list(version.boxes), MATCH_IOU))
            counts = (matched, len(review.boxes) - matched, len(version.boxes) - matched)
            arms[ReviewMeta.from_dict(review.meta).arm == "control"].append(counts)
    return ArmAgreement(box_f1(arms[0]), box_f1(arms[1]))


def reviewer_disagreement(ws: Workspace) -> tuple[int, int]:
    """(photos whose two reviews differ at the audit's rule, double-reviewed photos): the human baseline the
    acceptance audit's wrong share is read against (two dermatologists, same rule: one to one, same class,
    IoU >= 0.5)."""
    from bootstrap.acceptance import check_photo
    from review_queue.adjudication import double_reviews

    pairs = [r for r in double_reviews(ws) if not (r.a.excluded or r.b.excluded)]
    return sum(check_photo(r.photo, r.a.boxes, r.b.boxes).wrong for r in pairs), len(pairs)
