"""Rounds of the loop: snapshot the labelled set, train, evaluate on the fixed test split,
re-predict what is still unreviewed. Round 0 is the bootstrap; round N >= 1 is `retrain`.

Each round writes `rounds/NNN/`: model.pt, manifest.json (which label version of which photo:
the round can be reproduced exactly), train_args.json, metrics.json, report.html. Progress
is recorded in the store stage by stage, so a killed round resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace
from annotator.types import ImageRecord, Source
from bootstrap.evaluation import record_test_split
from bootstrap.preannotate import PreannotateStats, preannotate
from bootstrap.split import MIN_LABELLED, SplitCandidate, late_split, make_splits
from bootstrap.uncertainty import ScoreCalibration, fit_score_calibration
from review_queue.queue import PullResult, PushResult, ReviewQueue
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import Detector, Predictor, TrainSettings
from training.detectors.pretrained import checkpoint_file, sha256_of
from training.detectors.runtime import prediction_detector
from training.thresholds import choose_thresholds, predict_split, threshold_rule

TRAINABLE_SOURCES = (Source.MANUAL, Source.REVIEWED, Source.AUTO_ACCEPTED)


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


def stage_reached(row: dict | None, stage: Stage) -> bool:
    return row is not None and Stage(row["stage"]).order >= stage.order


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

    @classmethod
    def from_config(cls, cfg: Config, round_no: int, **overrides: Any) -> RoundSettings:
        """The workspace's settings for this round (retrain_epochs for N >= 1); None overrides are ignored."""
        base = cls(
            model=cfg.model if round_no == 0 else None,
            epochs=cfg.epochs if round_no == 0 else cfg.retrain_epochs,
            imgsz=cfg.imgsz,
            batch=cfg.batch,
            pretrained=cfg.pretrained,
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
    metrics: dict[str, Any]
    preannotate: PreannotateStats | None
    pulled: PullResult | None
    pushed: PushResult | None
    report: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round_no,
            "attempt": self.attempt,
            "model": self.model,
            "trained_now": self.trained_now,
            "test": self.metrics.get("test", {}),
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
    row = ws.store.round_row(round_no, attempt)
    pulled = None
    if queue is not None and round_no >= 1 and not stage_reached(row, Stage.TRAINED):
        if pull_first:
            hooks.stage(f"pulling the latest reviews from {queue.url}")
            pulled = queue.pull(ws)
        else:
            waiting = queue.pending(ws)
            if waiting:
                raise WorkspaceError(
                    f"{waiting} reviewed photos in Label Studio are not pulled yet; run "
                    "`annotator review pull` or retrain with --pull"
                )
    spec = resolve_model(ws, round_no, settings.model)
    trained_before = stage_reached(row, Stage.TRAINED) and (ws.round_dir(round_no, attempt) / "model.pt").exists()
    hooks.stage(
        f"round {round_no}: " + ("loading the model trained before" if trained_before else f"training from {spec}")
    )
    detector, backend = train_round(ws, round_no, attempt, model_spec=spec, settings=settings, progress=hooks.on_epoch)
    chosen = ((ws.store.round_row(round_no, attempt) or {}).get("info") or {}).get("thresholds") or {}
    record_test_split(
        ws,
        detector,
        round_no,
        attempt,
        imgsz=settings.imgsz,
        device=settings.device,
        threshold=threshold_rule(ws.config, chosen),
        backend=backend,
    )  # mAP50 with its interval, once per round
    stats = None
    if not stage_reached(ws.store.round_row(round_no, attempt), Stage.PREDICTED):
        hooks.stage(f"round {round_no}: pre-annotating every unreviewed photo")
        stats = predict_round(
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
    pushed = None
    if queue is not None and not stage_reached(ws.store.round_row(round_no, attempt), Stage.PUSHED):
        hooks.stage(f"round {round_no}: pushing the new predictions to {queue.url} (untouched tasks only)")
        pushed = queue.push(ws)
        ws.store.upsert_round(round_no, attempt, stage=Stage.PUSHED.value, info={"push": pushed.to_dict()})
    report = finish_round(ws, round_no, attempt)
    final = ws.store.round_row(round_no, attempt) or {}
    return RoundResult(
        round_no=round_no,
        attempt=attempt,
        model=spec,
        trained_now=not trained_before,
        metrics=final.get("metrics", {}),
        preannotate=stats,
        pulled=pulled,
        pushed=pushed,
        report=report,
    )


def resolve_model(ws: Workspace, round_no: int, spec: str | None) -> str:
    """The model a round starts from. `auto`: yolo11s on a GPU, yolo11n on the CPU (package YAML);
    None: `auto` for round 0, round N-1's weights for round N."""
    if spec is None and round_no >= 1:
        return str(round_model_path(ws, round_no - 1))
    if spec is None or spec == "auto":
        import torch

        return "yolo11s.yaml" if torch.cuda.is_available() else "yolo11n.yaml"
    return spec


def ensure_splits(ws: Workspace) -> dict[str, str]:
    """Fix the splits once (at bootstrap); later-labelled photos join train/val, never test."""
    cfg = ws.config
    labelled = {p: v for p, v in ws.store.current_labels(TRAINABLE_SOURCES).items() if not v.excluded}
    records = {r.path: r for r in ws.store.images()}
    if ws.store.get_meta("splits_fixed") is None:
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
        with ws.store.transaction():
            ws.store.set_splits(splits)
            ws.store.set_meta("splits_fixed", "1")
    existing = ws.store.splits()
    late = {p: late_split(p, cfg.val_fraction) for p in labelled if p not in existing}
    if late:
        ws.store.set_splits(late)
    return ws.store.splits()


def snapshot(ws: Workspace, round_no: int, attempt: int) -> list[tuple[str, int, str]]:
    """The round's immutable manifest: (photo, label-version id, split), written once."""
    existing = ws.store.manifest(round_no, attempt)
    if existing:
        return existing
    splits = ensure_splits(ws)
    labelled = {p: v for p, v in ws.store.current_labels(TRAINABLE_SOURCES).items() if not v.excluded}
    rows = [(p, int(v.id), splits[p]) for p, v in sorted(labelled.items()) if p in splits and v.id is not None]
    ws.store.write_manifest(round_no, attempt, rows)
    manifest = ws.store.manifest(round_no, attempt)
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
    just loads its model. Provenance (train_args.json, the round's info): the recipe's train arguments, the
    pretrained checkpoint (name, sha256, tensors transferred) or the weights a warm start began from.

    Returns the detector the round predicts with and its backend note (`round_predictor`): the val thresholds
    are chosen on its scores, and the test split and pre-annotation use it too (metrics["backend"])."""
    rd = ws.round_dir(round_no, attempt)
    row = ws.store.round_row(round_no, attempt)
    classes = ws.config.classes
    version = model_version_for(round_no, attempt)
    epochs, imgsz, batch, device, verbose = (
        settings.epochs,
        settings.imgsz,
        settings.batch,
        settings.device,
        settings.verbose,
    )
    if stage_reached(row, Stage.TRAINED) and (rd / "model.pt").exists():
        trained = make_detector(str(rd / "model.pt"), classes, verbose=verbose)
        return round_predictor(ws, trained, round_no, attempt, device=device)
    if row is None:
        ws.store.upsert_round(round_no, attempt, stage=Stage.STARTED.value, model_version=version)
    manifest = snapshot(ws, round_no, attempt)
    labels = {p: ws.store.version(vid) for p, vid, _ in manifest}
    view = build_training_view(
        ws, rd / "view", {p: s for p, _, s in manifest}, {p: v for p, v in labels.items() if v is not None}
    )
    if not view.images["train"]:
        raise WorkspaceError(f"{ws.root}: no photos in the train split; label more photos first")
    train_settings = TrainSettings(
        epochs=epochs, imgsz=imgsz, batch=batch, device=device, seed=ws.config.seed, verbose=verbose
    )
    fresh = starts_fresh(model_spec)
    build: dict[str, Any] = {}
    if fresh and settings.pretrained:
        build["pretrained"] = pretrained_path(ws, settings.pretrained)
    detector = make_detector(model_spec, classes, verbose=verbose, **build)
    origin = _origin(ws, round_no, model_spec, detector, fresh)
    result = detector.train(view, train_settings, rd / "work", progress=progress)
    detector.save(rd / "model.pt")
    test = detector.validate(view, "test", imgsz=imgsz, batch=batch, workdir=rd / "work", device=device)
    predictor, backend = round_predictor(ws, detector, round_no, attempt, device=device)
    val = predict_split(predictor, view, imgsz=imgsz, batch=batch, device=device)
    thresholds = choose_thresholds(val.truth, val.pred, classes, default=ws.config.default_threshold)
    calibration = fit_score_calibration(val.truth, val.pred, classes, val.frames)  # for the review priority
    counts = {s: len(view.images[s]) for s in ("train", "val", "test")}
    atomic_write_text(
        rd / "train_args.json",
        json.dumps(
            {
                "model": model_spec,
                "round": round_no,
                "attempt": attempt,
                "model_version": version,
                **asdict(train_settings),
                **origin,
                "framework_args": getattr(detector, "train_args", None),
                "images": counts,
                "epochs_run": result.epochs_run,
                "train_seconds": round(result.train_seconds, 1),
            },
            indent=2,
            default=str,
        ),
    )
    metrics = {
        "val": result.metrics,
        "test": test,
        "train_seconds": result.train_seconds,
        "images": counts,
        "thresholds": {c: t.to_dict() for c, t in thresholds.items()},
        "calibration": calibration.to_dict() if calibration else None,
        "backend": backend,  # what predicted val (the thresholds), the test split and the pool
    }
    atomic_write_text(rd / "metrics.json", json.dumps(metrics, indent=2, default=str))
    ws.store.upsert_round(
        round_no,
        attempt,
        stage=Stage.TRAINED.value,
        model_path=str(rd / "model.pt"),
        model_version=version,
        metrics=metrics,
        info={
            "model": model_spec,
            "epochs": epochs,
            "imgsz": imgsz,
            **origin,
            "thresholds": {c: t.threshold for c, t in thresholds.items()},
            "calibration": calibration.to_dict() if calibration else None,
        },
    )
    return predictor, backend


def round_predictor(
    ws: Workspace, detector: Detector, round_no: int, attempt: int = 0, *, device: str | None = None
) -> tuple[Predictor, str]:
    """The one detector a trained round predicts with, and its backend note: `prediction_detector`'s rule over the
    round's whole prediction work (its test and val photos and the pool still to pre-annotate), so on the CPU the
    thresholds are chosen on the scores pre-annotation applies them to, and "auto" exports (once, cached beside
    model.pt) when that work pays for it. A GPU, or a family ONNX Runtime does not run, keeps `detector`."""
    evaluated = sum(1 for _, _, split in ws.store.manifest(round_no, attempt) if split in ("test", "val"))
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
    previous = ws.store.round_row(round_no - 1) if round_no >= 1 else None
    inherited = None
    if previous and previous.get("model_path") and Path(previous["model_path"]).resolve() == start.resolve():
        inherited = previous.get("info", {}).get("pretrained")
    return {"pretrained": inherited, "warm_start": {"name": start.name, "path": str(start), "sha256": sha256_of(start)}}


def unreviewed_targets(ws: Workspace, model_version: str) -> list[ImageRecord]:
    """Photos a model may (re)label: no label yet, or only an older model's. Excludes the
    fixed test split's photos (they keep their hand labels) and photos done by this model."""
    current = ws.store.current_labels()
    out = []
    for rec in ws.store.images():
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
    info = (ws.store.round_row(round_no, attempt) or {}).get("info") or {}
    chosen = info.get("thresholds") or {}
    calibration = ScoreCalibration.from_dict(info["calibration"]) if info.get("calibration") else None
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
    previous = ws.store.round_row(round_no, attempt) or {"info": {}}
    done_before = previous["info"].get("preannotate", {}).get("predicted", 0)
    info = {"preannotate": {**stats.to_dict(), "predicted": done_before + stats.predicted, "backend": backend}}
    ws.store.upsert_round(round_no, attempt, stage=Stage.PREDICTED.value, info=info)
    return stats


def remaining_targets(ws: Workspace, round_no: int, attempt: int = 0) -> int:
    return len(unreviewed_targets(ws, model_version_for(round_no, attempt)))


def latest_round(ws: Workspace) -> dict | None:
    rounds = ws.store.rounds()
    return rounds[-1] if rounds else None


def round_model_path(ws: Workspace, round_no: int) -> Path:
    row = ws.store.round_row(round_no)
    if row is None or not row.get("model_path") or not Path(row["model_path"]).exists():
        raise WorkspaceError(f"round {round_no} has no trained model in {ws.root}/rounds; run it first")
    return Path(row["model_path"])


def plan_round(ws: Workspace, round_no: int, *, force: bool = False) -> int:
    """Check round N may run and return its attempt number: a new round is attempt 0, a killed one
    resumes its attempt, a finished one is refused unless `force` (a new attempt; the old one stays)."""
    if round_no < 0:
        raise WorkspaceError(f"round {round_no}: rounds are numbered from 0 (round 0 is `annotator bootstrap`)")
    if round_no >= 1:
        previous = ws.store.round_row(round_no - 1)
        if not stage_reached(previous, Stage.TRAINED):
            raise WorkspaceError(
                f"round {round_no - 1} is missing or unfinished in {ws.root}; run "
                + ("`annotator bootstrap`" if round_no == 1 else f"`annotator retrain --round {round_no - 1}`")
                + " first"
            )
    existing = ws.store.round_row(round_no)
    if existing is None:
        return 0
    if existing["stage"] != Stage.DONE.value:
        return int(existing["attempt"])  # killed half-way: continue it
    if not force:
        command = "annotator bootstrap" if round_no == 0 else f"annotator retrain --round {round_no}"
        raise WorkspaceError(
            f"round {round_no} is already done ({ws.round_dir(round_no, existing['attempt'])}); "
            f"`{command} --force` makes a new attempt (the old one is kept)"
        )
    return int(existing["attempt"]) + 1


def write_report(ws: Workspace, round_no: int, attempt: int = 0) -> Path:
    """The round's one-page report (learning curve so far, this round's test metrics)."""
    from bootstrap.curve import learning_curve
    from bootstrap.round_report import write_round_report
    from review_queue.adjudication import agreement_summary

    row = ws.store.round_row(round_no, attempt) or {}
    path = ws.round_dir(round_no, attempt) / "report.html"
    agreement = agreement_summary(ws)
    return write_round_report(
        path,
        title=f"Round {round_no} ({model_version_for(round_no, attempt)})",
        curve=learning_curve(ws),
        round_metrics=row.get("metrics", {}),
        agreement=agreement if agreement.overall.photos else None,
    )


def finish_round(ws: Workspace, round_no: int, attempt: int) -> Path:
    """Write the round's one-page report, then mark the round done (in that order: a run killed before
    the report is on disk resumes and writes it, rather than being refused as finished)."""
    path = write_report(ws, round_no, attempt)
    ws.store.upsert_round(round_no, attempt, stage=Stage.DONE.value)
    return path
