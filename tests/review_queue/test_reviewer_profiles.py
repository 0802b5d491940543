"""The simulated reviewer's profiles (review_queue.reviewer): the careful one is today's oracle, draw for draw;
the realistic one's observed rates, over many seeded photos, are its parameters within sampling error.
Pure: no Label Studio, no photos but one drawn in tmp_path."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from annotator.boxes import iou
from annotator.errors import ConfigError
from annotator.types import Box
from review_queue.constants import ACCEPT_IOU
from review_queue.edits import EditKind
from review_queue.reviewer import (
    CAREFUL,
    PROFILES,
    REALISTIC,
    SYNTHETIC_CLASS_MIX,
    ReviewerProfile,
    class_accuracy,
    draw_from_scratch,
    lesion_contrast,
    photo_contrasts,
    plan_review,
    profile_named,
)
from tests.review_queue.legacy_review import legacy_plan_review

SIZE = 1000  # photo side, px: a 10-px lesion is side share 0.01, a 100-px one 0.1
CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")
N = 4000  # draws per measured rate: a 4-sigma band is about +-0.02 at p = 0.5, +-0.008 at p = 0.015


def assert_rate(hits: int, n: int, p: float) -> None:
    """hits/n is p within 4 binomial standard errors (and one count): a seeded test that cannot flake."""
    band = 4 * math.sqrt(p * (1 - p) / n) + 1 / n
    assert abs(hits / n - p) <= band, f"observed {hits}/{n} = {hits / n:.4f}, parameter {p} (band +-{band:.4f})"


def lesion(label: str, side: float, x: float = 300.0, y: float = 300.0) -> Box:
    return Box(label, x, y, x + side, y + side)


def review(predicted: list[Box], truth: list[Box], seed: int, profile: ReviewerProfile = REALISTIC, **kw):
    regions, actions = plan_review(
        [(f"p{i}", b) for i, b in enumerate(predicted)],
        truth,
        width=SIZE,
        height=SIZE,
        rng=random.Random(seed),
        profile=profile,
        **kw,
    )
    return dict(regions), actions


# ---- careful: today's oracle ---------------------------------------------------------------------------


def _random_photo(rng: random.Random) -> tuple[list[tuple[str, Box]], list[Box], int, int]:
    """A photo with 0-5 lesions and predictions as a middling model makes them: exact, nudged, shifted,
    wrong class, a false positive, a lesion left out."""
    width, height = rng.choice([(640, 480), (320, 240), (1000, 750)])
    truth = []
    for _ in range(rng.randint(0, 5)):
        w, h = rng.uniform(5, 200), rng.uniform(5, 200)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        truth.append(Box(rng.choice(CLASSES), x, y, x + w, y + h))
    predicted = []
    for t in truth:
        kind = rng.random()
        if kind < 0.15:
            continue  # missed by the model
        label = rng.choice(CLASSES) if kind > 0.8 else t.label
        shift = 0.0 if kind < 0.35 else rng.uniform(-0.3, 0.3)
        dx, dy = shift * t.width, shift * t.height
        predicted.append(Box(label, t.x1 + dx, t.y1 + dy, t.x2 + dx, t.y2 + dy, score=0.5))
    if rng.random() < 0.4:
        predicted.append(Box(rng.choice(CLASSES), 10, 10, 40, 40, score=0.3))  # on no lesion (mostly)
    rng.shuffle(predicted)
    return [(f"r{i}", b) for i, b in enumerate(predicted)], truth, width, height


@pytest.mark.parametrize("noise", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("accept_iou", [ACCEPT_IOU, None])
def test_the_careful_profile_reproduces_todays_reviewer_draw_for_draw(noise, accept_iou):
    photos = random.Random(f"{noise}-{accept_iou}")
    for seed in range(300):
        predicted, truth, width, height = _random_photo(photos)
        ours, theirs = random.Random(seed), random.Random(seed)
        kw = {"width": width, "height": height, "noise": noise, "accept_iou": accept_iou}
        assert plan_review(predicted, truth, rng=ours, profile=CAREFUL, **kw) == legacy_plan_review(
            predicted, truth, rng=theirs, **kw
        )
        assert ours.getstate() == theirs.getstate(), "the careful reviewer draws exactly what today's did"


def test_the_careful_reviewer_boxes_a_photo_blind_exactly_as_the_truth():
    truth = [lesion("mel", 120), lesion("fre", 8, 600, 600), lesion("hori", 40, 50, 700)]
    assert draw_from_scratch(truth, CAREFUL, random.Random(0), width=SIZE, height=SIZE) == tuple(truth)


def test_profiles_are_registered_by_name_and_an_unknown_name_lists_the_known_ones():
    assert set(PROFILES) == {"careful", "realistic"}
    assert profile_named("realistic") is REALISTIC
    with pytest.raises(ConfigError, match="unknown reviewer profile 'sloppy'; known: careful, realistic"):
        profile_named("sloppy")


@pytest.mark.parametrize(
    "change",
    [
        {"keep_false_positive": 1.5},
        {"box_iou_median": 1.0},
        {"miss_by_size": ((0.05, 0.1), (0.02, 0.2), (math.inf, 0.0))},
        {"miss_by_size": ((0.05, 0.1),)},
        {"omission_factor": 0.5},
        {"confusions": (("mel", "hori", 0.7), ("mel", "ota", 0.4))},
    ],
)
def test_a_profile_with_an_impossible_parameter_is_refused(change):
    with pytest.raises(ValueError, match="profile 'realistic'"):
        replace(REALISTIC, **change)


# ---- realistic: misses, confusions, edges ----------------------------------------------------------------


@pytest.mark.parametrize("side, bin_index", [(10, 0), (30, 1), (100, 2)])
def test_blind_misses_follow_the_lesion_size(side, bin_index):
    chance = REALISTIC.miss_by_size[bin_index][1]
    missed = sum(
        not draw_from_scratch([lesion("caf", side)], REALISTIC, random.Random(s), width=SIZE, height=SIZE)
        for s in range(N)
    )
    assert_rate(missed, N, chance)


def test_faint_lesions_are_missed_more_often():
    chance = REALISTIC.miss_by_size[1][1] * REALISTIC.faint_miss_factor
    faint = [REALISTIC.faint_contrast / 2]
    missed = sum(
        not draw_from_scratch([lesion("caf", 30)], REALISTIC, random.Random(s), width=SIZE, height=SIZE, contrast=faint)
        for s in range(N)
    )
    assert_rate(missed, N, chance)


def test_reviewing_predictions_overlooks_the_lesions_the_model_left_out_more_often_than_boxing_blind():
    chance = REALISTIC.miss_by_size[0][1] * REALISTIC.omission_factor
    missed = sum(not review([], [lesion("caf", 10)], seed)[0] for seed in range(N))
    assert_rate(missed, N, chance)


@pytest.mark.parametrize("true, read", [("mel", "hori"), ("hori", "mel"), ("sl", "fre"), ("fre", "sl")])
def test_the_confusable_pairs_are_read_as_each_other_at_their_rates(true, read):
    chance = next(p for t, r, p in REALISTIC.confusions if (t, r) == (true, read))
    drawn = [
        draw_from_scratch([lesion(true, 100)], REALISTIC, random.Random(s), width=SIZE, height=SIZE) for s in range(N)
    ]
    labels = [boxes[0].label for boxes in drawn if boxes]
    assert set(labels) == {true, read}
    assert_rate(labels.count(read), len(labels), chance)


def test_cafe_au_lait_and_ota_are_never_confused():
    for label in ("caf", "ota"):
        for s in range(500):
            drawn = draw_from_scratch([lesion(label, 100)], REALISTIC, random.Random(s), width=SIZE, height=SIZE)
            assert all(b.label == label for b in drawn)


def test_the_confusions_give_about_the_study_readers_accuracy_on_the_synthetic_class_mix():
    assert class_accuracy(REALISTIC, SYNTHETIC_CLASS_MIX) == pytest.approx(0.949, abs=0.01)
    assert class_accuracy(CAREFUL, SYNTHETIC_CLASS_MIX) == 1.0


def test_the_reviewers_own_boxes_meet_the_truth_at_the_inter_rater_median_iou():
    rng = random.Random(7)
    ious = []
    for s in range(N):
        side_x, side_y = rng.uniform(20, 300), rng.uniform(20, 300)
        truth = Box("caf", 200, 200, 200 + side_x, 200 + side_y)
        drawn = draw_from_scratch([truth], REALISTIC, random.Random(s), width=SIZE, height=SIZE)
        ious += [iou(b, truth) for b in drawn]
    assert statistics.median(ious) == pytest.approx(REALISTIC.box_iou_median, abs=0.01)
    assert min(ious) < ACCEPT_IOU < REALISTIC.box_iou_median < max(ious) < 1.0  # a spread, not one offset


def test_a_moved_box_is_redrawn_with_the_reviewers_own_edges():
    truth = [lesion("caf", 100)]
    far = Box("caf", 340, 300, 440, 400)  # IoU 0.43 with the lesion: no match, deleted; the lesion drawn
    loose = Box("caf", 325, 300, 425, 400)  # IoU 0.6: matched, kept or moved
    moved = []
    for s in range(500):
        regions, actions = review([loose], truth, s)
        if EditKind.MOVED in {a.kind for a in actions}:
            moved.append(iou(regions["p0"], truth[0]))
        regions, _ = review([far], truth, s)
        assert "p0" not in regions or regions["p0"] == far  # deleted, or a false positive left in
    assert len(set(moved)) == len(moved) and statistics.median(moved) == pytest.approx(0.85, abs=0.03)


# ---- realistic: anchoring on the predictions --------------------------------------------------------------


def test_a_loose_predicted_box_is_kept_as_it_is_at_the_anchoring_rate():
    truth = [lesion("caf", 100)]
    loose = Box("caf", 325, 300, 425, 400)  # IoU 0.6: on the lesion, below the accept rule
    assert 0.5 <= iou(loose, truth[0]) < ACCEPT_IOU
    kept = sum(review([loose], truth, seed)[0]["p0"] == loose for seed in range(N))
    assert_rate(kept, N, REALISTIC.keep_loose_box)


def test_a_wrong_class_is_kept_at_the_anchoring_rate():
    truth = [lesion("caf", 100)]  # never misread: every kept "ota" is anchoring
    kept = sum(review([Box("ota", 300, 300, 400, 400)], truth, seed)[0]["p0"].label == "ota" for seed in range(N))
    assert_rate(kept, N, REALISTIC.keep_wrong_class)


def test_a_wrong_class_of_a_confusable_pair_is_kept_more_often():
    truth = [lesion("mel", 100)]
    misread = next(p for t, r, p in REALISTIC.confusions if (t, r) == ("mel", "hori"))
    # kept when the reviewer reads hori too, or reads mel but anchors on the prediction
    chance = misread + (1 - misread) * REALISTIC.keep_wrong_class_confusable
    kept = sum(review([Box("hori", 300, 300, 400, 400)], truth, seed)[0]["p0"].label == "hori" for seed in range(N))
    assert_rate(kept, N, chance)


def test_a_false_positive_is_left_in_at_the_anchoring_rate():
    stray = Box("sl", 700, 700, 730, 730)
    left = 0
    for seed in range(N):
        regions, actions = review([stray], [], seed)
        left += regions.get("p0") == stray
        assert [a.kind for a in actions] == [EditKind.ACCEPTED if "p0" in regions else EditKind.DELETED]
    assert_rate(left, N, REALISTIC.keep_false_positive)


def test_boxing_blind_never_anchors():
    truth = [lesion("mel", 100), lesion("fre", 12, 600, 600), lesion("caf", 30, 100, 700)]
    anchored = replace(
        REALISTIC,
        keep_loose_box=1.0,
        keep_wrong_class=1.0,
        keep_wrong_class_confusable=1.0,
        keep_false_positive=1.0,
        omission_factor=5.0,
    )
    unanchored = replace(
        REALISTIC,
        keep_loose_box=0.0,
        keep_wrong_class=0.0,
        keep_wrong_class_confusable=0.0,
        keep_false_positive=0.0,
        omission_factor=1.0,
    )
    for s in range(500):
        a = draw_from_scratch(truth, anchored, random.Random(s), width=SIZE, height=SIZE)
        b = draw_from_scratch(truth, unanchored, random.Random(s), width=SIZE, height=SIZE)
        assert a == b


# ---- how faint a lesion is ---------------------------------------------------------------------------------


def test_a_dark_lesion_stands_out_more_than_a_faint_one_and_the_photo_is_read_in_its_own_frame(tmp_path):
    skin = np.full((400, 600, 3), 200, np.uint8)
    skin[100:140, 100:140] = 80  # a dark lentigo
    skin[250:330, 350:450] = 185  # a faint patch
    Image.fromarray(skin).save(tmp_path / "face.png")
    dark, faint, whole = Box("sl", 100, 100, 140, 140), Box("mel", 350, 250, 450, 330), Box("mel", 0, 0, 600, 400)
    contrasts = photo_contrasts(tmp_path / "face.png", [dark, faint, whole])
    assert contrasts[0] == pytest.approx(0.6, abs=0.02) and contrasts[1] == pytest.approx(0.075, abs=0.02)
    assert contrasts[1] < REALISTIC.faint_contrast < contrasts[0]
    assert contrasts[2] == 1.0  # no skin around it to compare: not faint
    assert lesion_contrast(np.full((50, 50), 120.0), Box("fre", 10, 10, 20, 20)) == 0.0


def test_the_simulate_command_refuses_an_unknown_profile_before_anything_runs(tmp_path):
    from typer.testing import CliRunner

    from annotator.cli import app
    from annotator.config import Config
    from annotator.store import Workspace

    (tmp_path / "photos").mkdir()
    Workspace.create(tmp_path / "ws", Config(images=tmp_path / "photos")).close()
    result = CliRunner().invoke(app, ["review", "simulate", "-w", str(tmp_path / "ws"), "--profile", "sloppy"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--profile'" in result.output and "careful, realistic" in result.output
    assert not (tmp_path / "ws" / "label-studio").exists()
