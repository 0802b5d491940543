"""`annotator bootstrap`: round 0 from the command line, with progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json, progress_bar, say


@handle_errors
def bootstrap_command(
    workspace: WorkspaceOption = Path("."),
    model: Annotated[Optional[str], typer.Option(help="YAML name (yolo11n.yaml) or local weights file; "
                                                      "default from annotator.toml ('auto': yolo11s on GPU, yolo11n on CPU).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default from annotator.toml).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Training and prediction size in pixels.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    device: Annotated[Optional[str], typer.Option(help="'cpu', '0', or a list '0,1' (DDP). Default: GPU if present.")] = None,
    workers: Annotated[int, typer.Option(help="Decode threads for pre-annotation (0: one per core).")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Ultralytics' own output.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Round 0: split, train on the hand-labelled photos, evaluate, pre-annotate the rest (resumable)."""
    from annotator.store import Workspace
    from bootstrap.run import BootstrapSettings, run_bootstrap

    with Workspace.open(workspace, write=True) as ws:
        cfg = ws.config
        settings = BootstrapSettings(model=model or cfg.model, epochs=epochs or cfg.epochs, imgsz=imgsz or cfg.imgsz,
                                     batch=batch or cfg.batch, device=device, workers=workers, verbose=verbose)
        with progress_bar() as bar:
            train_task = bar.add_task("training round 0", total=settings.epochs)
            pred_task = bar.add_task("pre-annotating", total=None, visible=False)

            def on_stage(stage: str) -> None:
                say(f"[bold]bootstrap:[/] {stage}")
                if stage == "pre-annotate":
                    bar.update(train_task, completed=settings.epochs)
                    bar.update(pred_task, visible=True)

            result = run_bootstrap(
                ws, settings, on_stage=on_stage,
                on_epoch=lambda done, total: bar.update(train_task, completed=done, total=total),
                on_predicted=lambda n: bar.advance(pred_task, n))
        test = result.metrics.get("test", {})
        data = {"trained_now": result.trained_now, "test": test,
                "preannotate": result.preannotate.to_dict() if result.preannotate else None}
    if json_out:
        print_json(data)
        return
    if test:
        console.print(f"round 0 test split: mAP50 {test.get('map50', 0):.3f}, mAP50-95 {test.get('map50_95', 0):.3f} "
                      f"on {test.get('images', 0)} photos")
    if result.preannotate:
        p = result.preannotate
        console.print(f"pre-annotated {p.predicted} photos ({p.boxes} boxes) at {p.images_per_second:.1f} img/s"
                      + (f"; {len(p.failed)} could not be decoded: {', '.join(x for x, _ in p.failed[:5])}"
                         if p.failed else ""))
    console.print(f"predictions are in the store and as VOC in {workspace.resolve() / 'labels'}; next: "
                  "`annotator review serve` and `annotator review push`")
