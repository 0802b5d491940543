"""The photo uncertainty ranks photos by how likely their pre-annotation needs a fix, and its AUROC
measures how well it does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from annotator.config import CONFIG_NAME, Config, load_config, save_config
from annotator.errors import ConfigError
from annotator.rounds import Stage, TrainedRound
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.curve import curve_table, learning_curve
from bootstrap.preannotate import preannotate
from bootstrap.rounds import predict_round
from bootstrap.uncertainty import (
    CALIBRATED_JOINT,
    FLIP_CONSISTENCY,
    HEURISTIC,
    JOINT,
    SCORE_NAMES,
    ScoreCalibration,
    auroc,
    calibrated_joint_uncertainty,
    fit_score_calibration,
    flip_uncertainty,
    joint_uncertainty,
    keep_confident,
    photo_uncertainty,
    reviewer_changed,
    score_photo,
    uncertainty_auroc,
    unmirror,
)
from review_queue.edits import EditKind, EditOp
from training.detectors.base import Detector


def threshold(_: str) -> float:
    return 0.25


# ---- joint ---------------------------------------------------------------------------------------


def test_joint_is_one_minus_the_chance_that_every_kept_box_is_a_lesion_and_no_dropped_one_is():
    sure, dropped = Box("caf", 0, 0, 10, 10, score=0.9), Box("sl", 50, 50, 60, 60, score=0.2)
    assert joint_uncertainty([sure], threshold) == pytest.approx(0.1)
    assert joint_uncertainty([sure, dropped], threshold) == pytest.approx(1 - 0.9 * 0.8)
    assert joint_uncertainty([Box("mel", 0, 0, 10, 10, score=0.05)], threshold) == 1.0  # nothing kept
    assert joint_uncertainty([], threshold) == 1.0


def test_joint_counts_boxes_where_a_maximum_does_not():
    """Five boxes at 0.8 are less likely all right than one: the heuristic scores them alike."""
    one = [Box("fre", 0, 0, 10, 10, score=0.8)]
    five = [Box("fre", 20 * i, 0, 20 * i + 10, 10, score=0.8) for i in range(5)]
    assert photo_uncertainty(one, threshold) == pytest.approx(photo_uncertainty(five, threshold))
    assert joint_uncertainty(five, threshold) == pytest.approx(1 - 0.8**5)
    assert joint_uncertainty(five, threshold) > joint_uncertainty(one, threshold)


def test_joint_uses_each_class_threshold_to_tell_kept_from_dropped():
    per_class = {"mel": 0.5, "sl": 0.1}.__getitem__
    boxes = [Box("mel", 0, 0, 10, 10, score=0.4), Box("sl", 20, 20, 30, 30, score=0.4)]  # mel dropped, sl kept
    assert joint_uncertainty(boxes, per_class) == pytest.approx(1 - 0.6 * 0.4)


# ---- heuristic ---------------------------------------------------------------------------------


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


# ---- flip consistency --------------------------------------------------------------------------


def test_unmirror_maps_a_box_found_on_the_mirrored_array_back():
    found_on_mirror = Box("sl", 70, 5, 90, 25, score=0.8)  # on a 100 px wide array
    assert unmirror([found_on_mirror], 100, 50) == [Box("sl", 10, 5, 30, 25, score=0.8)]


def test_a_box_both_views_find_with_full_confidence_gives_no_uncertainty():
    box = Box("caf", 10, 10, 50, 50, score=1.0)
    assert flip_uncertainty([box], [box], threshold) == pytest.approx(0.0)


def test_agreement_is_the_overlap_times_the_lower_score():
    photo = Box("caf", 0, 0, 100, 100, score=0.9)
    mirror = Box("caf", 0, 0, 100, 50, score=0.6)  # IoU 0.5, kept in both views
    assert flip_uncertainty([photo], [mirror], threshold) == pytest.approx(1 - 0.5 * 0.6)


def test_a_box_the_mirrored_view_does_not_find_is_disagreement():
    lesion = Box("caf", 0, 0, 10, 10, score=0.9)
    other = Box("sl", 50, 50, 60, 60, score=0.9)
    assert flip_uncertainty([lesion, other], [lesion, other], threshold) == pytest.approx(1 - 0.9)
    # agreements: caf 0.9 and sl 0 (photo's boxes), caf 0.9 (mirrored view's box)
    assert flip_uncertainty([lesion, other], [lesion], threshold) == pytest.approx(1 - (0.9 + 0 + 0.9) / 3)


def test_a_lesion_only_the_mirrored_view_keeps_raises_uncertainty():
    lesion = Box("caf", 0, 0, 10, 10, score=0.9)
    nearly_missed = Box("sl", 50, 50, 60, 60, score=0.1)
    found_on_mirror = Box("sl", 50, 50, 60, 60, score=0.8)
    assert flip_uncertainty([lesion, nearly_missed], [lesion, found_on_mirror], threshold) > flip_uncertainty(
        [lesion, nearly_missed], [lesion, nearly_missed], threshold
    )


def test_a_class_the_mirrored_view_disagrees_on_is_disagreement():
    mel = Box("mel", 0, 0, 100, 100, score=0.9)
    hori = Box("hori", 0, 0, 100, 100, score=0.9)
    assert flip_uncertainty([mel], [hori], threshold) == pytest.approx(1.0)


def test_flip_consistency_with_no_confident_box_is_the_most_uncertain():
    assert flip_uncertainty([Box("mel", 0, 0, 10, 10, score=0.05)], [], threshold) == 1.0


# ---- AUROC -------------------------------------------------------------------------------------


def test_auroc_of_a_perfect_ranking_is_one():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0


def test_auroc_of_a_reversed_ranking_is_zero():
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0


def test_auroc_counts_ties_as_one_half():
    assert auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5


def test_auroc_is_none_when_only_one_class_is_present():
    assert auroc([0.1, 0.9], [True, True]) is None
    assert auroc([], []) is None


def test_accepting_every_box_is_no_change_and_any_other_edit_is():
    accepted = EditOp(EditKind.ACCEPTED, "a", "mel")
    assert not reviewer_changed([accepted, accepted])
    assert not reviewer_changed([])
    for kind in (EditKind.MOVED, EditKind.RELABELLED, EditKind.DELETED, EditKind.ADDED):
        assert reviewer_changed([accepted, EditOp(kind, "b", "mel")])


def _review(vid: int, parent: int, *ops: str, excluded: bool = False) -> LabelVersion:
    return LabelVersion(
        image_path=f"p{vid}.jpg",
        source=Source.REVIEWED,
        boxes=(),
        round=0,
        excluded=excluded,
        meta={"operations": [{"op": op} for op in ops], "prediction_version_id": parent},
        id=vid,
    )


def test_uncertainty_auroc_reads_each_review_against_its_prediction_uncertainty():
    reviews = [_review(10, 1, "accepted"), _review(11, 2, "added"), _review(12, 3, "accepted", "moved")]
    assert uncertainty_auroc(reviews, {1: 0.1, 2: 0.9, 3: 0.6}) == 1.0
    assert uncertainty_auroc(reviews, {1: 0.9, 2: 0.1, 3: 0.2}) == 0.0


def test_uncertainty_auroc_leaves_out_excluded_photos_and_unknown_predictions():
    reviews = [
        _review(10, 1, "accepted"),
        _review(11, 2, "deleted"),
        _review(12, 3, "accepted", excluded=True),
        _review(13, 4, "accepted"),
    ]
    # photo 12 (excluded, scored high) and photo 13 (no uncertainty known) would each break the perfect ranking
    assert uncertainty_auroc(reviews, {1: 0.1, 2: 0.5, 3: 0.9, 4: None}) == 1.0


def test_uncertainty_auroc_is_none_when_every_reviewed_photo_was_changed():
    reviews = [_review(10, 1, "moved"), _review(11, 2, "added")]
    assert uncertainty_auroc(reviews, {1: 0.1, 2: 0.9}) is None


# ---- the setting, through the pre-annotation engine ----------------------------------------------

SQUARE = (48, 40, 112, 104)  # a red lesion in the left half of a 320x240 photo


class RedFinder(Detector):
    """Finds the red square in whatever array it is given; `left_only`: only when it lies in the array's left
    half, so it finds the lesion on the photo but not on its mirror (a detector that is not flip-consistent)."""

    family = "test"

    def __init__(self, *, left_only: bool = False) -> None:
        super().__init__(("caf",))
        self.left_only = left_only
        self.calls = 0

    def predict_arrays(
        self, images: Sequence[np.ndarray], *, conf: float = 0.01, imgsz: int = 640, device: str | None = None
    ) -> list[list[Box]]:
        self.calls += 1
        out: list[list[Box]] = []
        for arr in images:
            ys, xs = np.nonzero((arr[..., 0] > 180) & (arr[..., 1] < 80))
            found = len(xs) and not (self.left_only and xs.mean() > arr.shape[1] / 2)
            out.append([Box("caf", xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, score=0.9)] if found else [])
        return out

    def train(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError

    def validate(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError

    def save(self, path: Path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, classes: Sequence[str], *, verbose: bool = False) -> RedFinder:
        raise NotImplementedError

    @property
    def parameter_count(self) -> int:
        return 0


# ---- calibrated joint (the default): raw boxes read through the round's val split -----------------

FRAME = (100.0, 100.0)  # the val photos' (width, height) in these tests


def _val_photos(n: int, right_score: float, wrong_score: float, label: str = "fre") -> tuple[list, list, list]:
    """n val photos, each with one lesion the model finds at `right_score` and one false box at `wrong_score`,
    both 30 px boxes on a 100 px photo."""
    truth = [[Box(label, 10, 10, 40, 40)] for _ in range(n)]
    pred = [[Box(label, 11, 11, 40, 40, score=right_score), Box(label, 60, 60, 90, 90, score=wrong_score)]] * n
    return truth, pred, [FRAME] * n


def _chance(calibration: ScoreCalibration, box: Box, *others: Box) -> float:
    return float(calibration.probabilities([box, *others], *FRAME)[0])


def test_calibration_reads_an_under_confident_models_scores_as_the_chance_a_box_is_right():
    """A small-seed model scores its right boxes 0.3 and its wrong ones 0.1: raw, a 0.3 box looks 70% wrong;
    the val split says such boxes are nearly always right."""
    calibration = fit_score_calibration(
        *_val_photos(30, right_score=0.3, wrong_score=0.1)[:2], ["fre", "sl"], [FRAME] * 30
    )
    assert calibration is not None and calibration.boxes == 60
    assert _chance(calibration, Box("fre", 11, 11, 40, 40, score=0.3)) > 0.8
    assert _chance(calibration, Box("fre", 11, 11, 40, 40, score=0.1)) < 0.2
    assert "fre" in calibration.per_class and "sl" not in calibration.per_class  # sl had no val boxes: pooled
    assert _chance(calibration, Box("sl", 11, 11, 40, 40, score=0.3)) > 0.8
    assert ScoreCalibration.from_dict(calibration.to_dict()) == calibration


def test_a_box_counts_as_right_only_where_the_reviewer_would_leave_it():
    """IoU 0.6 with the lesion finds it (mAP's 0.5) but the reviewer moves it (ACCEPT_IOU 0.7): wrong here."""
    truth = [[Box("mel", 0, 0, 100, 100)] for _ in range(20)]
    loose = [[Box("mel", 0, 0, 100, 60, score=0.9), Box("mel", 200, 200, 250, 250, score=0.2)]] * 20
    tight = [[Box("mel", 0, 0, 100, 95, score=0.9), Box("mel", 200, 200, 250, 250, score=0.2)]] * 20
    frames = [(300.0, 300.0)] * 20
    loose_fit, tight_fit = (fit_score_calibration(truth, p, ["mel"], frames) for p in (loose, tight))
    assert loose_fit is None  # no box is right as drawn: nothing to fit, the raw scores stand
    assert tight_fit is not None
    assert tight_fit.probabilities(tight[0], 300, 300)[0] > 0.8


def test_small_boxes_are_read_as_less_likely_right_when_val_shows_they_are_drawn_loose():
    """Same score, but on val the model's 6 px boxes miss IoU 0.7 and its 30 px boxes do not."""
    truth, pred = [], []
    for _ in range(30):
        truth.append([Box("fre", 10, 10, 40, 40), Box("fre", 60, 60, 66, 66)])
        pred.append([Box("fre", 11, 11, 40, 40, score=0.5), Box("fre", 62, 62, 68, 68, score=0.5)])  # small: IoU 0.29
    calibration = fit_score_calibration(truth, pred, ["fre"], [FRAME] * 30)
    assert calibration is not None
    small, large = Box("fre", 0, 0, 6, 6, score=0.5), Box("fre", 50, 50, 80, 80, score=0.5)
    assert _chance(calibration, small) < 0.3 < 0.7 < _chance(calibration, large)


def test_a_box_under_a_higher_scored_one_is_read_as_a_likely_duplicate():
    """On val the model boxes each lesion twice, the second box (lower score) a duplicate the reviewer deletes."""
    truth = [[Box("mel", 10, 10, 40, 40)] for _ in range(30)]
    pred = [[Box("mel", 10, 10, 40, 40, score=0.6), Box("mel", 12, 12, 40, 40, score=0.5)]] * 30
    # a lone box at 0.5 is right too, so the score alone cannot tell a duplicate
    truth += [[Box("mel", 50, 50, 80, 80)] for _ in range(30)]
    pred += [[Box("mel", 50, 50, 80, 80, score=0.5)]] * 30
    calibration = fit_score_calibration(truth, pred, ["mel"], [FRAME] * 60)
    assert calibration is not None
    lone, first = Box("mel", 50, 50, 80, 80, score=0.5), Box("mel", 10, 10, 40, 40, score=0.6)
    duplicate = Box("mel", 12, 12, 40, 40, score=0.5)
    assert _chance(calibration, duplicate, first) < 0.3 < 0.7 < _chance(calibration, lone)


def test_no_calibration_without_both_right_and_wrong_val_boxes():
    truth, pred, frames = _val_photos(5, right_score=0.3, wrong_score=0.1)
    assert fit_score_calibration(truth, [[b for b in p if b.score == 0.3] for p in pred], ["fre"], frames) is None
    assert fit_score_calibration([[] for _ in pred], pred, ["fre"], frames) is None
    with pytest.raises(ValueError, match="frames"):
        fit_score_calibration(truth, pred, ["fre"], frames[:-1])


def test_a_calibration_of_unknown_features_is_refused_and_the_score_only_form_is_read():
    assert ScoreCalibration.from_dict({"pooled": [1.0, 0.0]}).features == ("logit_score",)
    with pytest.raises(ValueError, match="unknown calibration features"):
        ScoreCalibration.from_dict({"features": ["colour"], "pooled": [1.0, 0.0]})


def test_calibrated_joint_ranks_by_what_the_val_split_says_not_by_raw_scores():
    """fre boxes at 0.3 proved right on val, sl boxes at 0.6 proved wrong half the time: the photo with
    the 0.3 freckle needs a reviewer less than the one with the 0.6 lentigo, whatever raw joint says."""
    fre_truth, fre_pred, _ = _val_photos(30, right_score=0.3, wrong_score=0.1, label="fre")
    sl_truth = [[Box("sl", 10, 10, 40, 40)] for _ in range(30)]
    sl_pred = [[Box("sl", 11, 11, 40, 40 if i % 2 else 25, score=0.6)] for i in range(30)]  # half are off
    calibration = fit_score_calibration(fre_truth + sl_truth, fre_pred + sl_pred, ["fre", "sl"], [FRAME] * 60)
    freckle, lentigo = [Box("fre", 10, 10, 40, 40, score=0.3)], [Box("sl", 10, 10, 40, 40, score=0.6)]
    assert joint_uncertainty(freckle, threshold) > joint_uncertainty(lentigo, threshold)
    assert calibrated_joint_uncertainty(freckle, threshold, calibration, FRAME) < calibrated_joint_uncertainty(
        lentigo, threshold, calibration, FRAME
    )
    assert calibrated_joint_uncertainty([], threshold, calibration, FRAME) == 1.0  # nothing kept
    assert calibrated_joint_uncertainty(lentigo, threshold, None) == joint_uncertainty(lentigo, threshold)


def test_every_configured_score_name_is_one_the_engine_scores():
    boxes = [Box("fre", 0, 0, 9, 9, score=0.5)]
    for name in SCORE_NAMES:
        assert 0.0 <= score_photo(name, boxes, threshold, boxes) <= 1.0
    with pytest.raises(ValueError, match="calibrated-joint"):
        score_photo("entropy", boxes, threshold)


def _red_square_photo(images: Path) -> None:
    images.mkdir(parents=True)
    arr = np.full((240, 320, 3), (200, 160, 130), np.uint8)
    x1, y1, x2, y2 = SQUARE
    arr[y1:y2, x1:x2] = (230, 20, 20)
    Image.fromarray(arr).save(images / "p.png")


def _predicted_uncertainty(
    tmp_path: Path, detector: RedFinder, score: str, calibration: ScoreCalibration | None = None
) -> float:
    images = tmp_path / "images"
    _red_square_photo(images)
    with Workspace.create(tmp_path / "ws", Config(images=images, uncertainty=score)) as ws:
        ws.store.labels.add_image(ImageRecord(path="p.png", sha256="0", width=320, height=240))
        preannotate(
            ws,
            detector,
            ws.store.labels.images(),
            round_no=0,
            model_version="round-000",
            imgsz=320,
            workers=1,
            calibration=calibration,
        )
        version = ws.store.labels.current_label("p.png")
    assert version is not None and version.uncertainty is not None
    return version.uncertainty


def test_flip_consistency_maps_the_mirrored_view_back_onto_the_photo(tmp_path):
    # the same box on both views: agreement is IoU 1 x score 0.9; a box left mirrored would not overlap
    assert _predicted_uncertainty(tmp_path, RedFinder(), FLIP_CONSISTENCY) == pytest.approx(0.1, abs=0.01)


def test_the_setting_chooses_the_score_and_flip_consistency_costs_a_second_pass(tmp_path):
    joint, heuristic, flip = RedFinder(left_only=True), RedFinder(left_only=True), RedFinder(left_only=True)
    assert Config(images=tmp_path).uncertainty == CALIBRATED_JOINT  # the default
    assert _predicted_uncertainty(tmp_path / "j", joint, JOINT) == pytest.approx(0.1)
    assert _predicted_uncertainty(tmp_path / "h", heuristic, HEURISTIC) == pytest.approx(0.1)
    assert _predicted_uncertainty(tmp_path / "f", flip, FLIP_CONSISTENCY) == 1.0  # the mirror finds nothing
    assert (joint.calls, heuristic.calls, flip.calls) == (1, 1, 2)


def test_preannotation_scores_through_the_rounds_calibration(tmp_path):
    """RedFinder's one box scores 0.9 raw; a calibration that reads 0.9 as 50% right makes the photo 0.5."""
    halfway = ScoreCalibration(pooled=(0.0, 0.0))  # every score -> 0.5
    assert _predicted_uncertainty(tmp_path / "c", RedFinder(left_only=True), CALIBRATED_JOINT, halfway) == (
        pytest.approx(0.5)
    )
    raw = _predicted_uncertainty(tmp_path / "r", RedFinder(left_only=True), CALIBRATED_JOINT)
    assert raw == pytest.approx(0.1)  # a round without a calibration: raw joint


def test_a_round_pre_annotates_with_the_calibration_it_fitted_on_val(tmp_path):
    """predict_round reads the calibration train_round recorded in the round's info."""
    _red_square_photo(tmp_path / "images")
    with Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images")) as ws:
        ws.store.labels.add_image(ImageRecord(path="p.png", sha256="0", width=320, height=240))
        halfway = ScoreCalibration(pooled=(0.0, 0.0), boxes=40)
        ws.store.rounds.upsert_round(0, 0, stage=Stage.TRAINED, trained=TrainedRound(calibration=halfway.to_dict()))
        predict_round(ws, RedFinder(), 0, imgsz=320, workers=1, backend="test")
        version = ws.store.labels.current_label("p.png")
    assert version is not None and version.uncertainty == pytest.approx(0.5)


def test_the_uncertainty_setting_is_read_from_annotator_toml(tmp_path):
    save_config(tmp_path, Config(images=tmp_path, uncertainty=FLIP_CONSISTENCY))
    assert load_config(tmp_path).uncertainty == FLIP_CONSISTENCY


def test_an_unknown_uncertainty_setting_is_refused_with_the_choices(tmp_path):
    save_config(tmp_path, Config(images=tmp_path))
    text = (tmp_path / CONFIG_NAME).read_text().replace('uncertainty = "calibrated-joint"', 'uncertainty = "entropy"')
    assert 'uncertainty = "entropy"' in text
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(ConfigError, match="flip-consistency"):
        load_config(tmp_path)


def test_the_learning_curve_reports_each_rounds_auroc_from_its_reviews(tmp_path):
    (tmp_path / "images").mkdir()
    with Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images")) as ws:
        ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE, trained=TrainedRound(test={"map50": 0.5, "images": 50}))
        box = Box("mel", 10, 10, 50, 50)
        for i, (score, op) in enumerate([(0.1, "accepted"), (0.2, "accepted"), (0.7, "moved"), (0.9, "added")]):
            ws.store.labels.add_image(ImageRecord(path=f"p{i}.jpg", sha256=str(i), width=100, height=100))
            parent = ws.store.labels.add_label_version(
                LabelVersion(f"p{i}.jpg", Source.MODEL, (box,), round=0, model_version="round-000", uncertainty=score)
            )
            ws.store.labels.add_label_version(
                LabelVersion(
                    f"p{i}.jpg",
                    Source.REVIEWED,
                    (box,),
                    round=0,
                    meta={"operations": [{"op": op}], "prediction_version_id": parent},
                )
            )
        [row] = learning_curve(ws)
    assert row.uncertainty_auroc == 1.0  # the two photos reviewers changed were the two most uncertain
    console = Console(record=True, width=160)
    console.print(curve_table([row]))
    assert "AUROC" in console.export_text()
