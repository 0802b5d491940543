"""The stopping rule every family trains under: patience on val mAP50-95 as Ultralytics words it, a wall-clock budget
that fits the schedule's length after the first epoch, the epochs ceiling; and its record's round trip."""

from __future__ import annotations

import pytest

from training.detectors.stopping import EarlyStop, StopReason, StopRecord, fitted_horizon


def _run(scores: list[float], **rule) -> EarlyStop:
    """Feed val mAP50-95 scores (mAP50 = twice each) one epoch a second until the rule stops."""
    stop = EarlyStop(started=0.0, **rule)
    for epoch, score in enumerate(scores, start=1):
        if stop.epoch_done(2 * score, score, now=float(epoch)) is not None:
            break
    return stop


def test_patience_counts_epochs_since_the_best_score():
    stop = _run([0.1, 0.3, 0.2, 0.25, 0.29, 0.5], ceiling=50, patience=3)
    assert stop.reason is StopReason.PATIENCE and stop.epochs == 5 and stop.best_epoch == 2
    record = stop.record()
    assert record.curve_map50_95 == (0.1, 0.3, 0.2, 0.25, 0.29) and record.best_map50 == pytest.approx(0.6)


def test_a_run_still_at_zero_is_not_stopped_for_patience():
    """Ultralytics' rule: while the best score is 0 every epoch counts as the best, so a run that has not started to
    learn runs on to its budget or ceiling (and the report calls it a non-learner)."""
    stop = _run([0.0] * 8, ceiling=8, patience=2)
    assert stop.reason is StopReason.EPOCHS and stop.epochs == 8


def test_the_budget_fits_the_horizon_after_the_first_epoch():
    stop = EarlyStop(ceiling=100, patience=None, budget_minutes=1.0, started=0.0)
    assert stop.epoch_done(0.1, 0.05, now=12.0) is None
    assert stop.horizon == 5  # 60 s at 12 s an epoch
    for epoch in range(2, 5):
        assert stop.epoch_done(0.1, 0.05, now=12.0 * epoch) is None
    assert stop.epoch_done(0.1, 0.05, now=60.0) is StopReason.BUDGET and stop.epochs == 5


def test_an_epoch_that_would_overrun_the_budget_is_not_started():
    stop = EarlyStop(ceiling=100, budget_minutes=1.0, started=0.0)
    stop.epoch_done(0.1, 0.05, now=10.0)  # horizon 6
    assert stop.epoch_done(0.1, 0.05, now=45.0) is StopReason.BUDGET  # 45 s + 22.5 s an epoch > 60 s


def test_horizon_stays_between_one_epoch_and_the_ceiling():
    assert fitted_horizon(30, None, 5.0) == 30
    assert fitted_horizon(30, 600.0, 5.0) == 30
    assert fitted_horizon(30, 60.0, 100.0) == 1


def test_ceiling_and_an_unfinished_run():
    assert _run([0.1, 0.2, 0.3], ceiling=3).reason is StopReason.EPOCHS
    stop = EarlyStop(ceiling=10, started=0.0)
    stop.epoch_done(None, None, now=1.0)  # a run that is not validated each epoch records no curve
    record = stop.record()
    assert record.reason is StopReason.FRAMEWORK and record.curve_map50 == () and record.best_map50 is None


def test_record_round_trips_through_json_types():
    record = _run([0.1, 0.05], ceiling=5, patience=1, budget_minutes=2.0).record()
    assert StopRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["reason"] == "patience"
