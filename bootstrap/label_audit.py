"""The label audit: out-of-sample predictions for every hand-labelled and reviewed photo (K folds trained with the
round recipe), scored by cleanlab (`training.label_quality`) to point at the labels most likely wrong.

A fold's model never trains (nor chooses its best epoch) on a photo it predicts. The predictions are cached under
the latest round's folder (`label-audit/<key>/predictions.json`), the key covering the label versions, the folds,
epochs, image size and model: auditing again with nothing changed costs nothing. Nothing here changes a label.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.errors import WorkspaceError
from annotator.fsutil import atomic_write_text
from annotator.images import decode_displayed
from annotator.store import Workspace, now_iso
from annotator.types import LABEL_AUDIT_KEY, Box, LabelVersion, Source
from bootstrap.rounds import pretrained_path, resolve_model, starts_fresh
from training.constants import PREDICT_FLOOR
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import Detector, TrainSettings
from training.label_quality import PhotoQuality, score_labels
from training.prediction import DecodedPhoto, predict_photos

AUDITED_SOURCES = (Source.MANUAL, Source.REVIEWED)  # labels a person made; a model's accepted label is not audited
VAL_EVERY = 10  # one training photo in VAL_EVERY picks the fold model's best epoch (never a held-out photo)
MIN_PHOTOS_PER_FOLD = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabelAuditSettings:
    """The audit's training budget: `folds` models, each trained `epochs` at `imgsz` on the other folds' photos.

    model None: the workspace's round-0 model ("auto": yolo11s on a GPU, yolo11n on the CPU).
    include_test: audit the fixed test split too (its labels are what every benchmark is scored against)."""

    folds: int = 3
    epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    model: str | None = None
    include_test: bool = True
    high_probability: float | None = None  # cleanlab's confident-box score for overlooked/swapped (None: 0.95)


@dataclass(frozen=True)
class OutOfSample:
    """Each audited photo's boxes from the fold model that did not see it, and which photos each fold trained on."""

    predictions: dict[str, tuple[Box, ...]]
    fold_of: dict[str, int]
    trained_on: tuple[tuple[str, ...], ...]  # per fold: its train and val photos
    seconds: float  # training and prediction time when computed (the cached run's, on a re-run)
    cached: bool
    key: str


@dataclass(frozen=True)
class LabelAudit:
    """What the audit found: each audited photo's quality, worst first, with the label version it scored."""

    qualities: tuple[PhotoQuality, ...]
    versions: dict[str, LabelVersion]
    splits: dict[str, str]
    test_audited: bool
    out_of_sample: OutOfSample


# ---- what is audited, and the folds ----------------------------------------------------------


def audited_labels(ws: Workspace, *, include_test: bool = True) -> dict[str, LabelVersion]:
    """The current hand-made or reviewed label of every photo that has one (not excluded); the test split's
    photos only when `include_test`."""
    splits = ws.store.labels.splits()
    labels = ws.store.labels.current_labels(AUDITED_SOURCES)
    return {
        p: v
        for p, v in sorted(labels.items())
        if not v.excluded and v.id is not None and (include_test or splits.get(p) != "test")
    }


def assign_folds(photos: Sequence[str], folds: int, seed: int = 0) -> dict[str, int]:
    """photo -> fold in [0, folds): photos in a seeded hash order dealt round-robin (sizes differ by one at most)."""
    if folds < 2:
        raise ValueError("folds must be at least 2")
    if len(photos) < folds * MIN_PHOTOS_PER_FOLD:
        raise ValueError(f"{len(photos)} photos cannot fill {folds} folds of {MIN_PHOTOS_PER_FOLD}")
    order = sorted(photos, key=lambda p: _digest(f"{seed}\0{p}"))
    return {p: i % folds for i, p in enumerate(order)}


def fold_splits(fold_of: Mapping[str, int], fold: int) -> dict[str, str]:
    """The view splits of fold `fold`: its photos "test" (predicted, never trained on), the others "train", one
    in VAL_EVERY of them "val" (picks the best epoch)."""
    splits: dict[str, str] = {}
    others = sorted((p for p, f in fold_of.items() if f != fold), key=_digest)
    for i, photo in enumerate(others):
        splits[photo] = "val" if i % VAL_EVERY == 0 else "train"
    splits.update({p: "test" for p, f in fold_of.items() if f == fold})
    return splits


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- out-of-sample predictions (cached) ------------------------------------------------------


def cache_key(labels: Mapping[str, LabelVersion], settings: LabelAuditSettings, model_spec: str, seed: int) -> str:
    """What the predictions depend on: the label versions, folds, epochs, image size, model and seed."""
    what = {
        "versions": sorted((p, v.id) for p, v in labels.items()),
        "folds": settings.folds,
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "model": model_spec,
        "seed": seed,
    }
    return _digest(json.dumps(what, sort_keys=True))[:16]


def audit_dir(ws: Workspace) -> Path:
    """Where the audit caches its predictions: the latest round's folder (round 0's before any round)."""
    rounds = ws.store.rounds.rounds()
    latest = max(rounds, key=lambda r: (r.round_no, r.attempt), default=None)
    folder = ws.round_dir(latest.round_no, latest.attempt) if latest else ws.round_dir(0)
    return folder / "label-audit"


def out_of_sample_predictions(
    ws: Workspace, labels: Mapping[str, LabelVersion], settings: LabelAuditSettings, progress: Progress | None = None
) -> OutOfSample:
    """Each labelled photo predicted by the fold model that never saw it (read from the cache when there)."""
    model_spec = resolve_model(ws, 0, settings.model or ws.config.model)
    key = cache_key(labels, settings, model_spec, ws.config.seed)
    cached = _read_cache(audit_dir(ws) / key / "predictions.json", key)
    if cached is not None:
        return cached
    began = time.perf_counter()
    fold_of = assign_folds(list(labels), settings.folds, ws.config.seed)
    predictions: dict[str, tuple[Box, ...]] = {}
    trained_on: list[tuple[str, ...]] = []
    for fold in range(settings.folds):
        if progress:
            progress(f"fold {fold + 1}/{settings.folds}: training on {sum(f != fold for f in fold_of.values())} photos")
        found, seen = _run_fold(ws, labels, fold_of, fold, settings, model_spec, audit_dir(ws) / key / f"fold-{fold}")
        predictions.update(found)
        trained_on.append(seen)
    result = OutOfSample(predictions, fold_of, tuple(trained_on), time.perf_counter() - began, False, key)
    _write_cache(audit_dir(ws) / key / "predictions.json", result)
    return result


def _run_fold(
    ws: Workspace,
    labels: Mapping[str, LabelVersion],
    fold_of: Mapping[str, int],
    fold: int,
    settings: LabelAuditSettings,
    model_spec: str,
    workdir: Path,
) -> tuple[dict[str, tuple[Box, ...]], tuple[str, ...]]:
    """Train fold `fold`'s model and predict its held-out photos; returns them and the photos it trained on."""
    splits = fold_splits(fold_of, fold)
    view = build_training_view(ws, workdir / "view", splits, dict(labels))
    seen = tuple(rel for split in ("train", "val") for _, rel in view.images[split])
    if not view.images["train"] or not view.images["val"]:
        raise WorkspaceError(f"fold {fold + 1}: too few labelled photos to train; use fewer --folds")
    detector = _fold_detector(ws, model_spec, settings)
    detector.train(view, _train_settings(ws, settings), workdir / "work")
    held_out = [p for p, s in splits.items() if s == "test"]
    with _torch_threads_kept():  # Ultralytics' predictor sets the process's torch threads to cpu_count - 1
        found = predict_held_out(ws, detector, held_out, settings)
    shutil.rmtree(workdir, ignore_errors=True)  # the weights and view are not needed once the fold has predicted
    return found, seen


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Leave the process's torch thread count as it was (the audit runs inside commands and tests that set it)."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fold_detector(ws: Workspace, model_spec: str, settings: LabelAuditSettings) -> Detector:
    """A fresh network of the round recipe (from the workspace's pretrained checkpoint when one is set)."""
    build: dict[str, Any] = {}
    if starts_fresh(model_spec) and ws.config.pretrained:
        build["pretrained"] = pretrained_path(ws, ws.config.pretrained)
    return make_detector(model_spec, ws.config.classes, **build)


def _train_settings(ws: Workspace, settings: LabelAuditSettings) -> TrainSettings:
    """The fold's train arguments (the round recipe at the audit's budget; the workspace's seed)."""
    return TrainSettings(
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        seed=ws.config.seed,
        workers=0,
    )


def predict_held_out(
    ws: Workspace, detector: Detector, photos: Sequence[str], settings: LabelAuditSettings
) -> dict[str, tuple[Box, ...]]:
    """Each photo's boxes down to PREDICT_FLOOR, in its full displayed frame (cleanlab reads the low ones too)."""
    records = {r.path: r for r in ws.store.labels.images()}

    def decoded() -> Iterator[DecodedPhoto]:
        for path in photos:
            rgb, sx, sy = decode_displayed(ws.image_path(path), settings.imgsz)
            yield DecodedPhoto(rgb, sx, sy, (records[path].width, records[path].height))

    found = predict_photos(
        detector, decoded(), conf=PREDICT_FLOOR, imgsz=settings.imgsz, batch=settings.batch, device=settings.device
    )
    return {p: tuple(boxes) for p, boxes in zip(photos, found.boxes, strict=True)}


def _write_cache(path: Path, result: OutOfSample) -> None:
    """predictions.json: the key, folds, what each fold trained on, and each photo's boxes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "key": result.key,
        "seconds": round(result.seconds, 1),
        "fold_of": result.fold_of,
        "trained_on": [list(t) for t in result.trained_on],
        "predictions": {p: [b.to_dict() for b in boxes] for p, boxes in sorted(result.predictions.items())},
    }
    atomic_write_text(path, json.dumps(body, indent=1))


def _read_cache(path: Path, key: str) -> OutOfSample | None:
    """The cached predictions of `key` (None when absent or written for another key)."""
    if not path.is_file():
        return None
    body = json.loads(path.read_text())
    if body.get("key") != key:
        return None
    return OutOfSample(
        predictions={p: tuple(Box.from_dict(b) for b in boxes) for p, boxes in body["predictions"].items()},
        fold_of={p: int(f) for p, f in body["fold_of"].items()},
        trained_on=tuple(tuple(t) for t in body["trained_on"]),
        seconds=float(body.get("seconds") or 0.0),
        cached=True,
        key=key,
    )


# ---- the audit -------------------------------------------------------------------------------


def run_label_audit(ws: Workspace, settings: LabelAuditSettings, progress: Progress | None = None) -> LabelAudit:
    """Predict every audited photo out of sample and score its label with cleanlab, worst photo first."""
    labels = audited_labels(ws, include_test=settings.include_test)
    if len(labels) < settings.folds * MIN_PHOTOS_PER_FOLD:
        raise WorkspaceError(f"{ws.root}: {len(labels)} labelled photos are too few for {settings.folds} folds")
    oos = out_of_sample_predictions(ws, labels, settings, progress)
    photos = sorted(labels)
    qualities = score_labels(
        photos,
        [labels[p].boxes for p in photos],
        [oos.predictions.get(p, ()) for p in photos],
        ws.config.classes,
        high_probability=settings.high_probability,
    )
    record = {"at": now_iso(), "photos": len(photos), "test_audited": settings.include_test}
    ws.store.set_meta(LABEL_AUDIT_KEY, json.dumps(record))  # the benchmark report says whether its test split was
    return LabelAudit(tuple(qualities), dict(labels), ws.store.labels.splits(), settings.include_test, oos)
