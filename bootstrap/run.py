"""Round 0: fix the splits, train the first detector on the hand-labelled seed set, evaluate it
on the test split, and pre-annotate the unlabelled pool. Resumable stage by stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from annotator.store import Workspace
from bootstrap.preannotate import PreannotateStats
from bootstrap.rounds import predict_round, stage_reached, train_round, write_report


@dataclass(frozen=True)
class BootstrapSettings:
    model: str = "auto"
    epochs: int = 60
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    workers: int = 0
    verbose: bool = False


def resolve_model(spec: str) -> str:
    """`auto`: yolo11s on a GPU, yolo11n on the CPU (both built from the package's YAML)."""
    if spec != "auto":
        return spec
    import torch

    return "yolo11s.yaml" if torch.cuda.is_available() else "yolo11n.yaml"


@dataclass
class BootstrapResult:
    trained_now: bool
    metrics: dict
    preannotate: PreannotateStats | None


def run_bootstrap(ws: Workspace, settings: BootstrapSettings, *,
                  on_epoch: Callable[[int, int], None] | None = None,
                  on_predicted: Callable[[int], None] | None = None,
                  on_stage: Callable[[str], None] | None = None) -> BootstrapResult:
    row = ws.store.round_row(0)
    trained_before = stage_reached(row, "trained") and (ws.round_dir(0) / "model.pt").exists()
    if on_stage:
        on_stage("train" if not trained_before else "train (done before, loading round 0's model)")
    detector = train_round(ws, 0, model_spec=resolve_model(settings.model), epochs=settings.epochs,
                           imgsz=settings.imgsz, batch=settings.batch, device=settings.device,
                           verbose=settings.verbose, progress=on_epoch)
    if on_stage:
        on_stage("pre-annotate")
    stats = predict_round(ws, detector, 0, imgsz=settings.imgsz, device=settings.device,
                          workers=settings.workers, progress=on_predicted)
    write_report(ws, 0)
    row = ws.store.round_row(0)
    return BootstrapResult(trained_now=not trained_before, metrics=row["metrics"] if row else {}, preannotate=stats)
