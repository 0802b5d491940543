"""Rounds of the loop: snapshot the labelled set, train, evaluate on the fixed test split,
re-predict what is still unreviewed. Round 0 is the bootstrap; round N >= 1 is `retrain`.

Each round writes `rounds/NNN/`: model.pt, manifest.json (which label version of which photo:
the round can be reproduced exactly), train_args.json, metrics.json, report.html. Progress
is recorded in the store stage by stage, so a killed round resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from annotator.errors import WorkspaceError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace
from annotator.types import ImageRecord, LabelVersion, Source
from bootstrap.preannotate import PreannotateStats, preannotate
from bootstrap.split import SplitCandidate, late_split, make_splits
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import Detector, TrainSettings

TRAINABLE_SOURCES = (Source.MANUAL, Source.REVIEWED, Source.AUTO_ACCEPTED)
STAGES = ("started", "trained", "predicted", "pushed", "done")


def stage_reached(row: dict | None, stage: str) -> bool:
    return row is not None and STAGES.index(row["stage"]) >= STAGES.index(stage)


def model_version_for(round_no: int, attempt: int = 0) -> str:
    return f"round-{round_no:03d}" + (f"-attempt{attempt}" if attempt else "")


def ensure_splits(ws: Workspace) -> dict[str, str]:
    """Fix the splits once (at bootstrap); later-labelled photos join train/val, never test."""
    cfg = ws.config
    labelled = {p: v for p, v in ws.store.current_labels(TRAINABLE_SOURCES).items() if not v.excluded}
    records = {r.path: r for r in ws.store.images()}
    if ws.store.get_meta("splits_fixed") is None:
        manual = [SplitCandidate(p, frozenset(b.label for b in v.boxes), records[p].device_class.value)
                  for p, v in labelled.items() if v.source is Source.MANUAL]
        if len(manual) < 3:
            raise WorkspaceError(f"{ws.root}: only {len(manual)} hand-labelled photos; at least 3 are needed to "
                                 "split and train (label more in labelImg and run `annotator init` again)")
        splits = make_splits(manual, test_size=cfg.test_size, test_fraction=cfg.test_fraction,
                             val_fraction=cfg.val_fraction, seed=cfg.seed)
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
    atomic_write_text(rd / "manifest.json", json.dumps(
        [{"photo": p, "label_version": v, "split": s} for p, v, s in manifest], indent=1))
    return manifest


def train_round(ws: Workspace, round_no: int, attempt: int = 0, *, model_spec: str, epochs: int, imgsz: int,
                batch: int, device: str | None = None, verbose: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Detector:
    """Snapshot, train and evaluate; a round already trained just loads its model."""
    rd = ws.round_dir(round_no, attempt)
    row = ws.store.round_row(round_no, attempt)
    classes = ws.config.classes
    version = model_version_for(round_no, attempt)
    if stage_reached(row, "trained") and (rd / "model.pt").exists():
        return make_detector(str(rd / "model.pt"), classes, verbose=verbose)
    if row is None:
        ws.store.upsert_round(round_no, attempt, stage="started", model_version=version)
    manifest = snapshot(ws, round_no, attempt)
    labels = {p: ws.store.version(vid) for p, vid, _ in manifest}
    view = build_training_view(ws, rd / "view", {p: s for p, _, s in manifest},
                               {p: v for p, v in labels.items() if v is not None})
    if not view.images["train"]:
        raise WorkspaceError(f"{ws.root}: no photos in the train split; label more photos first")
    settings = TrainSettings(epochs=epochs, imgsz=imgsz, batch=batch, device=device, seed=ws.config.seed,
                             verbose=verbose)
    detector = make_detector(model_spec, classes, verbose=verbose)
    result = detector.train(view, settings, rd / "work", progress=progress)
    detector.save(rd / "model.pt")
    test = detector.validate(view, "test", imgsz=imgsz, batch=batch, workdir=rd / "work", device=device) \
        if hasattr(detector, "validate") else {}
    counts = {s: len(view.images[s]) for s in ("train", "val", "test")}
    atomic_write_text(rd / "train_args.json", json.dumps(
        {"model": model_spec, "round": round_no, "attempt": attempt, "model_version": version,
         **asdict(settings), "images": counts, "epochs_run": result.epochs_run,
         "train_seconds": round(result.train_seconds, 1)}, indent=2, default=str))
    metrics = {"val": result.metrics, "test": test, "train_seconds": result.train_seconds, "images": counts}
    atomic_write_text(rd / "metrics.json", json.dumps(metrics, indent=2, default=str))
    ws.store.upsert_round(round_no, attempt, stage="trained", model_path=str(rd / "model.pt"), model_version=version,
                          metrics=metrics, info={"model": model_spec, "epochs": epochs, "imgsz": imgsz})
    return detector


def unreviewed_targets(ws: Workspace, model_version: str) -> list[ImageRecord]:
    """Photos a model may (re)label: no label yet, or only an older model's. Excludes the
    fixed test split's photos (they keep their hand labels) and photos done by this model."""
    current = ws.store.current_labels()
    out = []
    for rec in ws.store.images():
        version = current.get(rec.path)
        if version is None or (version.source is Source.MODEL and not version.excluded
                               and version.model_version != model_version):
            out.append(rec)
    return out


def predict_round(ws: Workspace, detector: Detector, round_no: int, attempt: int = 0, *, imgsz: int, batch: int = 0,
                  device: str | None = None, workers: int = 0,
                  progress: Callable[[int], None] | None = None) -> PreannotateStats:
    version = model_version_for(round_no, attempt)
    targets = unreviewed_targets(ws, version)
    stats = preannotate(ws, detector, targets, round_no=round_no, model_version=version, imgsz=imgsz,
                        batch=batch or ws.config.predict_batch,
                        workers=workers, device=device, progress=progress)
    previous = ws.store.round_row(round_no, attempt) or {"info": {}}
    done_before = previous["info"].get("preannotate", {}).get("predicted", 0)
    info = {"preannotate": {**stats.to_dict(), "predicted": done_before + stats.predicted}}
    ws.store.upsert_round(round_no, attempt, stage="predicted", info=info)
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


def plan_retrain(ws: Workspace, round_no: int, *, force: bool = False) -> int:
    """Check round N may run and return its attempt number (resumes an unfinished attempt)."""
    if round_no < 1:
        raise WorkspaceError("retrain starts at round 1; round 0 is `annotator bootstrap`")
    previous = ws.store.round_row(round_no - 1)
    if not stage_reached(previous, "trained"):
        raise WorkspaceError(f"round {round_no - 1} is missing or unfinished in {ws.root}; run "
                             + ("`annotator bootstrap`" if round_no == 1 else f"`annotator retrain --round {round_no - 1}`")
                             + " first")
    existing = ws.store.round_row(round_no)
    if existing is None:
        return 0
    if existing["stage"] != "done":
        return int(existing["attempt"])  # killed half-way: continue it
    if not force:
        raise WorkspaceError(f"round {round_no} already exists ({ws.round_dir(round_no, existing['attempt'])}); "
                             "use --force to make a new attempt (the old one is kept)")
    return int(existing["attempt"]) + 1


def write_report(ws: Workspace, round_no: int, attempt: int = 0) -> Path:
    """The round's one-page report (learning curve so far, this round's test metrics)."""
    from bootstrap.curve import learning_curve
    from bootstrap.round_report import write_round_report

    row = ws.store.round_row(round_no, attempt) or {}
    path = ws.round_dir(round_no, attempt) / "report.html"
    return write_round_report(path, title=f"Round {round_no} ({model_version_for(round_no, attempt)})",
                              curve=learning_curve(ws), round_metrics=row.get("metrics", {}))


def finish_round(ws: Workspace, round_no: int, attempt: int, *, pushed: dict | None = None) -> Path:
    """Write the round's one-page report, then mark the round done (in that order: a run killed before
    the report is on disk resumes and writes it, rather than being refused as finished)."""
    if pushed:
        row = ws.store.round_row(round_no, attempt) or {}
        ws.store.upsert_round(round_no, attempt, stage=row.get("stage", "predicted"), info={"push": pushed})
    path = write_report(ws, round_no, attempt)
    ws.store.upsert_round(round_no, attempt, stage="done")
    return path
