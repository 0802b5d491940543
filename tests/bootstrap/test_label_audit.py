"""The label audit's folds: a fold's model never trains on (nor picks its epoch with) a photo it predicts; the
predictions are cached, so a re-run costs nothing."""

from __future__ import annotations

import pytest

from bootstrap.label_audit import LabelAuditSettings, assign_folds, fold_splits, run_label_audit

PHOTOS = [f"p{i:02d}.jpg" for i in range(23)]


def test_every_photo_is_in_exactly_one_fold_and_folds_are_balanced():
    fold_of = assign_folds(PHOTOS, 3, seed=1)
    assert set(fold_of) == set(PHOTOS)
    sizes = sorted(list(fold_of.values()).count(f) for f in range(3))
    assert sizes[-1] - sizes[0] <= 1


def test_a_fold_never_trains_or_validates_on_the_photos_it_predicts():
    fold_of = assign_folds(PHOTOS, 4, seed=0)
    for fold in range(4):
        splits = fold_splits(fold_of, fold)
        predicted = {p for p, s in splits.items() if s == "test"}
        assert predicted == {p for p, f in fold_of.items() if f == fold}
        assert all(splits[p] in ("train", "val") for p in PHOTOS if p not in predicted)
        assert any(s == "val" for s in splits.values())


def test_too_few_photos_for_the_folds_is_refused():
    with pytest.raises(ValueError, match="folds"):
        assign_folds(PHOTOS[:3], 2)


@pytest.mark.slow
def test_trained_folds_predict_only_photos_they_never_saw_and_a_rerun_is_cached(make_workspace):
    ws = make_workspace(images=10, labelled=1.0, seed=3)
    settings = LabelAuditSettings(folds=2, epochs=1, imgsz=64, batch=4, device="cpu")
    audit = run_label_audit(ws, settings)
    oos = audit.out_of_sample
    assert set(oos.predictions) == set(audit.versions) and len(audit.qualities) == 10
    for fold, seen in enumerate(oos.trained_on):
        predicted = {p for p, f in oos.fold_of.items() if f == fold}
        assert seen and not predicted & set(seen), f"fold {fold} trained on a photo it predicted"
    again = run_label_audit(ws, settings)
    assert again.out_of_sample.cached and again.out_of_sample.predictions == oos.predictions
    ws.close()
