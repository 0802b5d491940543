"""The label audit's conversion to cleanlab's ObjectLab format and its scores read back, on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.types import Box
from training.label_quality import IssueKind, cleanlab_label, cleanlab_prediction, score_labels

CLASSES = ("sl", "fre", "mel", "hori")
TRUTH = (Box("mel", 10, 10, 50, 50), Box("sl", 100, 100, 140, 140))
CONFIDENT = tuple(Box(b.label, b.x1, b.y1, b.x2, b.y2, score=0.97) for b in TRUTH)


def test_a_label_becomes_xyxy_pixels_and_class_indices():
    label = cleanlab_label(TRUTH, CLASSES)
    assert label["bboxes"].shape == (2, 4) and label["bboxes"].dtype == np.float64
    np.testing.assert_array_equal(label["bboxes"], [[10, 10, 50, 50], [100, 100, 140, 140]])
    np.testing.assert_array_equal(label["labels"], [2, 0])


def test_an_empty_label_keeps_cleanlabs_shapes():
    label = cleanlab_label((), CLASSES)
    assert label["bboxes"].shape == (0, 4) and label["labels"].shape == (0,)


def test_a_prediction_is_one_m_by_5_array_per_class_with_scores():
    pred = cleanlab_prediction((*CONFIDENT, Box("mel", 60, 60, 70, 70, score=0.2)), CLASSES)
    assert len(pred) == len(CLASSES) and all(a.shape[1] == 5 for a in pred)
    assert [len(a) for a in pred] == [1, 0, 2, 0]
    np.testing.assert_allclose(pred[2], [[10, 10, 50, 50, 0.97], [60, 60, 70, 70, 0.2]])
    np.testing.assert_allclose(pred[0], [[100, 100, 140, 140, 0.97]])


def test_each_slip_is_found_with_its_kind_and_the_models_suggestion():
    photos = ["clean", "missing", "swapped", "loose"]
    labels = [TRUTH, TRUTH[1:], (Box("hori", 10, 10, 50, 50), TRUTH[1]), (Box("mel", 30, 30, 70, 70), TRUTH[1])]
    found = {q.photo: q for q in score_labels(photos, labels, [CONFIDENT] * 4, CLASSES)}
    assert found["clean"].score > 0.99 and not found["clean"].issues
    assert found["missing"].kinds == (IssueKind.OVERLOOKED,) and found["missing"].issues[0].box.label == "mel"
    swap = found["swapped"].issues[0]
    assert swap.kind is IssueKind.SWAPPED and swap.box.label == "hori" and swap.suggestion.label == "mel"
    loose = found["loose"].issues[0]
    assert loose.kind is IssueKind.BADLY_LOCATED and loose.suggestion.x1 == 10
    assert all(found[p].score < found["clean"].score for p in ("missing", "swapped", "loose"))
    assert found["swapped"].suggestion == CONFIDENT, "the suggestion: the model's confident boxes"


def test_photos_come_back_worst_first():
    ranked = score_labels(["clean", "missing"], [TRUTH, ()], [CONFIDENT, CONFIDENT], CLASSES)
    assert [q.photo for q in ranked] == ["missing", "clean"]


def test_the_confident_box_score_moves_the_ranking_as_it_moves_the_issues():
    """A briefly trained model's boxes score well under cleanlab's 0.95: an overlooked lesion at 0.6 counts only
    once `high_probability` is lowered, in the photo's score (the ranking) as in its issues."""
    unsure = tuple(Box(b.label, b.x1, b.y1, b.x2, b.y2, score=0.6) for b in TRUTH)
    photos, labels, preds = ["clean", "missing"], [TRUTH, TRUTH[1:]], [unsure, unsure]
    default = {q.photo: q for q in score_labels(photos, labels, preds, CLASSES)}
    lowered = {q.photo: q for q in score_labels(photos, labels, preds, CLASSES, high_probability=0.5)}
    assert IssueKind.OVERLOOKED not in default["missing"].kinds
    assert IssueKind.OVERLOOKED in lowered["missing"].kinds
    assert lowered["missing"].score < default["missing"].score
    assert lowered["clean"].score == pytest.approx(default["clean"].score, abs=1e-6)
    at_default = {q.photo: q.score for q in score_labels(photos, labels, preds, CLASSES, high_probability=0.95)}
    assert at_default == pytest.approx({p: q.score for p, q in default.items()}, abs=1e-6), "0.95 is cleanlab's own"
