"""Rounds of the loop: snapshot the labelled set, train, evaluate on the fixed test split,
re-predict what is still unreviewed. Round 0 is the bootstrap; round N >= 1 is `retrain`.

Each round writes `rounds/NNN/`: model.pt, manifest.json (which label version of which photo:
the round can be reproduced exactly), train_args.json, metrics.json, report.html. Progress
is recorded in the store stage by stage, so a killed round resumes where it stopped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.fsutil import atomic_write_text
from annotator.rounds import RoundRecord, Stage, TrainedRound, stage_reached
from annotator.store import Workspace
from annotator.types import ImageRecord, Source
from bootstrap.evaluation import record_test_split
from bootstrap.preannotate import PreannotateStats, preannotate
from bootstrap.split import EVAL_SPLIT, MIN_LABELLED, SplitCandidate, late_split, make_splits
from bootstrap.uncertainty import ScoreCalibration, fit_score_calibration
from review_queue.queue import PullResult, PushResult, ReviewQueue
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import Detector, Predictor, TrainingView, TrainResult, TrainSettings
from training.detectors.pretrained import checkpoint_file, sha256_of, verified
from training.detectors.runtime import prediction_detector
from training.thresholds import ClassThreshold, choose_thresholds, predict_split, threshold_rule

TRAINABLE_SOURCES = (Source.MANUAL, Source.REVIEWED, Source.AUTO_ACCEPTED)


def model_version_for(round_no: int, attempt: int = 0) -> str:
    return f"round-{round_no:03d}" + (f"-attempt{attempt}" if attempt else "")


@dataclass(frozen=True)
class RoundSettings:
    """How to train and predict one round. `model` None: `auto` for round 0 (from the package YAML),
    round N-1's weights for round N (warm start). `pretrained`: a local checkpoint a model built from a
    YAML or an architecture name starts from (a warm start already descends from it); relative to the workspace."""

    model: str | None = None
    epochs: int = 60
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    workers: int = 0
    verbose: bool = False
    pretrained: str | None = None
    pretrained_sha256: str | None = None  # checked before the checkpoint is used ([train] pretrained_sha256)

    @classmethod
    def from_config(cls, cfg: Config, round_no: int, **overrides: Any) -> RoundSettings:
        """The workspace's settings for this round (retrain_epochs for N >= 1); None overrides are ignored. A
        checkpoint named here instead of annotator.toml's is not held to the file's pretrained_sha256."""
        other_file = overrides.get("pretrained") not in (None, cfg.pretrained)
        base = cls(
            model=cfg.model if round_no == 0 else None,
            epochs=cfg.epochs if round_no == 0 else cfg.retrain_epochs,
            imgsz=cfg.imgsz,
            batch=cfg.batch,
            pretrained=cfg.pretrained,
            pretrained_sha256=None if other_file else cfg.pretrained_sha256,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class RoundHooks:
    """Progress callbacks for whoever draws it (the CLI's bars or log lines); all optional."""

    on_stage: Callable[[str], None] | None = None
    on_epoch: Callable[[int, int], None] | None = None  # (epochs done, epochs in all)
    on_predicted: Callable[[int, int], None] | None = None  # (photos just done, photos in all)

    def stage(self, text: str) -> None:
        if self.on_stage:
            self.on_stage(text)


@dataclass(frozen=True)
class RoundResult:
    round_no: int
    attempt: int
    model: str
    trained_now: bool
    record: RoundRecord  # the round as stored once it is done
    preannotate: PreannotateStats | None
    pulled: PullResult | None
    pushed: PushResult | None
    report: Path

    def to_dict(self) -> dict[str, Any]:
        trained = self.record.trained
        return {
            "round": self.round_no,
            "attempt": self.attempt,
            "model": self.model,
            "trained_now": self.trained_now,
            "test": (trained.test if trained else None) or {},
            "report": str(self.report),
            "preannotate": self.preannotate.to_dict() if self.preannotate else None,
            "pull": self.pulled.to_dict() if self.pulled else None,
            "push": self.pushed.to_dict() if self.pushed else None,
        }


def run_round(
    ws: Workspace,
    round_no: int,
    settings: RoundSettings,
    *,
    queue: ReviewQueue | None = None,
    pull_first: bool = True,
    force: bool = False,
    hooks: RoundHooks = RoundHooks(),
) -> RoundResult:
    """One turn of the loop; round 0 (`bootstrap`), `retrain --round N`, the demo and the loop
    benchmark all run this sequence, so they cannot drift apart:

    plan (refuse or resume) -> pull reviews (N >= 1, with a queue) -> snapshot + train + evaluate
    -> re-predict every unreviewed photo -> push (with a queue) -> round report -> done.

    Each stage is recorded in the store before the next starts, so a killed round resumes at the
    stage it did not finish. Without a queue the round stops short of Label Studio (`--no-queue`).
    """
    attempt = plan_round(ws, round_no, force=force)
    started = ws.store.rounds.round_record(round_no, attempt)
    pulled = _pull_reviews(ws, queue, round_no, started, pull_first=pull_first, hooks=hooks)
    spec = resolve_model(ws, round_no, settings.model)
    trained_before = stage_reached(started, Stage.TRAINED) and (ws.round_dir(round_no, attempt) / "model.pt").exists()
    hooks.stage(
        f"round {round_no}: " + ("loading the model trained before" if trained_before else f"training from {spec}")
    )
    detector, backend = train_round(ws, round_no, attempt, model_spec=spec, settings=settings, progress=hooks.on_epoch)
    _evaluate_test_split(ws, detector, round_no, attempt, settings=settings, backend=backend)
    stats = _predict_stage(ws, detector, round_no, attempt, settings=settings, backend=backend, hooks=hooks)
    pushed = _push_stage(ws, queue, round_no, attempt, hooks=hooks)
    report = finish_round(ws, round_no, attempt)
    return RoundResult(
        round_no=round_no,
        attempt=attempt,
        model=spec,
        trained_now=not trained_before,
        record=_required(ws, round_no, attempt),
        preannotate=stats,
        pulled=pulled,
        pushed=pushed,
        report=report,
    )


def _pull_reviews(
    ws: Workspace,
    queue: ReviewQueue | None,
    round_no: int,
    started: RoundRecord | None,
    *,
    pull_first: bool,
    hooks: RoundHooks,
) -> PullResult | None:
    """Before round N >= 1 trains: pull the reviews waiting in the queue, or refuse while any wait unpulled."""
    if queue is None or round_no < 1 or stage_reached(started, Stage.TRAINED):
        return None
    if pull_first:
        hooks.stage(f"pulling the latest reviews from {queue.url}")
        return queue.pull(ws)
    waiting = queue.pending(ws)
    if waiting:
        raise WorkspaceError(
            f"{waiting} reviewed photos in Label Studio are not pulled yet; run "
            "`annotator review pull` or retrain with --pull"
        )
    return None


def _evaluate_test_split(
    ws: Workspace, detector: Predictor, round_no: int, attempt: int, *, settings: RoundSettings, backend: str
) -> None:
    """mAP50 with its interval on the fixed test split, once per round, at the thresholds the round chose."""
    record_test_split(
        ws,
        detector,
        round_no,
        attempt,
        imgsz=settings.imgsz,
        device=settings.device,
        threshold=threshold_rule(ws.config, _required(ws, round_no, attempt).thresholds),
        backend=backend,
    )


def _predict_stage(
    ws: Workspace,
    detector: Predictor,
    round_no: int,
    attempt: int,
    *,
    settings: RoundSettings,
    backend: str,
    hooks: RoundHooks,
) -> PreannotateStats | None:
    """Pre-annotate every unreviewed photo, unless an earlier run of this round already did."""
    if stage_reached(ws.store.rounds.round_record(round_no, attempt), Stage.PREDICTED):
        return None
    hooks.stage(f"round {round_no}: pre-annotating every unreviewed photo")
    return predict_round(
        ws,
        detector,
        round_no,
        attempt,
        imgsz=settings.imgsz,
        device=settings.device,
        workers=settings.workers,
        progress=hooks.on_predicted,
        backend=backend,
    )


def _push_stage(
    ws: Workspace, queue: ReviewQueue | None, round_no: int, attempt: int, *, hooks: RoundHooks
) -> PushResult | None:
    """Push the new predictions to the review queue (untouched tasks only) and record what the push did."""
    if queue is None or stage_reached(ws.store.rounds.round_record(round_no, attempt), Stage.PUSHED):
        return None
    hooks.stage(f"round {round_no}: pushing the new predictions to {queue.url} (untouched tasks only)")
    pushed = queue.push(ws)
    ws.store.rounds.upsert_round(round_no, attempt, stage=Stage.PUSHED, push=pushed.to_dict())
    return pushed


def _required(ws: Workspace, round_no: int, attempt: int) -> RoundRecord:
    """The record of a round this run has started (train_round creates it)."""
    record = ws.store.rounds.round_record(round_no, attempt)
    if record is None:
        raise WorkspaceError(f"round {round_no} (attempt {attempt}) is not recorded in {ws.root}")
    return record


def resolve_model(ws: Workspace, round_no: int, spec: str | None) -> str:
    """The model a round starts from. `auto`: yolo11s on a GPU, yolo11n on the CPU (package YAML);
    None: `auto` for round 0, round N-1's weights for round N."""
    if spec is None and round_no >= 1:
        return str(round_model_path(ws, round_no - 1))
    if spec is None or spec == "auto":
        import torch

        return "yolo11s.yaml" if torch.cuda.is_available() else "yolo11n.yaml"
    return spec


SPLITS_FIXED_KEY = "splits_fixed"  # store meta: set once the splits are fixed


def splits_fixed(ws: Workspace) -> bool:
    """True once the workspace's splits are fixed (by `ensure_splits` or `fix_splits`)."""
    return ws.store.get_meta(SPLITS_FIXED_KEY) is not None


def ensure_splits(ws: Workspace) -> dict[str, str]:
    """Fix the splits once (at bootstrap); later-labelled photos join train/val, never test."""
    cfg = ws.config
    labelled = {p: v for p, v in ws.store.labels.current_labels(TRAINABLE_SOURCES).items() if not v.excluded}
    records = {r.path: r for r in ws.store.labels.images()}
    if not splits_fixed(ws):
        manual = [
            SplitCandidate(p, frozenset(b.label for b in v.boxes), records[p].device_class.value)
            for p, v in labelled.items()
            if v.source is Source.MANUAL
        ]
        if len(manual) < MIN_LABELLED:
            raise WorkspaceError(
                f"{ws.root}: only {len(manual)} hand-labelled photos; at least {MIN_LABELLED} are "
                "needed to split and train (label more in labelImg and run `annotator init` again)"
            )
        splits = make_splits(
            manual,
            test_size=cfg.test_size,
            test_fraction=cfg.test_fraction,
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
        )
        splits.update(fixed_evaluation_set(ws, size=cfg.eval_size, seed=cfg.seed))
        fix_splits(ws, splits)
    existing = ws.store.labels.splits()
    late = {p: late_split(p, cfg.val_fraction) for p in labelled if p not in existing}
    if late:
        ws.store.labels.set_splits(late)
    return ws.store.labels.splits()


def fix_splits(ws: Workspace, splits: dict[str, str]) -> None:
    """Record `splits` (path -> split) as the workspace's fixed splits, in one transaction: `ensure_splits` keeps
    them from then on (a benchmark that chooses its own test split fixes it here before round 0)."""
    with ws.store.transaction():
        ws.store.labels.set_splits(splits)
        ws.store.set_meta(SPLITS_FIXED_KEY, "1")


def fixed_evaluation_set(ws: Workspace, *, size: int, seed: int) -> dict[str, str]:
    """path -> EVAL_SPLIT for `size` photos drawn at random (seeded) from the unlabelled pool: predicted by every
    round and never pushed to the review queue, so rounds are compared on the same photos."""
    pool = sorted(ws.store.labels.unlabelled_paths())
    chosen = random.Random(seed).sample(pool, min(size, len(pool))) if size > 0 else []
    return {path: EVAL_SPLIT for path in chosen}


def snapshot(ws: Workspace, round_no: int, attempt: int) -> list[tuple[str, int, str]]:
    """The round's immutable manifest: (photo, label-version id, split), written once."""
    existing = ws.store.rounds.manifest(round_no, attempt)
    if existing:
        return existing
    splits = ensure_splits(ws)
    labelled = {p: v for p, v in ws.store.labels.current_labels(TRAINABLE_SOURCES).items() if not v.excluded}
    rows = [(p, int(v.id), splits[p]) for p, v in sorted(labelled.items()) if p in splits and v.id is not None]
    ws.store.rounds.write_manifest(round_no, attempt, rows)
    manifest = ws.store.rounds.manifest(round_no, attempt)
    rd = ws.round_dir(round_no, attempt)
    rd.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        rd / "manifest.json",
        json.dumps([{"photo": p, "label_version": v, "split": s} for p, v, s in manifest], indent=1),
    )
    return manifest


def starts_fresh(model_spec: str) -> bool:
    """True when the spec builds a new network (a YAML or an architecture name), False for trained weights."""
    path = Path(model_spec).expanduser()
    return model_spec.endswith((".yaml", ".yml")) or not path.is_file()


def pretrained_path(ws: Workspace, name: str) -> Path:
    """The checkpoint a setting names: absolute, relative to the workspace, or relative to the current folder."""
    path = Path(name).expanduser()
    if not path.is_absolute() and (ws.root / path).is_file():
        return ws.root / path
    return checkpoint_file(path)


def train_round(
    ws: Workspace,
    round_no: int,
    attempt: int = 0,
    *,
    model_spec: str,
    settings: RoundSettings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Predictor, str]:
    """Snapshot, train, evaluate on test and choose each class's threshold on val; a round already trained
    just loads its model. Provenance (train_args.json, the round's record): the recipe's train arguments, the
    pretrained checkpoint (name, sha256, tensors transferred) or the weights a warm start began from.

    Returns the detector the round predicts with and its backend note (`round_predictor`): the val thresholds
    are chosen on its scores, and the test split and pre-annotation use it too (metrics["backend"])."""
    rd = ws.round_dir(round_no, attempt)
    record = ws.store.rounds.round_record(round_no, attempt)
    if stage_reached(record, Stage.TRAINED) and (rd / "model.pt").exists():
        trained = make_detector(str(rd / "model.pt"), ws.config.classes, verbose=settings.verbose)
        return round_predictor(ws, trained, round_no, attempt, device=settings.device)
    version = model_version_for(round_no, attempt)
    if record is None:
        ws.store.rounds.upsert_round(round_no, attempt, stage=Stage.STARTED, model_version=version)
    view = _training_view(ws, round_no, attempt)
    detector, origin = _starting_detector(ws, round_no, model_spec, settings)
    train_settings = _train_settings(ws, settings)
    result = detector.train(view, train_settings, rd / "work", progress=progress)
    detector.save(rd / "model.pt")
    test = detector.validate(
        view, "test", imgsz=settings.imgsz, batch=settings.batch, workdir=rd / "work", device=settings.device
    )
    predictor, backend = round_predictor(ws, detector, round_no, attempt, device=settings.device)
    thresholds, calibration = _choose_on_val(ws, predictor, view, settings)
    trained_round = TrainedRound(
        model=model_spec,
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        pretrained=origin["pretrained"],
        warm_start=origin["warm_start"],
        thresholds={c: t.threshold for c, t in thresholds.items()},
        threshold_choices={c: t.to_dict() for c, t in thresholds.items()},
        calibration=calibration.to_dict() if calibration else None,
        val=result.metrics,
        test=test,
        train_seconds=result.train_seconds,
        images={s: len(view.images[s]) for s in ("train", "val", "test")},
        backend=backend,
    )
    _write_train_args(rd, round_no, attempt, train_settings, detector, trained_round, result)
    atomic_write_text(rd / "metrics.json", json.dumps(trained_round.to_metrics(), indent=2, default=str))
    ws.store.rounds.upsert_round(
        round_no,
        attempt,
        stage=Stage.TRAINED,
        model_path=str(rd / "model.pt"),
        model_version=version,
        trained=trained_round,
    )
    return predictor, backend


def _training_view(ws: Workspace, round_no: int, attempt: int) -> TrainingView:
    """The round's snapshot as a training view (train/val/test links and labels); refuses an empty train split."""
    manifest = snapshot(ws, round_no, attempt)
    labels = {p: ws.store.labels.version(vid) for p, vid, _ in manifest}
    view = build_training_view(
        ws,
        ws.round_dir(round_no, attempt) / "view",
        {p: s for p, _, s in manifest},
        {p: v for p, v in labels.items() if v is not None},
    )
    if not view.images["train"]:
        raise WorkspaceError(f"{ws.root}: no photos in the train split; label more photos first")
    return view


def _train_settings(ws: Workspace, settings: RoundSettings) -> TrainSettings:
    """The detector's train arguments for this round (the workspace's seed)."""
    return TrainSettings(
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        seed=ws.config.seed,
        verbose=settings.verbose,
    )


def _starting_detector(
    ws: Workspace, round_no: int, model_spec: str, settings: RoundSettings
) -> tuple[Detector, dict[str, Any]]:
    """The detector the round trains (a new network, from the pretrained checkpoint when one is set, or the
    weights a warm start begins from) and where its starting weights came from (`_origin`)."""
    fresh = starts_fresh(model_spec)
    build: dict[str, Any] = {}
    if fresh and settings.pretrained:
        build["pretrained"] = verified(pretrained_path(ws, settings.pretrained), settings.pretrained_sha256)
    detector = make_detector(model_spec, ws.config.classes, verbose=settings.verbose, **build)
    return detector, _origin(ws, round_no, model_spec, detector, fresh)


def _choose_on_val(
    ws: Workspace, predictor: Predictor, view: TrainingView, settings: RoundSettings
) -> tuple[dict[str, ClassThreshold], ScoreCalibration | None]:
    """Each class's confidence threshold and the review priority's score calibration, fitted on val as the
    round's predictor scores it."""
    classes = ws.config.classes
    val = predict_split(predictor, view, imgsz=settings.imgsz, batch=settings.batch, device=settings.device)
    thresholds = choose_thresholds(val.truth, val.pred, classes, default=ws.config.default_threshold)
    return thresholds, fit_score_calibration(val.truth, val.pred, classes, val.frames)


def _write_train_args(
    rd: Path,
    round_no: int,
    attempt: int,
    train_settings: TrainSettings,
    detector: Detector,
    trained: TrainedRound,
    result: TrainResult,
) -> None:
    """rounds/NNN/train_args.json: the recipe, where the weights came from, and what training took."""
    args = {
        "model": trained.model,
        "round": round_no,
        "attempt": attempt,
        "model_version": model_version_for(round_no, attempt),
        **asdict(train_settings),
        "pretrained": trained.pretrained,
        "warm_start": trained.warm_start,
        "framework_args": getattr(detector, "train_args", None),
        "images": trained.images,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.train_seconds, 1),
    }
    atomic_write_text(rd / "train_args.json", json.dumps(args, indent=2, default=str))


def round_predictor(
    ws: Workspace, detector: Detector, round_no: int, attempt: int = 0, *, device: str | None = None
) -> tuple[Predictor, str]:
    """The one detector a trained round predicts with, and its backend note: `prediction_detector`'s rule over the
    round's whole prediction work (its test and val photos and the pool still to pre-annotate), so on the CPU the
    thresholds are chosen on the scores pre-annotation applies them to, and "auto" exports (once, cached beside
    model.pt) when that work pays for it. A GPU, or a family ONNX Runtime does not run, keeps `detector`."""
    evaluated = sum(1 for _, _, split in ws.store.rounds.manifest(round_no, attempt) if split in ("test", "val"))
    pool = len(unreviewed_targets(ws, model_version_for(round_no, attempt)))
    return prediction_detector(
        detector,
        ws.round_dir(round_no, attempt) / "model.pt",
        backend=ws.config.predict_backend,
        device=device,
        photos=evaluated + pool,
    )


def _origin(ws: Workspace, round_no: int, model_spec: str, detector: Detector, fresh: bool) -> dict[str, Any]:
    """Where the round's starting weights came from: {"pretrained": the checkpoint transferred (or the one the
    warm-started model descends from), "warm_start": the weights file a warm start began from (name, sha256)}."""
    if fresh:
        return {"pretrained": detector.pretrained.to_dict() if detector.pretrained else None, "warm_start": None}
    start = Path(model_spec).expanduser()
    previous = ws.store.rounds.round_record(round_no - 1) if round_no >= 1 else None
    inherited = None
    if previous and previous.model_path and Path(previous.model_path).resolve() == start.resolve():
        inherited = previous.trained.pretrained if previous.trained else None
    return {"pretrained": inherited, "warm_start": {"name": start.name, "path": str(start), "sha256": sha256_of(start)}}


def unreviewed_targets(ws: Workspace, model_version: str) -> list[ImageRecord]:
    """Photos a model may (re)label: no label yet, or only an older model's. Excludes the
    fixed test split's photos (they keep their hand labels) and photos done by this model."""
    current = ws.store.labels.current_labels()
    out = []
    for rec in ws.store.labels.images():
        version = current.get(rec.path)
        if version is None or (
            version.source is Source.MODEL and not version.excluded and version.model_version != model_version
        ):
            out.append(rec)
    return out


def predict_round(
    ws: Workspace,
    detector: Predictor,
    round_no: int,
    attempt: int = 0,
    *,
    imgsz: int,
    batch: int = 0,
    device: str | None = None,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    backend: str | None = None,
) -> PreannotateStats:
    """Pre-annotate every unreviewed photo. backend: the note of the detector `round_predictor` already chose
    (run_round passes train_round's); None: choose it here for the pool alone."""
    version = model_version_for(round_no, attempt)
    targets = unreviewed_targets(ws, version)
    total = len(targets)
    record = ws.store.rounds.round_record(round_no, attempt)
    chosen = record.thresholds if record else {}
    fitted = record.calibration if record else None
    calibration = ScoreCalibration.from_dict(fitted) if fitted else None
    if backend is None:  # on the CPU the round's model.pt runs through ONNX Runtime, exported once and cached beside it
        detector, backend = prediction_detector(
            detector,
            ws.round_dir(round_no, attempt) / "model.pt",
            backend=ws.config.predict_backend,
            device=device,
            photos=total,
        )
    stats = preannotate(
        ws,
        detector,
        targets,
        round_no=round_no,
        model_version=version,
        imgsz=imgsz,
        batch=batch or ws.config.predict_batch,
        workers=workers,
        device=device,
        threshold=threshold_rule(ws.config, chosen),
        calibration=calibration,
        progress=(lambda n: progress(n, total)) if progress else None,
    )
    previous = ws.store.rounds.round_record(round_no, attempt)
    done_before = (previous.predicted_photos if previous else None) or 0
    summary = {**stats.to_dict(), "predicted": done_before + stats.predicted, "backend": backend}
    ws.store.rounds.upsert_round(round_no, attempt, stage=Stage.PREDICTED, preannotate=summary)
    return stats


def round_model_path(ws: Workspace, round_no: int) -> Path:
    """The weights round N's latest attempt trained; refuses a round with none on disk."""
    record = ws.store.rounds.round_record(round_no)
    if record is None or not record.model_path or not Path(record.model_path).exists():
        raise WorkspaceError(f"round {round_no} has no trained model in {ws.root}/rounds; run it first")
    return Path(record.model_path)


def plan_round(ws: Workspace, round_no: int, *, force: bool = False) -> int:
    """Check round N may run and return its attempt number: a new round is attempt 0, a killed one
    resumes its attempt, a finished one is refused unless `force` (a new attempt; the old one stays)."""
    if round_no < 0:
        raise WorkspaceError(f"round {round_no}: rounds are numbered from 0 (round 0 is `annotator bootstrap`)")
    if round_no >= 1:
        previous = ws.store.rounds.round_record(round_no - 1)
        if not stage_reached(previous, Stage.TRAINED):
            raise WorkspaceError(
                f"round {round_no - 1} is missing or unfinished in {ws.root}; run "
                + ("`annotator bootstrap`" if round_no == 1 else f"`annotator retrain --round {round_no - 1}`")
                + " first"
            )
    existing = ws.store.rounds.round_record(round_no)
    if existing is None:
        return 0
    if existing.stage is not Stage.DONE:
        return existing.attempt  # killed half-way: continue it
    if not force:
        command = "annotator bootstrap" if round_no == 0 else f"annotator retrain --round {round_no}"
        raise WorkspaceError(
            f"round {round_no} is already done ({ws.round_dir(round_no, existing.attempt)}); "
            f"`{command} --force` makes a new attempt (the old one is kept)"
        )
    return existing.attempt + 1


def write_report(ws: Workspace, round_no: int, attempt: int = 0) -> Path:
    """The round's one-page report (learning curve so far, this round's test metrics)."""
    from bootstrap.curve import learning_curve
    from bootstrap.round_report import write_round_report
    from review_queue.adjudication import agreement_summary

    record = _required(ws, round_no, attempt)
    path = ws.round_dir(round_no, attempt) / "report.html"
    agreement = agreement_summary(ws)
    return write_round_report(
        path,
        title=f"Round {round_no} ({model_version_for(round_no, attempt)})",
        curve=learning_curve(ws),
        record=record,
        agreement=agreement if agreement.overall.photos else None,
    )


def finish_round(ws: Workspace, round_no: int, attempt: int) -> Path:
    """Write the round's one-page report, then mark the round done (in that order: a run killed before
    the report is on disk resumes and writes it, rather than being refused as finished)."""
    path = write_report(ws, round_no, attempt)
    ws.store.rounds.upsert_round(round_no, attempt, stage=Stage.DONE)
    return path
