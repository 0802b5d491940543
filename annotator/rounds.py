"""The round record: how far a round of the loop got (`Stage`) and what it recorded, as the store keeps it.

A round is one row with two JSON columns, `metrics` and `info`; `RoundRecord.from_row` and `to_dict` are the
only code that knows their keys. What a stage upstream of the core owns (the detector's own figures, the test
split's `bootstrap.evaluation.SplitFigures`, the score calibration, the push result) is kept here as stored,
and the stage that owns the type converts it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Stage(str, Enum):
    """How far a round got; stored with the round so a killed run resumes at the next stage."""

    STARTED = "started"
    TRAINED = "trained"
    PREDICTED = "predicted"
    PUSHED = "pushed"
    DONE = "done"

    @property
    def order(self) -> int:
        return list(Stage).index(self)


# Which keys of each JSON column `train_round` writes (the rest belong to later stages).
_TRAINED_INFO = ("model", "epochs", "imgsz", "pretrained", "warm_start", "thresholds", "calibration")
_TRAINED_METRICS = ("val", "test", "train_seconds", "images", "thresholds", "calibration", "backend")


@dataclass(frozen=True)
class TrainedRound:
    """What training a round recorded: the recipe and where its weights came from (the row's `info`), the
    detector's own figures (its `metrics`, also rounds/NNN/metrics.json) and what was chosen on val (both).
    Keys an older row lacks read as None; `to_info`/`to_metrics` write every key, in the order training did."""

    model: str | None = None  # the spec it trained from: a YAML, an architecture name or a weights file
    epochs: int | None = None
    imgsz: int | None = None
    pretrained: dict[str, Any] | None = None  # the checkpoint transferred (training's `pretrained.to_dict()`)
    warm_start: dict[str, Any] | None = None  # the weights a warm start began from: name, path, sha256
    thresholds: dict[str, float] = field(default_factory=dict)  # class -> confidence threshold chosen on val
    threshold_choices: dict[str, dict[str, Any]] = field(default_factory=dict)  # class -> how (training.thresholds)
    calibration: dict[str, Any] | None = None  # bootstrap.uncertainty.ScoreCalibration.to_dict(); None: none fitted
    calibration_recorded: bool = True  # False: trained before rounds fitted a score calibration
    val: dict[str, Any] | None = None  # the detector's own figures on val at the end of training
    test: dict[str, Any] | None = None  # the detector's own validation on test (map50, map50_95, images, per_class)
    train_seconds: float | None = None
    images: dict[str, int] | None = None  # photos per split of the training view
    backend: str | None = None  # what predicted val, the test split and the pool (training's prediction_detector)

    @classmethod
    def from_columns(cls, info: Mapping[str, Any], metrics: Mapping[str, Any]) -> TrainedRound | None:
        """The trained part of a row's two JSON columns; None when training recorded nothing yet."""
        if not any(k in info for k in _TRAINED_INFO) and not any(k in metrics for k in _TRAINED_METRICS):
            return None
        recorded = "calibration" in info or "calibration" in metrics
        return cls(
            model=info.get("model"),
            epochs=info.get("epochs"),
            imgsz=info.get("imgsz"),
            pretrained=info.get("pretrained"),
            warm_start=info.get("warm_start"),
            thresholds=dict(info.get("thresholds") or {}),
            threshold_choices=dict(metrics.get("thresholds") or {}),
            calibration=info.get("calibration", metrics.get("calibration")),
            calibration_recorded=recorded,
            val=metrics.get("val"),
            test=metrics.get("test"),
            train_seconds=metrics.get("train_seconds"),
            images=metrics.get("images"),
            backend=metrics.get("backend"),
        )

    def _calibration(self) -> dict[str, Any]:
        return {"calibration": self.calibration} if self.calibration_recorded else {}

    def to_info(self) -> dict[str, Any]:
        """The row's `info` keys training writes."""
        return {
            "model": self.model,
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "pretrained": self.pretrained,
            "warm_start": self.warm_start,
            "thresholds": self.thresholds,
            **self._calibration(),
        }

    def to_metrics(self) -> dict[str, Any]:
        """The row's `metrics` keys training writes (rounds/NNN/metrics.json holds the same)."""
        return {
            "val": self.val,
            "test": self.test,
            "train_seconds": self.train_seconds,
            "images": self.images,
            "thresholds": self.threshold_choices,
            **self._calibration(),
            "backend": self.backend,  # what predicted val (the thresholds), the test split and the pool
        }


@dataclass(frozen=True)
class RoundRecord:
    """One attempt at one round, as stored: its stage and what each stage recorded (None: not yet).

    test_split: `bootstrap.evaluation.SplitFigures.to_dict()`, evaluated once per round.
    preannotate: `bootstrap.preannotate.PreannotateStats.to_dict()` of the last run, with `predicted` (photos
    pre-annotated by this round so far, resumed runs included) and `backend`.
    push: the review queue's push result, `to_dict()` (created, replaced, kept_annotated, ...).
    acceptance_audit: finalize's audit of this round's predictions (`bootstrap.finalize`): the plan's figures
    (population, sample size, seed, tolerance), the verdict with its bounds, the photos accepted, and the last
    reviewed batch's correction rate (information only).
    """

    round_no: int
    attempt: int
    stage: Stage
    model_path: str | None = None
    model_version: str | None = None
    trained: TrainedRound | None = None
    test_split: dict[str, Any] | None = None
    preannotate: dict[str, Any] | None = None
    push: dict[str, Any] | None = None
    acceptance_audit: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        """The per-class confidence thresholds chosen on val ({} before training chose any)."""
        return self.trained.thresholds if self.trained else {}

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The score calibration fitted on val, as stored (None: none fitted, or not trained yet)."""
        return self.trained.calibration if self.trained else None

    @property
    def predicted_photos(self) -> int | None:
        """Photos this round pre-annotated so far (None before it pre-annotated)."""
        return None if self.preannotate is None else self.preannotate.get("predicted")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RoundRecord:
        """A `rounds` table row (its JSON columns as text or already parsed); keys older rows lack read as None."""
        metrics, info = _parsed(row["metrics"]), _parsed(row["info"])
        return cls(
            round_no=int(row["round"]),
            attempt=int(row["attempt"]),
            stage=Stage(row["stage"]),
            model_path=row["model_path"],
            model_version=row["model_version"],
            trained=TrainedRound.from_columns(info, metrics),
            test_split=metrics.get("test_split"),
            preannotate=info.get("preannotate"),
            push=info.get("push"),
            acceptance_audit=info.get("acceptance_audit"),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def metrics(self) -> dict[str, Any]:
        """The row's `metrics` column."""
        return {
            **(self.trained.to_metrics() if self.trained else {}),
            **({"test_split": self.test_split} if self.test_split is not None else {}),
        }

    def info(self) -> dict[str, Any]:
        """The row's `info` column."""
        return {
            **(self.trained.to_info() if self.trained else {}),
            **({"preannotate": self.preannotate} if self.preannotate is not None else {}),
            **({"push": self.push} if self.push is not None else {}),
            **({"acceptance_audit": self.acceptance_audit} if self.acceptance_audit is not None else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The row as the store keeps it, JSON columns parsed (a row this version wrote comes back unchanged)."""
        return {
            "round": self.round_no,
            "attempt": self.attempt,
            "stage": self.stage.value,
            "model_path": self.model_path,
            "model_version": self.model_version,
            "metrics": self.metrics(),
            "info": self.info(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def stage_reached(record: RoundRecord | None, stage: Stage) -> bool:
    """True when the round exists and got at least as far as `stage`."""
    return record is not None and record.stage.order >= stage.order


def _parsed(column: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if column is None:
        return {}
    return dict(json.loads(column) if isinstance(column, str) else column)
