"""Commands that turn the loop: `retrain --round N`, `finalize`, and `demo` (the whole loop on
synthetic photos). This is the top layer: it composes the stages (review queue pull/push,
training rounds, the pre-annotation engine) through their public functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json, progress_bar, say
from annotator.errors import LabelStudioError, WorkspaceError


def _train_and_predict(ws, round_no: int, attempt: int, *, model: str, epochs: int, imgsz: int, batch: int,
                       device: str | None, verbose: bool, workers: int = 0):
    from bootstrap.rounds import predict_round, stage_reached, train_round

    with progress_bar() as bar:
        train_task = bar.add_task(f"training round {round_no}", total=epochs)
        detector = train_round(ws, round_no, attempt, model_spec=model, epochs=epochs, imgsz=imgsz, batch=batch,
                               device=device, verbose=verbose,
                               progress=lambda done, total: bar.update(train_task, completed=done, total=total))
        bar.update(train_task, completed=epochs)
        row = ws.store.round_row(round_no, attempt)
        if stage_reached(row, "predicted"):
            return None
        pred_task = bar.add_task("pre-annotating unreviewed photos", total=None)
        return predict_round(ws, detector, round_no, attempt, imgsz=imgsz, device=device,
                             workers=workers, progress=lambda n: bar.advance(pred_task, n))


def print_curve(curve: list[dict]) -> None:
    from bootstrap.curve import curve_table

    console.print(curve_table(curve))


@handle_errors
def retrain_command(
    round_no: Annotated[int, typer.Option("--round", help="The round to run (round 0 is `bootstrap`).")],
    workspace: WorkspaceOption = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Make a new attempt at a finished round (the old one stays).")] = False,
    pull: Annotated[bool, typer.Option("--pull/--refuse-unpulled",
                                       help="Pull the latest reviews first (default), or refuse if any are unpulled.")] = True,
    queue: Annotated[bool, typer.Option("--queue/--no-queue", help="Talk to Label Studio (pull before, push after).")] = True,
    url: Annotated[Optional[str], typer.Option(help="Label Studio URL (default: the workspace's own server).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Start from this YAML/weights instead of round N-1's weights.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: retrain_epochs in annotator.toml).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Image size.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    device: Annotated[Optional[str], typer.Option(help="'cpu', '0' or '0,1'.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose")] = False,
    json_out: JsonOption = False,
) -> None:
    """Pull reviews, snapshot, retrain (warm start), evaluate on the test split, re-predict, re-push."""
    from annotator.store import Workspace
    from bootstrap.curve import learning_curve
    from bootstrap.rounds import finish_round, plan_retrain, round_model_path, stage_reached

    with Workspace.open(workspace, write=True) as ws:
        attempt = plan_retrain(ws, round_no, force=force)
        row = ws.store.round_row(round_no, attempt)
        client = None
        if queue:
            from review_queue.labelstudio.client import connect
            from review_queue.labelstudio.pull import pending_annotations, pull as pull_reviews

            client = connect(ws, url=url)
            if not stage_reached(row, "trained"):
                if pull:
                    say("[bold]retrain:[/] pulling the latest reviews from Label Studio")
                    pull_reviews(ws, client)
                else:
                    waiting = pending_annotations(ws, client)
                    if waiting:
                        raise WorkspaceError(f"{waiting} reviewed photos in Label Studio are not pulled yet; run "
                                             "`annotator review pull` or retrain with --pull")
        cfg = ws.config
        spec = model or str(round_model_path(ws, round_no - 1))
        say(f"[bold]retrain:[/] round {round_no} from {'round ' + str(round_no - 1) + ' weights' if not model else model}")
        stats = _train_and_predict(ws, round_no, attempt, model=spec, epochs=epochs or cfg.retrain_epochs,
                                   imgsz=imgsz or cfg.imgsz, batch=batch or cfg.batch, device=device, verbose=verbose)
        pushed = None
        if client is not None:
            from review_queue.labelstudio.push import push

            say("[bold]retrain:[/] pushing the new predictions (untouched tasks only)")
            pushed = push(ws, client)
        report = finish_round(ws, round_no, attempt, pushed=pushed.to_dict() if pushed else None)
        curve = learning_curve(ws)
    if json_out:
        print_json({"round": round_no, "attempt": attempt, "report": str(report), "curve": curve,
                    "preannotate": stats.to_dict() if stats else None,
                    "push": pushed.to_dict() if pushed else None})
        return
    print_curve(curve)
    console.print(f"round report: {report}")


@handle_errors
def finalize_command(
    workspace: WorkspaceOption = Path("."),
    threshold: Annotated[Optional[float], typer.Option(help="Highest correction rate (0-1) of the last reviewed batch "
                                                          "at which the rest is accepted; default: recommended from the data.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Export folder (default: WORKSPACE/export).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Accept the remaining predictions as auto-accepted labels and export VOC, YOLO and COCO."""
    from annotator.store import Workspace
    from bootstrap.finalize import finalize

    with Workspace.open(workspace, write=True) as ws:
        result = finalize(ws, threshold=threshold, export_dir=out)
    if json_out:
        print_json(result)
        return
    console.print(f"correction rate of round {result['last_reviewed_round']}'s reviewed batch: "
                  f"{result['correction_rate']:.1%} <= threshold {result['threshold']:.1%} "
                  f"(recommended {result['recommended_threshold']:.1%})")
    console.print(f"auto-accepted {result['auto_accepted']} photos; exported to "
                  + ", ".join(e["out"] for e in result["exports"].values()))


@handle_errors
def demo_command(
    folder: Annotated[Path, typer.Argument(help="A new folder for the demo (data, workspace, Label Studio).")] = Path("demo-workspace"),
    images: Annotated[int, typer.Option(help="Synthetic photos.")] = 240,
    review_fraction: Annotated[float, typer.Option(help="Share of the queue the simulated dermatologist reviews.")] = 0.5,
    epochs: Annotated[Optional[int], typer.Option(help="Round-0 epochs (default: 40 on CPU, 60 on GPU).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Image size (default: 320 on CPU, 640 on GPU).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Label Studio port (default: a free one).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """The whole loop on SIMULATED photos: synth, init, bootstrap, serve, push, simulate, pull, retrain."""
    from bootstrap.demo import DemoSettings, run_demo

    run_demo(DemoSettings(folder=folder, images=images, review_fraction=review_fraction, epochs=epochs,
                          imgsz=imgsz, port=port, seed=seed))
