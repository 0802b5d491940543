"""One stopping rule for every detector family: patience on the validation score, a wall-clock budget, an epochs
ceiling. Both training loops (Ultralytics through an epoch-end callback, torchvision's own loop) feed it each epoch's
validation mAP; it says when to stop and why, fits the schedule's length to the budget, and records the curve.

The rule, as Ultralytics' `EarlyStopping` words it (so its own stopper and this one agree on a YOLO run):
- the score is validation mAP50-95 (Ultralytics 8.4's fitness, which also picks the weights it keeps);
- an epoch improves when its score beats the best so far, or while the best is still 0 (a run that has not started to
  learn is not stopped for patience: it runs on until the budget says so, and the report calls it a non-learner);
- patience P: stop once P epochs have passed since the best epoch.
The budget: after the first epoch the run's length (its horizon) is fitted to the budget from that epoch's time,
start-up included (so it errs short), capped at the ceiling; the learning-rate schedule spans the horizon, so each
family finishes its own schedule inside the budget. A run also stops when its next epoch would end past the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class StopReason(StrEnum):
    """Why a training run ended."""

    PATIENCE = "patience"  # `patience` epochs without a better validation score
    BUDGET = "budget"  # the wall-clock budget: its fitted horizon reached, or the next epoch would overrun it
    EPOCHS = "epochs"  # the epochs ceiling
    FRAMEWORK = "framework"  # the framework stopped on its own before this rule did (e.g. a NaN it gave up on)


@dataclass(frozen=True)
class StopRecord:
    """What a run recorded about its length: the rule it ran under, why it ended, and its validation curve."""

    reason: StopReason | None  # None: the run was not finished (it raised)
    epochs_run: int
    ceiling: int
    horizon: int  # the schedule's length in epochs: the ceiling, or less when the budget fitted it
    patience: int | None  # None: no early stopping
    budget_minutes: float | None  # None: no budget
    best_epoch: int  # 1-based; 0 when no epoch was validated
    curve_map50: tuple[float, ...]  # validation mAP50 per epoch (empty where the run did not validate each epoch)
    curve_map50_95: tuple[float, ...]
    seconds: float  # training time measured by the rule (start to the last epoch's end)

    @property
    def best_map50(self) -> float | None:
        """The best validation mAP50 over the run (None: never validated)."""
        return max(self.curve_map50) if self.curve_map50 else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason"] = None if self.reason is None else self.reason.value
        out["curve_map50"], out["curve_map50_95"] = list(self.curve_map50), list(self.curve_map50_95)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StopRecord:
        fields = {**data, "reason": None if data.get("reason") is None else StopReason(data["reason"])}
        fields["curve_map50"] = tuple(data.get("curve_map50", ()))
        fields["curve_map50_95"] = tuple(data.get("curve_map50_95", ()))
        return cls(**fields)


def fitted_horizon(ceiling: int, budget_seconds: float | None, first_epoch_seconds: float) -> int:
    """Epochs that fit the budget at the first epoch's pace, between 1 and the ceiling."""
    if budget_seconds is None or first_epoch_seconds <= 0:
        return ceiling
    return max(1, min(ceiling, math.floor(budget_seconds / first_epoch_seconds)))


class EarlyStop:
    """The rule for one run: call `epoch_done` after each epoch's validation; it returns why to stop, or None."""

    def __init__(
        self,
        *,
        ceiling: int,
        patience: int | None = None,
        budget_minutes: float | None = None,
        started: float | None = None,
    ) -> None:
        self.ceiling = max(1, int(ceiling))
        self.patience = patience if patience is None else max(1, int(patience))
        self.budget_minutes = budget_minutes
        self.started = time.perf_counter() if started is None else started
        self.horizon = self.ceiling
        self.epochs = 0
        self.best_epoch = 0
        self.best_score = 0.0
        self.improved = False  # whether the last epoch was the best so far (its weights are the ones to keep)
        self.reason: StopReason | None = None
        self.curve_map50: list[float] = []
        self.curve_map50_95: list[float] = []
        self.seconds = 0.0

    @property
    def budget_seconds(self) -> float | None:
        return None if self.budget_minutes is None else 60.0 * self.budget_minutes

    def epoch_done(self, map50: float | None, map50_95: float | None, *, now: float | None = None) -> StopReason | None:
        """Record an epoch (its validation mAPs; None where it was not validated) and say whether to stop."""
        self.epochs += 1
        self.seconds = (time.perf_counter() if now is None else now) - self.started
        if map50 is not None or map50_95 is not None:
            self.curve_map50.append(float(map50 or 0.0))
            self.curve_map50_95.append(float(map50_95 or 0.0))
        score = float(map50_95 or 0.0)
        self.improved = score > self.best_score or self.best_score == 0.0
        if self.improved:
            self.best_epoch, self.best_score = self.epochs, score
        if self.epochs == 1:
            self.horizon = fitted_horizon(self.ceiling, self.budget_seconds, self.seconds)
        self.reason = self._reason()
        return self.reason

    def _reason(self) -> StopReason | None:
        """Patience first, then the ceiling, then the budget (its fitted horizon, or an epoch that would overrun)."""
        if self.patience is not None and self.epochs - self.best_epoch >= self.patience:
            return StopReason.PATIENCE
        if self.epochs >= self.ceiling:
            return StopReason.EPOCHS
        budget = self.budget_seconds
        if budget is not None and (self.epochs >= self.horizon or self.seconds * (1 + 1 / self.epochs) > budget):
            return StopReason.BUDGET
        return None

    def record(self) -> StopRecord:
        """The run as it ended; a run that ended before the rule said so was stopped by its framework."""
        reason = self.reason if self.reason is not None or self.epochs == 0 else StopReason.FRAMEWORK
        return StopRecord(
            reason=reason,
            epochs_run=self.epochs,
            ceiling=self.ceiling,
            horizon=self.horizon,
            patience=self.patience,
            budget_minutes=self.budget_minutes,
            best_epoch=self.best_epoch,
            curve_map50=tuple(self.curve_map50),
            curve_map50_95=tuple(self.curve_map50_95),
            seconds=round(self.seconds, 2),
        )
