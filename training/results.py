"""What a benchmark produces: one `RaterRun` per detector or human reader, gathered in a `BenchmarkResult`.

Their own module, so the orchestrator (`training.benchmark`) and the report writer (`training.report`) both import
them and neither imports the other's types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.detectors.stopping import StopRecord
from training.metrics import ClinicalResult


@dataclass(frozen=True)
class RaterRun:
    """One column group of the report: a detector or a human reader, scored per subset."""

    name: str
    kind: str  # "model" | "reader"
    results: dict[str, ClinicalResult] = field(default_factory=dict)  # subset -> scores
    family: str | None = None
    parameters: int | None = None
    train_seconds: float | None = None
    epochs: int | None = None
    inference_images_per_second: float | None = None
    weights: str | None = None
    predictions_file: str | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stopping: StopRecord | None = None  # why its training ended, and its validation curve
    applied: dict[str, Any] = field(default_factory=dict)  # the training arguments it ran with (run_args.json)
    pretrained: dict[str, Any] | None = None  # the checkpoint it started from (PretrainedWeights), None: scratch
    # under the benchmark's protocol: whether its best val mAP50 reached the learning floor (False: not ranked);
    # None: not judged (no protocol, a reader, or a model evaluated as built)
    learned: bool | None = None

    @property
    def ranked(self) -> bool:
        """Whether its scores are a result: every reader, every model not marked as not having learnt."""
        return self.learned is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "parameters": self.parameters,
            "train_seconds": self.train_seconds,
            "epochs": self.epochs,
            "inference_images_per_second": self.inference_images_per_second,
            "weights": self.weights,
            "predictions_file": self.predictions_file,
            "train_metrics": _jsonable(self.train_metrics),
            "error": self.error,
            "stopping": None if self.stopping is None else self.stopping.to_dict(),
            "applied": _jsonable(self.applied),
            "pretrained": self.pretrained,
            "learned": self.learned,
            "results": {s: r.to_dict() for s, r in self.results.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], results: dict[str, ClinicalResult]) -> RaterRun:
        """A run as `to_dict` recorded it, with `results` scored again (the record keeps no per-photo scores)."""
        stopping = data.get("stopping")
        return cls(
            data["name"],
            data["kind"],
            results,
            family=data.get("family"),
            parameters=data.get("parameters"),
            train_seconds=data.get("train_seconds"),
            epochs=data.get("epochs"),
            inference_images_per_second=data.get("inference_images_per_second"),
            weights=data.get("weights"),
            predictions_file=data.get("predictions_file"),
            train_metrics=dict(data.get("train_metrics") or {}),
            error=data.get("error"),
            stopping=None if stopping is None else StopRecord.from_dict(stopping),
            applied=dict(data.get("applied") or {}),
            pretrained=data.get("pretrained"),
            learned=data.get("learned"),
        )


@dataclass(frozen=True)
class BenchmarkResult:
    classes: tuple[str, ...]
    test_photos: tuple[str, ...]
    subset_sizes: dict[str, int]
    split_sizes: dict[str, int]
    settings: dict[str, Any]
    raters: list[RaterRun]
    comparisons: list[dict[str, Any]]  # McNemar per pair of raters on their common photos (subset "all")
    warnings: list[str]
    ground_truth_file: str
    files: dict[str, str] = field(default_factory=dict)  # report outputs: html, markdown, json

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "test_photos": list(self.test_photos),
            "subset_sizes": self.subset_sizes,
            "split_sizes": self.split_sizes,
            "settings": self.settings,
            "raters": [r.to_dict() for r in self.raters],
            "comparisons": self.comparisons,
            "warnings": self.warnings,
            "ground_truth_file": self.ground_truth_file,
            "files": self.files,
        }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v)))
