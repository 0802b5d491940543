"""The simulated reviewer's behaviour, named once: a `ReviewerProfile` holds every parameter of a simulated
dermatologist, `PROFILES` names them (`careful`, `realistic`), and a reviewer does one of two things with a
photo: review the model's boxes (`plan_review`) or box it blind, no predictions shown (`draw_from_scratch`).

Pure given the caller's `random.Random` (`photo_contrasts` alone reads a photo). Parameters and their
sources: docs/reviewer-profiles.md. `review_queue.simulate` drives it through Label Studio.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from annotator.boxes import clip_box, iou, match_boxes
from annotator.errors import ConfigError, InputFileError
from annotator.types import Box
from review_queue.constants import (
    ACCEPT_IOU,
    CONTRAST_DARK_PERCENTILE,
    CONTRAST_MAX_SIDE,
    CONTRAST_RING,
    CONTRAST_RING_MIN_PX,
    EDGE_FIT_SAMPLES,
    MATCH_IOU,
)
from review_queue.edits import EditKind
from review_queue.effort import EDIT_SECONDS, draw_seconds

__all__ = [
    "CAREFUL",
    "PROFILES",
    "REALISTIC",
    "SYNTHETIC_CLASS_MIX",
    "ReviewAction",
    "ReviewerProfile",
    "class_accuracy",
    "draw_from_scratch",
    "edge_sd",
    "lesion_contrast",
    "photo_contrasts",
    "plan_review",
    "profile_named",
    "redraw",
]

SizeBins = tuple[tuple[float, float], ...]  # ((side share below, chance), ...), the last bound math.inf


@dataclass(frozen=True)
class ReviewerProfile:
    """Every parameter of one simulated reviewer (chances are per lesion or per predicted box, in [0, 1]).

    box_iou_median: the median IoU of the reviewer's own box of a lesion with the true box (two
      dermatologists boxing one lesion); each edge moves by a Gaussian share of the box's side (`edge_sd`).
      None: boxes at the true corners.
    miss_by_size: the chance of overlooking a lesion by its size (side share: sqrt(box area / photo area)),
      as ((upper bound, chance), ...) ascending, the last bound math.inf; () never misses.
    faint_contrast, faint_miss_factor: a lesion whose contrast (`lesion_contrast`) is below faint_contrast
      is missed faint_miss_factor times as often (unknown contrast: not faint).
    omission_factor: misses of the lesions the model did not box, when reviewing its predictions, are this
      many times as frequent as when boxing blind (automation bias: an omission error).
    confusions: (true class, read as, chance): the class the reviewer reads a lesion as, whether drawing or
      reviewing; a class not listed is always read right.
    keep_loose_box: a predicted box on the lesion (IoU >= MATCH_IOU) but below the accept rule is kept
      as it is instead of adjusted.
    keep_wrong_class_confusable / keep_wrong_class: the predicted class is kept where the reviewer read
      another, when the two classes are a confusable pair / any other pair.
    keep_false_positive: a predicted box on no lesion is left in.

    Two options of a run sit beside the profile (`plan_review`, `simulate`): `accept_iou` (a predicted box this
    close to the lesion is as good as a hand-drawn one, ACCEPT_IOU) and `noise` (the careful reviewer's
    mild slips, `--noise`), which apply to any profile.
    """

    name: str
    box_iou_median: float | None = None
    miss_by_size: SizeBins = ()
    faint_contrast: float = 0.0
    faint_miss_factor: float = 1.0
    omission_factor: float = 1.0
    confusions: tuple[tuple[str, str, float], ...] = ()
    keep_loose_box: float = 0.0
    keep_wrong_class_confusable: float = 0.0
    keep_wrong_class: float = 0.0
    keep_false_positive: float = 0.0
    _reads: dict[str, tuple[tuple[str, float], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        reads: dict[str, list[tuple[str, float]]] = {}
        for true, read, chance in self.confusions:
            reads.setdefault(true, []).append((read, chance))
        object.__setattr__(self, "_reads", {k: tuple(v) for k, v in reads.items()})

    def _check(self) -> None:
        """Every chance in [0, 1], the size bins ascending to math.inf, factors >= 1: ValueError otherwise."""
        chances = [p for _, p in self.miss_by_size] + [p for *_, p in self.confusions]
        chances += [self.keep_loose_box, self.keep_wrong_class_confusable, self.keep_wrong_class]
        chances += [self.keep_false_positive, self.faint_contrast]
        if any(not 0.0 <= p <= 1.0 for p in chances):
            raise ValueError(f"profile {self.name!r}: every chance must be between 0 and 1")
        if self.box_iou_median is not None and not 0.0 < self.box_iou_median < 1.0:
            raise ValueError(f"profile {self.name!r}: box_iou_median must be between 0 and 1 (exclusive)")
        bounds = [b for b, _ in self.miss_by_size]
        if bounds and (bounds != sorted(bounds) or bounds[-1] != math.inf):
            raise ValueError(f"profile {self.name!r}: miss_by_size bounds must ascend to math.inf")
        if self.faint_miss_factor < 1.0 or self.omission_factor < 1.0:
            raise ValueError(f"profile {self.name!r}: faint_miss_factor and omission_factor must be >= 1")
        for true in {t for t, _, _ in self.confusions}:
            if sum(p for t, _, p in self.confusions if t == true) > 1.0:
                raise ValueError(f"profile {self.name!r}: the confusions of {true!r} add up to more than 1")

    @property
    def uses_contrast(self) -> bool:
        """The reviewer's misses depend on how faint a lesion is (the photo must be read)."""
        return bool(self.miss_by_size) and self.faint_miss_factor != 1.0

    def miss_chance(self, lesion: Box, width: int, height: int, *, contrast: float | None, reviewing: bool) -> float:
        """The chance of overlooking `lesion`; reviewing: it is one the model did not box."""
        if not self.miss_by_size:
            return 0.0
        side = math.sqrt(lesion.area / float(max(1, width * height)))
        chance = next(p for bound, p in self.miss_by_size if side < bound)
        if contrast is not None and contrast < self.faint_contrast:
            chance *= self.faint_miss_factor
        if reviewing:
            chance *= self.omission_factor
        return min(1.0, chance)

    def read_class(self, label: str, rng: random.Random) -> str:
        """The class the reviewer reads a lesion of class `label` as (one draw when `label` is confusable)."""
        reads = self._reads.get(label)
        if not reads:
            return label
        u, total = rng.random(), 0.0
        for read, chance in reads:
            total += chance
            if u < total:
                return read
        return label

    def confusable(self, a: str, b: str) -> bool:
        """The two classes are a pair this reviewer confuses (either way)."""
        return any({t, r} == {a, b} and p > 0 for t, r, p in self.confusions)

    def keep_class_chance(self, predicted: str, read: str) -> float:
        """The chance of keeping the predicted class where the reviewer read `read`."""
        if predicted == read:
            return 1.0
        return self.keep_wrong_class_confusable if self.confusable(predicted, read) else self.keep_wrong_class


# Today's oracle, kept for tests: every true lesion boxed with its true class at its true corners, or a
# predicted box kept at the accept rule; no misses, no confusions, no anchoring.
CAREFUL = ReviewerProfile("careful")

# One documented dermatologist (sources and what is assumed: docs/reviewer-profiles.md).
REALISTIC = ReviewerProfile(
    "realistic",
    # Silletti et al. 2009 (dermatologists' lesion borders differ by 10-20% of the lesion's area: mask IoU
    # about 0.82-0.90), taken at its lower half for face photos, blurrier than dermoscopy; box for mask assumed.
    box_iou_median=0.85,
    miss_by_size=((0.02, 0.15), (0.05, 0.06), (math.inf, 0.015)),  # assumed
    faint_contrast=0.10,  # assumed: below it a pigmented lesion barely stands out (see lesion_contrast)
    faint_miss_factor=2.0,  # assumed
    omission_factor=1.5,  # assumed size; the effect: Parasuraman and Manzey 2010 (omission errors)
    # assumed split, calibrated so reading accuracy is about the study's 0.949 (class_accuracy)
    confusions=(("mel", "hori", 0.08), ("hori", "mel", 0.09), ("sl", "fre", 0.03), ("fre", "sl", 0.04)),
    keep_loose_box=0.5,  # assumed; direction: Beck et al. 2025, Dratsch et al. 2023
    keep_wrong_class_confusable=0.45,  # Dratsch et al. 2023: accuracy 82% -> 45% with wrong AI (1 - 45/82)
    keep_wrong_class=0.10,  # assumed
    keep_false_positive=0.10,  # assumed
)

PROFILES = MappingProxyType({p.name: p for p in (CAREFUL, REALISTIC)})

# The study's six-class mix as the default synthetic world draws it (boxes per class over 300 photos, seed 11):
# the mix `class_accuracy` checks the realistic confusions against.
SYNTHETIC_CLASS_MIX = MappingProxyType({"sl": 187, "mel": 166, "hori": 136, "fre": 130, "ota": 65, "caf": 59})


def profile_named(name: str) -> ReviewerProfile:
    """The registered profile called `name`; ConfigError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown reviewer profile {name!r}; known: {', '.join(PROFILES)}") from None


def class_accuracy(profile: ReviewerProfile, class_counts: Mapping[str, int]) -> float:
    """The share of lesions whose class the reviewer reads right, over a mix of lesions {class: count}."""
    total = sum(class_counts.values())
    wrong = sum(n * sum(p for t, _, p in profile.confusions if t == c) for c, n in class_counts.items())
    return 1.0 - wrong / total if total else 1.0


# ---- box edges: two people's boxes of one lesion -------------------------------------------------


@functools.lru_cache(maxsize=8)
def edge_sd(median_iou: float) -> float:
    """The SD of each box edge, as a share of the box's side, at which a redrawn box meets the true box
    at `median_iou` (median over EDGE_FIT_SAMPLES seeded draws, fitted by bisection; a pure function)."""
    draws = np.random.default_rng(0).standard_normal((EDGE_FIT_SAMPLES, 4))  # (N, 4) [dx1, dx2, dy1, dy2]
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _median_unit_iou(draws * mid) > median_iou else (lo, mid)
    return (lo + hi) / 2


def _median_unit_iou(shifts: np.ndarray) -> float:
    """Median IoU of the unit square with the squares its edges shifted by `shifts` (N, 4) make."""
    x1, x2, y1, y2 = shifts[:, 0], 1.0 + shifts[:, 1], shifts[:, 2], 1.0 + shifts[:, 3]
    inter = np.clip(np.minimum(x2, 1.0) - np.maximum(x1, 0.0), 0, None) * np.clip(
        np.minimum(y2, 1.0) - np.maximum(y1, 0.0), 0, None
    )
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(np.median(inter / (1.0 + area - inter)))


def redraw(lesion: Box, profile: ReviewerProfile, rng: random.Random, width: int, height: int) -> Box:
    """The reviewer's own box of `lesion` (its label kept): the true corners, each edge moved as two
    dermatologists' boxes differ (none for a profile without box_iou_median), inside the photo."""
    box = Box(lesion.label, lesion.x1, lesion.y1, lesion.x2, lesion.y2)
    if profile.box_iou_median is None:
        return box
    sd = edge_sd(profile.box_iou_median)
    dx, dy = sd * box.width, sd * box.height
    x1, x2 = sorted((box.x1 + rng.gauss(0.0, dx), box.x2 + rng.gauss(0.0, dx)))
    y1, y2 = sorted((box.y1 + rng.gauss(0.0, dy), box.y2 + rng.gauss(0.0, dy)))
    x2, y2 = max(x2, x1 + 1.0), max(y2, y1 + 1.0)  # a box, however bad the draw: at least a pixel
    return clip_box(Box(box.label, x1, y1, x2, y2), width, height)


def _chance(rng: random.Random, p: float) -> bool:
    """True with chance p; no draw at p == 0, so a profile without the behaviour leaves the stream as it was."""
    return p > 0 and rng.random() < p


def _slip(box: Box, rng: random.Random, noise: float, width: int, height: int) -> Box:
    """The careful reviewer's mild slip (`noise`): with that chance, edges off by up to 5% of the box."""
    if not noise or rng.random() >= noise:
        return box
    dx, dy = 0.05 * box.width, 0.05 * box.height
    moved = Box(
        box.label,
        box.x1 + rng.uniform(-dx, dx),
        box.y1 + rng.uniform(-dy, dy),
        box.x2 + rng.uniform(-dx, dx),
        box.y2 + rng.uniform(-dy, dy),
    )
    return clip_box(moved, width, height)


def _contrast_of(contrast: Sequence[float | None] | None, j: int) -> float | None:
    return None if contrast is None else contrast[j]


# ---- boxing a photo blind ------------------------------------------------------------------------


def draw_from_scratch(
    truth: Sequence[Box],
    profile: ReviewerProfile,
    rng: random.Random,
    *,
    width: int,
    height: int,
    contrast: Sequence[float | None] | None = None,
) -> tuple[Box, ...]:
    """What the reviewer boxes on a photo shown without predictions (the acceptance audit, the scratch
    arm): each true lesion, unless overlooked, read as some class and boxed with its own edges. No
    anchoring (nothing to anchor on); misses at the blind rate. contrast: per true box, or None."""
    drawn = []
    for j, lesion in enumerate(truth):
        miss = profile.miss_chance(lesion, width, height, contrast=_contrast_of(contrast, j), reviewing=False)
        if _chance(rng, miss):
            continue
        label = profile.read_class(lesion.label, rng)
        drawn.append(redraw(Box(label, lesion.x1, lesion.y1, lesion.x2, lesion.y2), profile, rng, width, height))
    return tuple(drawn)


# ---- reviewing the model's boxes -----------------------------------------------------------------


@dataclass(frozen=True)
class ReviewAction:
    """One thing the simulated reviewer does to a box, priced by the one time model (review_queue.effort).

    A box relabelled and moved onto its lesion is two actions (RELABELLED, then MOVED), as the
    diff's one relabelled edit that also moved is priced. `kind.action` is the reviewer's word
    (`verify`, `adjust`, ...), what the simulation reports."""

    kind: EditKind
    region: str
    seconds: float


def plan_review(
    predicted: Sequence[tuple[str, Box]],
    truth: Sequence[Box],
    *,
    width: int,
    height: int,
    rng: random.Random,
    noise: float = 0.0,
    tolerance_px: float = 0.5,
    accept_iou: float | None = ACCEPT_IOU,
    profile: ReviewerProfile = CAREFUL,
    contrast: Sequence[float | None] | None = None,
) -> tuple[list[tuple[str, Box]], list[ReviewAction]]:
    """What the reviewer submits for one photo: (regions, actions on its boxes; the look at the photo,
    LOOK_S, is no action). Pure given `rng`.

    A predicted box on a true lesion (matched at MATCH_IOU, same class first) keeps or changes its class
    (the reviewer's reading, anchored on the prediction) and is kept when as good as a hand-drawn box
    (IoU >= accept_iou; None: only within tolerance_px), else kept anyway (keep_loose_box) or moved onto
    the lesion as the reviewer boxes it; a box on no lesion is deleted or left in; a lesion no box found is
    drawn unless overlooked. Kept regions keep the prediction's region id. noise: the careful reviewer's
    slips (module docstring of review_queue.simulate). contrast: per true box (`photo_contrasts`), or None."""
    review = _Review(predicted, truth, width, height, rng, profile, noise, tolerance_px, accept_iou, contrast)
    used_p: set[int] = set()
    used_t: set[int] = set()
    for i, j in _pairs([b for _, b in predicted], truth):
        review.settle(i, j)
        used_p.add(i)
        used_t.add(j)
    for i in range(len(predicted)):
        if i not in used_p:
            review.dismiss(i)
    for j in range(len(truth)):
        if j not in used_t:
            review.find(j)
    return review.regions, review.actions


def _pairs(boxes: Sequence[Box], truth: Sequence[Box]) -> list[tuple[int, int]]:
    """(predicted, true) index pairs on the same lesion: same-class matches first, then any class."""
    pairs = [(i, j) for i, j, _ in match_boxes(list(boxes), list(truth), iou_threshold=MATCH_IOU, class_aware=True)]
    rest_p = [i for i in range(len(boxes)) if i not in {i for i, _ in pairs}]
    rest_t = [j for j in range(len(truth)) if j not in {j for _, j in pairs}]
    others = match_boxes(
        [boxes[i] for i in rest_p], [truth[j] for j in rest_t], iou_threshold=MATCH_IOU, class_aware=False
    )
    return pairs + [(rest_p[a], rest_t[b]) for a, b, _ in others]


@dataclass
class _Review:
    """One photo under review: what the reviewer has submitted so far, and its actions."""

    predicted: Sequence[tuple[str, Box]]
    truth: Sequence[Box]
    width: int
    height: int
    rng: random.Random
    profile: ReviewerProfile
    noise: float
    tolerance_px: float
    accept_iou: float | None
    contrast: Sequence[float | None] | None
    regions: list[tuple[str, Box]] = field(default_factory=list)
    actions: list[ReviewAction] = field(default_factory=list)

    def act(self, kind: EditKind, region: str) -> None:
        """Record an edit of a predicted box at its price."""
        self.actions.append(ReviewAction(kind, region, EDIT_SECONDS[kind]))

    def settle(self, i: int, j: int) -> None:
        """A predicted box on a true lesion: keep or change its class, keep or move it."""
        rid, before = self.predicted[i]
        lesion = self.truth[j]
        label = self._class_for(before.label, lesion.label)
        if label != before.label:
            self.act(EditKind.RELABELLED, rid)
        if self._moves(before, lesion):
            self.act(EditKind.MOVED, rid)
            corners = redraw(lesion, self.profile, self.rng, self.width, self.height)
        else:
            if label == before.label:
                self.act(EditKind.ACCEPTED, rid)
            corners = before
        after = Box(label, corners.x1, corners.y1, corners.x2, corners.y2)
        self.regions.append((rid, _slip(after, self.rng, self.noise, self.width, self.height)))

    def _class_for(self, predicted: str, true: str) -> str:
        """The class the reviewer leaves on the box: its own reading, or the prediction's (anchoring)."""
        read = self.profile.read_class(true, self.rng)
        if read == predicted or _chance(self.rng, self.profile.keep_class_chance(predicted, read)):
            return predicted
        return read

    def _moves(self, before: Box, lesion: Box) -> bool:
        """The reviewer adjusts the box: off the lesion by more than tolerance_px and below the accept rule,
        unless anchored on it (the pair is matched, so the box is on the lesion at IoU >= MATCH_IOU)."""
        corners = zip(
            (before.x1, before.y1, before.x2, before.y2), (lesion.x1, lesion.y1, lesion.x2, lesion.y2), strict=True
        )
        off = max(abs(a - b) for a, b in corners)
        if off <= self.tolerance_px or (self.accept_iou is not None and iou(before, lesion) >= self.accept_iou):
            return False
        return not _chance(self.rng, self.profile.keep_loose_box)

    def dismiss(self, i: int) -> None:
        """A predicted box on no lesion: deleted, or left in (a slip, or anchored on it)."""
        rid, box = self.predicted[i]
        if _chance(self.rng, self.noise / 4) or _chance(self.rng, self.profile.keep_false_positive):
            self.act(EditKind.ACCEPTED, rid)
            self.regions.append((rid, Box(box.label, box.x1, box.y1, box.x2, box.y2)))
        else:
            self.act(EditKind.DELETED, rid)

    def find(self, j: int) -> None:
        """A lesion the model did not box: drawn as the reviewer reads and boxes it, unless overlooked."""
        lesion = self.truth[j]
        contrast = _contrast_of(self.contrast, j)
        miss = self.profile.miss_chance(lesion, self.width, self.height, contrast=contrast, reviewing=True)
        if _chance(self.rng, self.noise / 4) or _chance(self.rng, miss):
            return
        label = self.profile.read_class(lesion.label, self.rng)
        rid = f"s{self.rng.getrandbits(40):010x}"
        drawn = redraw(
            Box(label, lesion.x1, lesion.y1, lesion.x2, lesion.y2), self.profile, self.rng, self.width, self.height
        )
        self.actions.append(ReviewAction(EditKind.ADDED, rid, draw_seconds(drawn, self.width, self.height)))
        self.regions.append((rid, _slip(drawn, self.rng, self.noise, self.width, self.height)))


# ---- how faint a lesion is -----------------------------------------------------------------------


def lesion_contrast(luminance: np.ndarray, box: Box) -> float:
    """How far a lesion stands out from the skin around it, in [0, 1]: (skin - lesion) / skin, where skin is
    the median luminance of a ring around the box (CONTRAST_RING of its longer side) and lesion the
    CONTRAST_DARK_PERCENTILE-th percentile inside it (a pigmented lesion is its darkest pixels; its box also
    holds skin). luminance: (H, W), in the box's pixel frame. Crude: a dark feature in the box (an eye in an
    Ota box) reads as contrast. A box with no ring around it (the whole photo) counts as not faint (1.0)."""
    h, w = luminance.shape
    x1, y1 = max(0, math.floor(box.x1)), max(0, math.floor(box.y1))
    x2, y2 = min(w, math.ceil(box.x2)), min(h, math.ceil(box.y2))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    margin = max(CONTRAST_RING_MIN_PX, round(CONTRAST_RING * max(x2 - x1, y2 - y1)))
    ox1, oy1, ox2, oy2 = max(0, x1 - margin), max(0, y1 - margin), min(w, x2 + margin), min(h, y2 + margin)
    ring = np.ones((oy2 - oy1, ox2 - ox1), dtype=bool)
    ring[y1 - oy1 : y2 - oy1, x1 - ox1 : x2 - ox1] = False
    if not ring.any():
        return 1.0
    skin = float(np.median(luminance[oy1:oy2, ox1:ox2][ring]))
    lesion = float(np.percentile(luminance[y1:y2, x1:x2], CONTRAST_DARK_PERCENTILE))
    return min(1.0, max(0.0, (skin - lesion) / max(skin, 1.0)))


def photo_contrasts(photo: Path, boxes: Sequence[Box]) -> tuple[float, ...]:
    """`lesion_contrast` of each box (displayed-photo pixels) on the photo, decoded at most
    CONTRAST_MAX_SIDE pixels on its long side (JPEG DCT scaling: an 18 MP photo in a fraction of the time)."""
    from annotator.images import decode_displayed

    try:
        pixels, sx, sy = decode_displayed(photo, max_side=CONTRAST_MAX_SIDE)
    except OSError as exc:
        raise InputFileError(str(photo), "unreadable", f"cannot read the photo to judge its lesions ({exc})") from None
    luminance = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
    return tuple(lesion_contrast(luminance, Box(b.label, b.x1 / sx, b.y1 / sy, b.x2 / sx, b.y2 / sy)) for b in boxes)
