"""The benchmark: train several detector families on the same train/val split, score them and
human readers on the held-out test split with the study's clinical metrics, write one report.

Ground truth for the test split is the photos' current *human* labels (labelImg or reviewed in
Label Studio); unreviewed model labels never score a model. Subsets: all test photos, DSLR, phone.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from annotator.boxes import boxes_to_photo
from annotator.errors import AnnotatorError, ConfigError, WorkspaceError
from annotator.formats.coco import coco_ground_truth, coco_results, write_coco
from annotator.images import decode_displayed
from annotator.store import Workspace
from annotator.types import Box, LabelVersion, Source
from training.detectors.base import Detector
from training.metrics import (
    ClinicalEvaluation,
    ClinicalResult,
    McNemarResult,
    mcnemar_exact,
    present_classes,
    score_class_sets,
)
from training.readers import READER_READS_FILE, PhotoNames, read_device_csv, read_reader_csv

ULTRALYTICS_MODELS = ("yolov5nu", "yolov8n", "yolo11n", "rtdetr-l", "yolov4")
TORCHVISION_MODELS = ("ssdlite", "ssd300", "fasterrcnn_mobilenet", "fasterrcnn_resnet50")
ALL_MODELS = ULTRALYTICS_MODELS + TORCHVISION_MODELS
SUBSETS = ("all", "dslr", "phone")
PREDICT_CONF = 0.001  # keep low-score boxes for mAP; class presence uses the workspace thresholds
PREDICT_BATCH = 16

# (stage, model name, done, total): stage is "train" (epochs) or "predict" (photos)
BenchmarkProgress = Callable[[str, str, int, int], None]


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
            "results": {s: r.to_dict() for s, r in self.results.items()},
        }


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


def display_name(model: str) -> str:
    """'yolo11n' stays; a weights path becomes its file stem."""
    return Path(model).stem if model.endswith((".pt", ".yaml", ".yml", ".pth")) else model


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def parse_models(text: str) -> list[str]:
    """'yolo11n, ssdlite' -> ['yolo11n', 'ssdlite']; 'all' -> every family."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(ALL_MODELS)
    for name in names:
        if name not in ALL_MODELS and not name.endswith((".pt", ".yaml", ".yml")):
            raise ConfigError(
                f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}, 'all', or a local .pt/.yaml path"
            )
        if name.endswith(".pt") and not Path(name).expanduser().is_file():
            raise ConfigError(f"{name}: weights file not found; name a local file (nothing is downloaded)")
    if len(set(names)) != len(names):
        raise ConfigError("a model is named twice in --models")
    if not names:
        raise ConfigError("--models is empty; name at least one model, e.g. yolo11n,ssdlite")
    return names


def run_benchmark(
    ws: Workspace,
    models: Sequence[str],
    out_dir: Path,
    *,
    epochs: int = 30,
    imgsz: int = 640,
    batch: int = 16,
    readers: Sequence[Path] = (),
    device_csv: Path | None = None,
    device: str | None = None,
    seed: int = 0,
    workers: int = 2,
    n_resamples: int = 1000,
    progress: BenchmarkProgress | None = None,
) -> BenchmarkResult:
    """Train each model on the workspace's train/val photos, score it and every reader on the test
    photos, and write report.html, table1.md and benchmark.json into `out_dir`.

    models: names from ALL_MODELS or local .pt/.yaml paths. epochs=0 evaluates the models as
    built (useful for a local .pt) without training. A model that fails to build or train is
    reported with its error; the others still run.
    """
    from training.dataset import build_training_view
    from training.detectors import make_detector
    from training.detectors.base import TrainSettings
    from training.report import write_reports

    if epochs < 0 or imgsz < 32 or batch < 1:
        raise ConfigError("--epochs must be >= 0, --imgsz >= 32 and --batch >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = tuple(ws.config.classes)
    records = {r.path: r for r in ws.store.images()}
    labels = labels_for(ws)
    splits = {p: s for p, s in ws.store.splits().items() if p in labels}
    test_photos = [p for p in sorted(splits) if splits[p] == "test" and labels[p].source.is_human]
    split_sizes = {s: sum(1 for v in splits.values() if v == s) for s in ("train", "val", "test")}
    if not test_photos:
        raise WorkspaceError(
            "the workspace's fixed test split has no human-labelled photos; label more photos "
            "in labelImg and run `annotator init` (the test split is made from the first labels)"
        )
    if split_sizes["train"] == 0 and epochs > 0:
        raise WorkspaceError("the workspace has no training photos; label more photos or lower the test fraction")

    names = PhotoNames(test_photos)
    warnings: list[str] = []
    devices = {p: records[p].device_class.value for p in test_photos}
    if device_csv is not None:
        devices.update(read_device_csv(Path(device_csv), names))
    truth = {p: labels[p].boxes for p in test_photos}
    subsets = {"all": test_photos, **{s: [p for p in test_photos if devices[p] == s] for s in ("dslr", "phone")}}
    subsets = {s: v for s, v in subsets.items() if v}

    thresholds = {c: ws.config.threshold_for(c) for c in classes}
    view = build_training_view(ws, out_dir / "view", splits, labels)
    coco_dir = out_dir / "coco"
    coco_dir.mkdir(exist_ok=True)
    ground_truth_file = coco_dir / "ground_truth.json"
    sizes = [(records[p].width, records[p].height) for p in test_photos]
    write_coco(ground_truth_file, coco_ground_truth(test_photos, [truth[p] for p in test_photos], classes, sizes=sizes))

    arrays = _decode_test_photos(ws, test_photos, imgsz)
    sizes_by_photo = dict(zip(test_photos, sizes, strict=True))
    threads = torch_threads()
    raters: list[RaterRun] = []
    for model in models:
        name = display_name(model)
        settings = TrainSettings(epochs=epochs, imgsz=imgsz, batch=batch, device=device, seed=seed, workers=workers)
        try:
            detector = make_detector(model, classes)
            _pin_threads(threads)  # after the build: Ultralytics is imported by then
            train_result = None
            if epochs > 0:
                train_result = detector.train(
                    view,
                    settings,
                    out_dir / "runs" / _safe(name),
                    progress=None if progress is None else partial(progress, "train", name),
                )
            predictions, speed = _predict(detector, arrays, sizes_by_photo, imgsz, name, progress)
        except AnnotatorError as exc:
            raters.append(RaterRun(name, "model", error=str(exc)))
            warnings.append(f"{name}: {exc}")
            continue
        evaluation = ClinicalEvaluation(classes, thresholds=thresholds)
        for p in test_photos:
            evaluation.update(
                truth[p], predictions[p], p, subset=devices[p], size=(records[p].width, records[p].height)
            )
        pred_file = coco_dir / f"{_safe(name)}.predictions.json"
        write_coco(pred_file, coco_results([predictions[p] for p in test_photos], classes))
        results = {
            s: evaluation.compute(None if s == "all" else s, n_resamples=n_resamples, seed=seed) for s in subsets
        }
        raters.append(
            RaterRun(
                name,
                "model",
                results,
                family=detector.family,
                parameters=detector.parameter_count,
                train_seconds=None if train_result is None else train_result.train_seconds,
                epochs=None if train_result is None else train_result.epochs_run,
                inference_images_per_second=speed,
                weights=None if train_result is None else str(train_result.weights),
                predictions_file=str(pred_file),
                train_metrics={} if train_result is None else dict(train_result.metrics),
            )
        )

    true_sets = {p: present_classes(truth[p]) for p in test_photos}
    for csv_path in readers:
        answers, csv_warnings = read_reader_csv(Path(csv_path), ws.config.class_table, names)
        warnings.extend(csv_warnings)
        for reader in answers:
            results = {}
            for s, photos in subsets.items():
                rated = [p for p in photos if p in reader.answers]
                if rated:
                    results[s] = score_class_sets(
                        rated,
                        [true_sets[p] for p in rated],
                        [reader.answers[p] for p in rated],
                        classes,
                        n_resamples=n_resamples,
                        seed=seed,
                    )
            answered = len(results["all"].photos) if "all" in results else 0
            if answered < len(test_photos):
                warnings.append(
                    f"{reader.reader}: answered {answered} of {len(test_photos)} test photos; scored on those only"
                )
            raters.append(RaterRun(reader.reader, "reader", results))

    result = BenchmarkResult(
        classes=classes,
        test_photos=tuple(test_photos),
        subset_sizes={s: len(v) for s, v in subsets.items()},
        split_sizes=split_sizes,
        settings={
            "models": list(models),
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "seed": seed,
            "thresholds": thresholds,
            "bootstrap_resamples": n_resamples,
            "device": device or "auto",
            "predict_conf": PREDICT_CONF,
            "torch_threads": threads,
        },
        raters=raters,
        comparisons=compare_raters(raters),
        warnings=warnings,
        ground_truth_file=str(ground_truth_file),
    )
    return write_reports(result, out_dir)


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _pin_threads(threads: int) -> None:
    """Every model gets the same torch threads: Ultralytics' device selection would drop CPU runs
    to cpu_count - 1 threads (1 on a 2-core machine) for the rest of the process, which would make
    the speed columns depend on the order the models run in."""
    import sys

    import torch

    torch.set_num_threads(threads)
    torch_utils = sys.modules.get("ultralytics.utils.torch_utils")
    if torch_utils is not None and hasattr(torch_utils, "NUM_THREADS"):
        torch_utils.NUM_THREADS = threads  # type: ignore[attr-defined]


def _decode_test_photos(ws: Workspace, photos: Sequence[str], imgsz: int) -> dict[str, tuple[np.ndarray, float, float]]:
    """photo -> (RGB (H, W, 3) reduced so the long side is about imgsz, sx, sy back to full frame)."""
    out = {}
    for p in photos:
        try:
            rgb, sx, sy = decode_displayed(ws.image_path(p), max_side=imgsz)
        except OSError as exc:
            raise WorkspaceError(
                f"{p}: cannot decode the test photo ({exc}); restore it or run `annotator init`"
            ) from exc
        out[p] = (rgb, sx, sy)
    return out


def _predict(
    detector: Detector,
    arrays: dict[str, tuple[np.ndarray, float, float]],
    sizes: dict[str, tuple[int, int]],
    imgsz: int,
    name: str,
    progress: BenchmarkProgress | None,
) -> tuple[dict[str, tuple[Box, ...]], float | None]:
    """Predictions in each photo's full displayed frame (sizes: photo -> (width, height)), and the
    model's images/s (decode excluded, one warm-up batch excluded)."""
    photos = list(arrays)
    if photos:
        detector.predict_arrays([arrays[photos[0]][0]], conf=PREDICT_CONF, imgsz=imgsz)  # warm-up
    out: dict[str, tuple[Box, ...]] = {}
    spent = 0.0
    for start in range(0, len(photos), PREDICT_BATCH):
        chunk = photos[start : start + PREDICT_BATCH]
        began = time.perf_counter()
        boxes = detector.predict_arrays([arrays[p][0] for p in chunk], conf=PREDICT_CONF, imgsz=imgsz)
        spent += time.perf_counter() - began
        for p, found in zip(chunk, boxes, strict=True):
            _, sx, sy = arrays[p]
            out[p] = tuple(boxes_to_photo(found, sx, sy, *sizes[p]))
        if progress:
            progress("predict", name, min(start + PREDICT_BATCH, len(photos)), len(photos))
    return out, (len(photos) / spent if spent > 0 else None)


def compare_raters(raters: Sequence[RaterRun], subset: str = "all") -> list[dict[str, Any]]:
    """McNemar's exact test for every pair of raters, on the photos both rated."""
    rows = []
    scored = [r for r in raters if subset in r.results]
    for i, a in enumerate(scored):
        for b in scored[i + 1 :]:
            ra, rb = a.results[subset], b.results[subset]
            common = sorted(set(ra.photos) & set(rb.photos))
            if not common:
                continue
            ia = {p: n for n, p in enumerate(ra.photos)}
            ib = {p: n for n, p in enumerate(rb.photos)}
            test: McNemarResult = mcnemar_exact(
                [bool(ra.correct[ia[p]]) for p in common], [bool(rb.correct[ib[p]]) for p in common]
            )
            rows.append(
                {
                    "a": a.name,
                    "b": b.name,
                    "accuracy_a": float(np.mean([ra.correct[ia[p]] for p in common])),
                    "accuracy_b": float(np.mean([rb.correct[ib[p]] for p in common])),
                    **test.to_dict(),
                }
            )
    return rows


def default_reader_files(ws: Workspace) -> list[Path]:
    """The reader study's reads pulled from Label Studio (reports/reader-reads.csv) when present: the
    DOCTOR rows of the benchmark when no reader CSV is named."""
    reads = ws.reports_dir / READER_READS_FILE
    return [reads] if reads.is_file() else []


def labels_for(ws: Workspace) -> dict[str, LabelVersion]:
    """The labels the benchmark trains and scores on (human or accepted, not excluded)."""
    return {p: v for p, v in ws.store.current_labels().items() if not v.excluded and v.source is not Source.MODEL}
