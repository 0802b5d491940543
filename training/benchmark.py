"""The benchmark: train several detector families on the same train/val split, score them and
human readers on the held-out test split with the study's clinical metrics, write one report.

Ground truth for the test split is the photos' current *human* labels (labelImg or reviewed in
Label Studio); unreviewed model labels never score a model. Subsets: all test photos, DSLR, phone.
The models it knows are the detector registry's (`training.detectors.registry`); its result types live in
`training.results`, its report in `training.report`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import AnnotatorError, ConfigError, WorkspaceError
from annotator.formats.coco import coco_ground_truth, coco_results, results_by_photo, write_coco
from annotator.images import decode_displayed
from annotator.store import Workspace
from annotator.types import LABEL_AUDIT_KEY, Box, LabelVersion, Source
from training.constants import BOOTSTRAP_RESAMPLES, EVAL_CONF, LEARNED_VAL_MAP50
from training.dataset import build_training_view
from training.detectors.base import Detector, Recipe, TrainingView, TrainResult, TrainSettings
from training.detectors.registry import model_names
from training.metrics import (
    ClinicalEvaluation,
    ClinicalResult,
    McNemarResult,
    mcnemar_exact,
    present_classes,
    score_class_sets,
)
from training.prediction import DecodedPhoto, predict_photos
from training.protocol import capped_splits, profile_named
from training.readers import READER_READS_FILE, PhotoNames, read_device_csv, read_reader_csv
from training.report import write_reports
from training.results import BenchmarkResult, RaterRun

SUBSETS = ("all", "dslr", "phone")
PREDICT_BATCH = 16
DEFAULT_MODELS = ("yolo11n", "ssdlite")  # without a profile
RUN_ARGS_FILE = "run_args.json"  # each model's recorded training arguments, in its run folder
SMOKE_RUN = (
    "no protocol: every model trained a fixed number of epochs with the tool's recipe, so these rows are a smoke "
    "run, not results; `--profile cpu-small` or `gpu-full` trains each family until it converges"
)

# (stage, model name, done, total): stage is "train" (epochs) or "predict" (photos)
BenchmarkProgress = Callable[[str, str, int, int], None]


def benchmark_models() -> tuple[str, ...]:
    """Every model name the benchmark knows, family by family: the registry's (`--models all` runs them all)."""
    return model_names()


def display_name(model: str) -> str:
    """'yolo11n' stays; a weights path becomes its file stem."""
    return Path(model).stem if model.endswith((".pt", ".yaml", ".yml", ".pth")) else model


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def parse_models(text: str) -> list[str]:
    """'yolo11n, ssdlite' -> ['yolo11n', 'ssdlite']; 'all' -> every registered model."""
    known = benchmark_models()
    names = [m.strip() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(known)
    for name in names:
        if name not in known and not name.endswith((".pt", ".yaml", ".yml")):
            raise ConfigError(
                f"unknown model {name!r}; choose from {', '.join(known)}, 'all', or a local .pt/.yaml path"
            )
        if name.endswith(".pt") and not Path(name).expanduser().is_file():
            raise ConfigError(f"{name}: weights file not found; name a local file (nothing is downloaded)")
    if len(set(names)) != len(names):
        raise ConfigError("a model is named twice in --models")
    if not names:
        raise ConfigError("--models is empty; name at least one model, e.g. yolo11n,ssdlite")
    return names


def parse_pretrained(entries: Sequence[str], models: Sequence[str]) -> dict[str, str]:
    """['yolo11n=weights/yolo11n.pt', ...] -> {model: checkpoint}, each model one of `models`, each file on disk
    (checked before any training: a missing file would otherwise surface after the models before it had trained)."""
    out: dict[str, str] = {}
    names = {display_name(m): m for m in models} | {m: m for m in models}
    for entry in entries:
        model, sep, path = entry.partition("=")
        model, path = model.strip(), path.strip()
        if not sep or not model or not path:
            raise ConfigError(f"{entry!r}: write MODEL=PATH, e.g. yolo11n=weights/yolo11n.pt")
        if model not in names:
            raise ConfigError(f"{entry!r}: {model} is not among the models of this run ({', '.join(models)})")
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"{path}: pretrained checkpoint not found; name a local file (nothing is downloaded)")
        out[names[model]] = str(Path(path).expanduser())
    return out


@dataclass(frozen=True)
class BenchmarkSettings:
    """How every model is trained and scored. A profile (`training.protocol.PROFILES`) gives the protocol's values:
    early stopping, a budget per family, each family's own recipe, the learning floor. Without one, every model trains
    a fixed number of epochs with the tool's recipe and is printed as it ends (a smoke run, not a result)."""

    epochs: int = 30  # the ceiling; 0: evaluate the models as built (useful for a local .pt)
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    seed: int = 0
    workers: int = 2
    n_resamples: int = BOOTSTRAP_RESAMPLES
    patience: int | None = None  # None: the family's recipe decides
    budget_minutes: float | None = None  # training minutes per family; None: no budget and no learning floor
    max_photos: int | None = None  # train + val photos kept (training.protocol.capped_splits); None: all
    profile: str | None = None
    recipe: Recipe = Recipe.TOOL
    pretrained: Mapping[str, str] = field(default_factory=dict)  # model name -> local checkpoint it starts from

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.imgsz < 32 or self.batch < 1:
            raise ConfigError("epochs must be >= 0, imgsz >= 32 and batch >= 1")
        if (self.patience is not None and self.patience < 1) or (self.max_photos is not None and self.max_photos < 1):
            raise ConfigError("patience and max_photos must be at least 1")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise ConfigError("the budget must be a positive number of minutes")

    @classmethod
    def for_profile(cls, profile: str | None, **given: Any) -> BenchmarkSettings:
        """The profile's values (the plain defaults without one), each replaced by a value given here (not None)."""
        base: dict[str, Any] = {}
        if profile is not None:
            p = profile_named(profile)
            base = dict(epochs=p.epochs, imgsz=p.imgsz, batch=p.batch, device=p.device, workers=p.workers)
            base |= dict(patience=p.patience, budget_minutes=p.budget_minutes, max_photos=p.max_photos)
            base |= dict(profile=p.name, recipe=Recipe.REFERENCE)
        return cls(**{**base, **{k: v for k, v in given.items() if v is not None}})

    @property
    def judged(self) -> bool:
        """Whether models are held to the learning floor: under a budget, a model that did not learn is no result."""
        return self.budget_minutes is not None

    def recorded(self) -> dict[str, Any]:
        """What the report and every run's run_args.json record of the protocol."""
        return {
            "profile": self.profile,
            "imgsz": self.imgsz,
            "epochs": self.epochs,
            "patience": self.patience,
            "budget_minutes": self.budget_minutes,
            "max_photos": self.max_photos,
            "batch": self.batch,
            "seed": self.seed,
            "recipe": self.recipe.value,
            "learned_val_map50": LEARNED_VAL_MAP50 if self.judged else None,
        }


def default_models(profile: str | None) -> list[str]:
    """The models a benchmark runs when none are named: the profile's, else the plain default pair."""
    return list(profile_named(profile).models if profile is not None else DEFAULT_MODELS)


@dataclass(frozen=True)
class HeldOut:
    """The fixed test split as the benchmark scores it: human labels, device subsets, full-frame sizes."""

    classes: tuple[str, ...]
    photos: list[str]
    truth: dict[str, tuple[Box, ...]]  # photo -> its human boxes
    devices: dict[str, str]  # photo -> "dslr" | "phone" | ...
    subsets: dict[str, list[str]]  # "all", "dslr", "phone" -> photos (empty subsets left out)
    sizes: dict[str, tuple[int, int]]  # photo -> full displayed (width, height)
    split_sizes: dict[str, int]  # train, val, test -> photos
    thresholds: dict[str, float]  # class -> the workspace's score threshold (class presence)
    names: PhotoNames  # resolves what a reader CSV calls a photo


@dataclass(frozen=True)
class _Run:
    """What every model of one benchmark shares."""

    settings: BenchmarkSettings
    test: HeldOut
    view: TrainingView
    decoded: dict[str, DecodedPhoto]  # photo -> decoded once for every model
    out_dir: Path
    threads: int
    progress: BenchmarkProgress | None


def run_benchmark(
    ws: Workspace,
    models: Sequence[str],
    out_dir: Path,
    *,
    settings: BenchmarkSettings | None = None,
    epochs: int = 30,
    imgsz: int = 640,
    batch: int = 16,
    readers: Sequence[Path] = (),
    device_csv: Path | None = None,
    device: str | None = None,
    seed: int = 0,
    workers: int = 2,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    progress: BenchmarkProgress | None = None,
) -> BenchmarkResult:
    """Train each model on the workspace's train/val photos, score it and every reader on the test
    photos, and write report.html, table1.md and benchmark.json into `out_dir`.

    models: names from `benchmark_models()` or local .pt/.yaml paths. settings: the protocol
    (`BenchmarkSettings.for_profile`); without it, one is made of epochs ... n_resamples. epochs=0 evaluates the
    models as built (useful for a local .pt) without training. A model that fails to build or train is
    reported with its error; the others still run.
    """
    settings = settings or BenchmarkSettings(epochs, imgsz, batch, device, seed, workers, n_resamples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = labels_for(ws)
    splits = {p: s for p, s in ws.store.labels.splits().items() if p in labels}
    splits = capped_splits(splits, settings.max_photos, seed=settings.seed)
    test = held_out(ws, labels, splits, settings, device_csv)
    view = build_training_view(ws, out_dir / "view", splits, labels)
    ground_truth_file = _write_ground_truth(test, out_dir / "coco")
    decoded = _decode_test_photos(ws, test, settings.imgsz)
    run = _Run(settings, test, view, decoded, out_dir, torch_threads(), progress)
    raters = [_run_model(model, run) for model in models]
    warnings = [f"{r.name}: {r.error}" for r in raters if r.error] + _protocol_warnings(raters, settings)
    warnings += _label_audit_warning(ws)
    raters += _score_readers(ws, readers, test, settings, warnings)
    result = _result(models, test, settings, raters, warnings, ground_truth_file, run.threads)
    return write_reports(result, out_dir)


def _protocol_warnings(raters: Sequence[RaterRun], settings: BenchmarkSettings) -> list[str]:
    """A run without a budget is a smoke run; a model that did not learn in its budget is named, not ranked."""
    if not settings.judged:
        return [SMOKE_RUN] if settings.epochs > 0 else []
    return [
        f"{r.name}: did not learn in the budget (best val mAP50 {_best_map50(r)} < {LEARNED_VAL_MAP50}); not ranked"
        for r in raters
        if r.learned is False
    ]


def _best_map50(run: RaterRun) -> str:
    best = run.stopping.best_map50 if run.stopping is not None else run.train_metrics.get("val_map50")
    return "n/a" if best is None else f"{best:.3f}"


def _label_audit_warning(ws: Workspace) -> list[str]:
    """Whether the test split's labels, which every score here is measured against, were audited."""
    last = json.loads(ws.store.get_meta(LABEL_AUDIT_KEY) or "{}")
    if last.get("test_audited"):
        return []
    when = f" (the last label audit, {last.get('at')}, left the test split out)" if last else ""
    return [
        "the test split's labels were not audited" + when + ": every figure is measured against them as they "
        "are; `annotator audit labels` finds the likely slips for a senior to check"
    ]


def held_out(
    ws: Workspace,
    labels: dict[str, LabelVersion],
    splits: dict[str, str],
    settings: BenchmarkSettings,
    device_csv: Path | None = None,
) -> HeldOut:
    """The human-labelled photos of the fixed test split, their subsets (EXIF's device class, or `device_csv`'s)."""
    records = {r.path: r for r in ws.store.labels.images()}
    photos = [p for p in sorted(splits) if splits[p] == "test" and labels[p].source.is_human]
    split_sizes = {s: sum(1 for v in splits.values() if v == s) for s in ("train", "val", "test")}
    if not photos:
        raise WorkspaceError(
            "the workspace's fixed test split has no human-labelled photos; label more photos "
            "in labelImg and run `annotator init` (the test split is made from the first labels)"
        )
    if split_sizes["train"] == 0 and settings.epochs > 0:
        raise WorkspaceError("the workspace has no training photos; label more photos or lower the test fraction")
    names = PhotoNames(photos)
    devices = {p: records[p].device_class.value for p in photos}
    if device_csv is not None:
        devices.update(read_device_csv(Path(device_csv), names))
    subsets = {"all": photos, **{s: [p for p in photos if devices[p] == s] for s in ("dslr", "phone")}}
    classes = tuple(ws.config.classes)
    return HeldOut(
        classes=classes,
        photos=photos,
        truth={p: labels[p].boxes for p in photos},
        devices=devices,
        subsets={s: v for s, v in subsets.items() if v},
        sizes={p: (records[p].width, records[p].height) for p in photos},
        split_sizes=split_sizes,
        thresholds={c: ws.config.threshold_for(c) for c in classes},
        names=names,
    )


def _write_ground_truth(test: HeldOut, coco_dir: Path) -> Path:
    """The test split's human boxes as one COCO ground-truth file (what the models' mAP is computed against)."""
    coco_dir.mkdir(exist_ok=True)
    path = coco_dir / "ground_truth.json"
    boxes = [test.truth[p] for p in test.photos]
    write_coco(path, coco_ground_truth(test.photos, boxes, test.classes, sizes=[test.sizes[p] for p in test.photos]))
    return path


def _decode_test_photos(ws: Workspace, test: HeldOut, imgsz: int) -> dict[str, DecodedPhoto]:
    """photo -> decoded once for every model: reduced so the long side is about imgsz, boxes back to its full frame."""
    out = {}
    for p in test.photos:
        try:
            rgb, sx, sy = decode_displayed(ws.image_path(p), max_side=imgsz)
        except OSError as exc:
            raise WorkspaceError(
                f"{p}: cannot decode the test photo ({exc}); restore it or run `annotator init`"
            ) from exc
        out[p] = DecodedPhoto(rgb, sx, sy, test.sizes[p])
    return out


def _run_model(model: str, run: _Run) -> RaterRun:
    """Build, train and predict one model, then score it; a model that fails is a run with its error."""
    name = display_name(model)
    try:
        detector = _build(model, run)
        _pin_threads(run.threads)  # after the build: Ultralytics is imported by then
        trained = _train(detector, run, name)
        predictions, speed = _predict(detector, run, name)
    except AnnotatorError as exc:
        return RaterRun(name, "model", error=str(exc))
    results, predictions_file = _score_model(predictions, run, name)
    return RaterRun(
        name,
        "model",
        results,
        family=detector.family,
        parameters=detector.parameter_count,
        train_seconds=None if trained is None else trained.train_seconds,
        epochs=None if trained is None else trained.epochs_run,
        inference_images_per_second=speed,
        weights=None if trained is None else str(trained.weights),
        predictions_file=str(predictions_file),
        train_metrics={} if trained is None else dict(trained.metrics),
        stopping=None if trained is None else trained.stopping,
        applied={} if trained is None else dict(trained.applied),
        pretrained=None if detector.pretrained is None else detector.pretrained.to_dict(),
        learned=learned(trained, run.settings),
    )


def _build(model: str, run: _Run) -> Detector:
    """The model as the benchmark trains it: from the checkpoint `--pretrained` names for it, if any."""
    from training.detectors import make_detector

    start = run.settings.pretrained.get(model)
    if start is None:
        return make_detector(model, run.test.classes)
    return make_detector(model, run.test.classes, pretrained=start)


def _train(detector: Detector, run: _Run, name: str) -> TrainResult | None:
    """Train on the view's train/val photos under the protocol, and record the run's arguments in its folder
    (None when the benchmark runs with 0 epochs)."""
    s = run.settings
    if s.epochs == 0:
        return None
    workdir = run.out_dir / "runs" / _safe(name)
    settings = TrainSettings(
        epochs=s.epochs,
        imgsz=s.imgsz,
        batch=s.batch,
        device=s.device,
        seed=s.seed,
        workers=s.workers,
        patience=s.patience,
        budget_minutes=s.budget_minutes,
        recipe=s.recipe,
    )
    trained = detector.train(
        run.view, settings, workdir, progress=None if run.progress is None else partial(run.progress, "train", name)
    )
    _write_run_args(workdir, detector, trained, s)
    return trained


def _write_run_args(workdir: Path, detector: Detector, trained: TrainResult, settings: BenchmarkSettings) -> None:
    """run_args.json: the protocol the benchmark asked for, what the family applied, and how its run ended."""
    record = {
        "protocol": settings.recorded(),
        "family": detector.family,
        "applied": trained.applied,
        "stopping": None if trained.stopping is None else trained.stopping.to_dict(),
    }
    (workdir / RUN_ARGS_FILE).write_text(json.dumps(record, indent=1, default=str))


def read_run_args(out_dir: Path, name: str) -> dict[str, Any]:
    """The recorded training arguments of one model of a benchmark written to `out_dir`."""
    return json.loads((Path(out_dir) / "runs" / _safe(name) / RUN_ARGS_FILE).read_text())


def learned(trained: TrainResult | None, settings: BenchmarkSettings) -> bool | None:
    """Whether a model trained under a budget learnt: its best val mAP50 reached LEARNED_VAL_MAP50. None where no
    floor applies (no budget, or no training)."""
    if trained is None or not settings.judged:
        return None
    best = trained.stopping.best_map50 if trained.stopping is not None else None
    if best is None:
        best = trained.metrics.get("val_map50", trained.metrics.get("metrics/mAP50(B)"))
    return best is not None and float(best) >= LEARNED_VAL_MAP50


def _predict(detector: Detector, run: _Run, name: str) -> tuple[dict[str, tuple[Box, ...]], float | None]:
    """Predictions in each test photo's full displayed frame, and the model's images/s (decode excluded, one
    warm-up photo excluded)."""
    photos = run.test.photos
    imgsz = run.settings.imgsz
    if photos:
        detector.predict_arrays([run.decoded[photos[0]].rgb], conf=EVAL_CONF, imgsz=imgsz)  # warm-up
    progress = run.progress
    found = predict_photos(
        detector,
        [run.decoded[p] for p in photos],
        conf=EVAL_CONF,
        imgsz=imgsz,
        batch=PREDICT_BATCH,
        progress=None if progress is None else lambda done: progress("predict", name, done, len(photos)),
    )
    predictions = {p: tuple(boxes) for p, boxes in zip(photos, found.boxes, strict=True)}
    return predictions, (len(photos) / found.seconds if found.seconds > 0 else None)


def _score_model(
    predictions: dict[str, tuple[Box, ...]], run: _Run, name: str
) -> tuple[dict[str, ClinicalResult], Path]:
    """A model's scores per subset, and its predictions written as a COCO results file."""
    test = run.test
    predictions_file = run.out_dir / "coco" / f"{_safe(name)}.predictions.json"
    write_coco(predictions_file, coco_results([predictions[p] for p in test.photos], test.classes))
    return _clinical_results(predictions, test, run.settings), predictions_file


def _clinical_results(
    predictions: Mapping[str, Sequence[Box]], test: HeldOut, settings: BenchmarkSettings
) -> dict[str, ClinicalResult]:
    """A model's scores per subset of the test split."""
    evaluation = ClinicalEvaluation(test.classes, thresholds=test.thresholds)
    for p in test.photos:
        evaluation.update(test.truth[p], predictions[p], p, subset=test.devices[p], size=test.sizes[p])
    return {
        subset: evaluation.compute(
            None if subset == "all" else subset, n_resamples=settings.n_resamples, seed=settings.seed
        )
        for subset in test.subsets
    }


# ---- readers beside a finished benchmark -----------------------------------------------------


def add_readers(
    ws: Workspace, out_dir: Path, readers: Sequence[Path], device_csv: Path | None = None
) -> BenchmarkResult:
    """Score `readers` beside the models of the benchmark already written to `out_dir`, without training again.

    Readers often finish after the models are trained. Each model is scored again from its recorded predictions
    on the same test split (the same scores as before: the predictions, truth and thresholds are the same), the
    readers are scored, every pair compared; the report is written again. Its training records stay as they were."""
    recorded = _recorded_benchmark(Path(out_dir))
    settings = _recorded_settings(recorded["settings"])
    labels = labels_for(ws)
    splits = {p: s for p, s in ws.store.labels.splits().items() if p in labels}
    capped = capped_splits(splits, settings.max_photos, seed=settings.seed)
    test = held_out(ws, labels, capped, settings, device_csv)
    if list(recorded["test_photos"]) != test.photos:
        raise WorkspaceError(
            f"{out_dir}: its benchmark was scored on another test split than the workspace's now; run "
            "`annotator benchmark` again to score models and readers together"
        )
    if dict(recorded["subset_sizes"]) != {k: len(v) for k, v in test.subsets.items()}:
        raise ConfigError(
            f"{out_dir}: its subsets were {recorded['subset_sizes']}; name the --device-csv the benchmark was run with"
        )
    models = [_recorded_model(r, test, settings) for r in recorded["raters"] if r["kind"] == "model"]
    warnings = [f"{r.name}: {r.error}" for r in models if r.error] + _protocol_warnings(models, settings)
    warnings += _label_audit_warning(ws)
    raters = models + _score_readers(ws, readers, test, settings, warnings)
    result = _result(
        recorded["settings"]["models"],
        test,
        settings,
        raters,
        warnings,
        Path(recorded["ground_truth_file"]),
        int(recorded["settings"].get("torch_threads", torch_threads())),
    )
    return write_reports(replace(result, settings=recorded["settings"]), Path(out_dir))


def _recorded_benchmark(out_dir: Path) -> dict[str, Any]:
    """benchmark.json of a finished benchmark (a clear error when there is none)."""
    path = out_dir / "benchmark.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(
            f"{path}: no finished benchmark to add readers to ({exc}); run `annotator benchmark`"
        ) from exc


def _recorded_settings(recorded: Mapping[str, Any]) -> BenchmarkSettings:
    """The protocol values scoring depends on (seed, resamples, photo cap, budget: the learning floor)."""
    return BenchmarkSettings(
        epochs=int(recorded["epochs"]),
        imgsz=int(recorded["imgsz"]),
        batch=int(recorded["batch"]),
        seed=int(recorded["seed"]),
        n_resamples=int(recorded["bootstrap_resamples"]),
        patience=recorded.get("patience"),
        budget_minutes=recorded.get("budget_minutes"),
        max_photos=recorded.get("max_photos"),
        profile=recorded.get("profile"),
        recipe=Recipe(recorded["recipe"]),
    )


def _recorded_model(row: dict[str, Any], test: HeldOut, settings: BenchmarkSettings) -> RaterRun:
    """A model's run as recorded, scored again from its predictions file."""
    results: dict[str, ClinicalResult] = {}
    if row.get("predictions_file"):
        path = Path(row["predictions_file"])
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"{path}: cannot read {row['name']}'s recorded predictions ({exc})") from exc
        predictions = results_by_photo(found, test.photos, test.classes, source=str(path))
        results = _clinical_results(predictions, test, settings)
    return RaterRun.from_dict(row, results)


def _score_readers(
    ws: Workspace, readers: Sequence[Path], test: HeldOut, settings: BenchmarkSettings, warnings: list[str]
) -> list[RaterRun]:
    """Every reader of every CSV, scored on the test photos they answered (what they skipped is a warning)."""
    true_sets = {p: present_classes(test.truth[p]) for p in test.photos}
    out = []
    for csv_path in readers:
        answers, csv_warnings = read_reader_csv(Path(csv_path), ws.config.class_table, test.names)
        warnings.extend(csv_warnings)
        for reader in answers:
            results = {}
            for subset, photos in test.subsets.items():
                rated = [p for p in photos if p in reader.answers]
                if rated:
                    results[subset] = score_class_sets(
                        rated,
                        [true_sets[p] for p in rated],
                        [reader.answers[p] for p in rated],
                        test.classes,
                        n_resamples=settings.n_resamples,
                        seed=settings.seed,
                    )
            answered = len(results["all"].photos) if "all" in results else 0
            if answered < len(test.photos):
                warnings.append(
                    f"{reader.reader}: answered {answered} of {len(test.photos)} test photos; scored on those only"
                )
            out.append(RaterRun(reader.reader, "reader", results))
    return out


def _result(
    models: Sequence[str],
    test: HeldOut,
    settings: BenchmarkSettings,
    raters: list[RaterRun],
    warnings: list[str],
    ground_truth_file: Path,
    threads: int,
) -> BenchmarkResult:
    """The benchmark's result, its settings recorded beside the scores."""
    recorded: dict[str, Any] = {
        "models": list(models),
        **settings.recorded(),
        "pretrained": dict(settings.pretrained),
        "thresholds": test.thresholds,
        "bootstrap_resamples": settings.n_resamples,
        "device": settings.device or "auto",
        "predict_conf": EVAL_CONF,
        "torch_threads": threads,
    }
    return BenchmarkResult(
        classes=test.classes,
        test_photos=tuple(test.photos),
        subset_sizes={s: len(v) for s, v in test.subsets.items()},
        split_sizes=test.split_sizes,
        settings=recorded,
        raters=raters,
        comparisons=compare_raters(raters),
        warnings=warnings,
        ground_truth_file=str(ground_truth_file),
    )


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


def compare_raters(raters: Sequence[RaterRun], subset: str = "all") -> list[dict[str, Any]]:
    """McNemar's exact test for every pair of ranked raters (a model that did not learn is left out), on the photos
    both rated."""
    rows = []
    scored = [r for r in raters if subset in r.results and r.ranked]
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
    return {
        p: v for p, v in ws.store.labels.current_labels().items() if not v.excluded and v.source is not Source.MODEL
    }
