"""The commands that turn the loop: `bootstrap` (round 0), `retrain --round N`, `finalize` and
`demo`. Thin: parse and check options, open the workspace and the review queue, call
`bootstrap.rounds.run_round`, draw its progress, print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json
from annotator.progress import LoopProgress

ModelOption = Annotated[
    Optional[str], typer.Option(help="YAML name (yolo11n.yaml) or a local weights file; nothing is downloaded.")
]
EpochsOption = Annotated[Optional[int], typer.Option(min=1, help="Training epochs (default from annotator.toml).")]
ImgszOption = Annotated[
    Optional[int], typer.Option(min=32, max=8192, help="Training and prediction size in pixels (32-8192).")
]
BatchOption = Annotated[Optional[int], typer.Option(min=1, help="Batch size (default from annotator.toml).")]
DeviceOption = Annotated[
    Optional[str], typer.Option(help="'cpu', '0', or a list '0,1' (DDP). Default: GPU if present.")
]
PretrainedOption = Annotated[
    Optional[Path],
    typer.Option(
        help="A local checkpoint to start round 0 from, as the study started from ImageNet: Ultralytics detection "
        "or classification weights, or torchvision backbone weights (the tensors that fit are transferred and "
        "counted; name and sha256 go into the round's provenance). Default: [train] pretrained in annotator.toml."
    ),
]
WorkersOption = Annotated[int, typer.Option(min=0, help="Decode threads for pre-annotation (0: one per core).")]
VerboseOption = Annotated[bool, typer.Option("--verbose", help="Show Ultralytics' own output.")]


def _hooks(progress: LoopProgress):  # -> bootstrap.rounds.RoundHooks
    from bootstrap.rounds import RoundHooks

    return RoundHooks(on_stage=progress.stage, on_epoch=progress.epoch, on_predicted=progress.predicted)


def _print_round(result, curve) -> None:
    from bootstrap.curve import curve_table
    from bootstrap.evaluation import describe_map, round_map

    record = result.record
    if record.test_split or (record.trained and record.trained.test):
        console.print(f"round {result.round_no} test split: {describe_map(round_map(record))}", markup=False)
    if result.preannotate:
        p = result.preannotate
        console.print(
            f"pre-annotated {p.predicted} photos ({p.boxes} boxes) at {p.images_per_second:.1f} img/s"
            + (f"; {len(p.failed)} could not be decoded: {', '.join(x for x, _ in p.failed[:5])}" if p.failed else ""),
            markup=False,
        )
        if p.no_box_note():
            console.print(p.no_box_note(), markup=False)
    if result.pushed:
        console.print(
            f"review queue: {result.pushed.created} tasks created, {result.pushed.replaced} "
            f"predictions replaced, {result.pushed.kept_annotated} reviewed tasks left alone"
        )
    console.print(curve_table(curve))
    console.print(f"round report: {result.report}", markup=False)


def _run_round(
    workspace: Path,
    round_no: int,
    options: dict[str, Any],
    *,
    verbose: bool,
    force: bool,
    queue_url: str | None | Literal[False] = False,
    pull_first: bool = True,
) -> tuple[Any, list[Any]]:
    """Open the workspace (and the review queue unless `queue_url` is False), run the round with
    its progress drawn, and return (RoundResult, learning curve). Options left None come from
    annotator.toml."""
    from annotator.store import Workspace
    from bootstrap.curve import learning_curve
    from bootstrap.rounds import RoundSettings, run_round

    with Workspace.open(workspace, write=True) as ws:
        settings = RoundSettings.from_config(ws.config, round_no, verbose=verbose, **options)
        review_queue = None
        if queue_url is not False:
            from review_queue.queue import open_queue

            review_queue = open_queue(ws, url=queue_url)
        with LoopProgress() as progress:
            result = run_round(
                ws, round_no, settings, queue=review_queue, pull_first=pull_first, force=force, hooks=_hooks(progress)
            )
        return result, learning_curve(ws)


@handle_errors
def bootstrap_command(
    workspace: WorkspaceOption = Path("."),
    model: ModelOption = None,
    epochs: EpochsOption = None,
    imgsz: ImgszOption = None,
    batch: BatchOption = None,
    device: DeviceOption = None,
    workers: WorkersOption = 0,
    pretrained: PretrainedOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Train round 0 again as a new attempt (the old one stays).")
    ] = False,
    verbose: VerboseOption = False,
    json_out: JsonOption = False,
) -> None:
    """Round 0: split, train on the hand-labelled photos, evaluate, pre-annotate the rest (resumable)."""
    options = dict(
        model=model,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=workers,
        pretrained=None if pretrained is None else str(pretrained.expanduser().resolve()),
    )
    result, curve = _run_round(workspace, 0, options, verbose=verbose, force=force)
    if json_out:
        print_json(result.to_dict())
        return
    _print_round(result, curve)
    console.print(
        f"predictions are in the store and as VOC in {workspace.resolve() / 'labels'}; next: "
        "`annotator review serve` and `annotator review push`",
        markup=False,
    )


@handle_errors
def retrain_command(
    round_no: Annotated[int, typer.Option("--round", min=1, help="The round to run (round 0 is `bootstrap`).")],
    workspace: WorkspaceOption = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Make a new attempt at a finished round (the old one stays).")
    ] = False,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull/--refuse-unpulled", help="Pull the latest reviews first (default), or refuse if any are unpulled."
        ),
    ] = True,
    queue: Annotated[
        bool, typer.Option("--queue/--no-queue", help="Talk to Label Studio (pull before, push after).")
    ] = True,
    url: Annotated[Optional[str], typer.Option(help="Label Studio URL (default: the workspace's own server).")] = None,
    model: Annotated[
        Optional[str], typer.Option(help="Start from this YAML/weights instead of round N-1's weights.")
    ] = None,
    epochs: EpochsOption = None,
    imgsz: ImgszOption = None,
    batch: BatchOption = None,
    device: DeviceOption = None,
    workers: WorkersOption = 0,
    verbose: VerboseOption = False,
    json_out: JsonOption = False,
) -> None:
    """Pull reviews, snapshot, retrain (warm start), evaluate on the test split, re-predict, re-push."""
    options = dict(model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers)
    result, curve = _run_round(
        workspace, round_no, options, verbose=verbose, force=force, queue_url=url if queue else False, pull_first=pull
    )
    if json_out:
        print_json({**result.to_dict(), "curve": [row.to_dict() for row in curve]})
        return
    _print_round(result, curve)


@handle_errors
def finalize_command(
    workspace: WorkspaceOption = Path("."),
    out: Annotated[Optional[Path], typer.Option(help="Export folder (default: WORKSPACE/export).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Accept the remaining predictions as auto-accepted labels when their audit allows it (`annotator audit
    plan` first), and export VOC, YOLO and COCO."""
    from annotator.store import Workspace
    from bootstrap.finalize import finalize

    with Workspace.open(workspace, write=True) as ws:
        result = finalize(ws, export_dir=out)
    if json_out:
        print_json(result.to_dict())
        return
    if result.audit:
        console.print(f"acceptance audit: {result.audit['message']}", markup=False, soft_wrap=True)
    console.print(
        f"auto-accepted {result.auto_accepted} photos; exported to "
        + ", ".join(e["out"] for e in result.exports.values()),
        markup=False,
    )
    console.print(
        f"next: audit the hand labels before you benchmark (`annotator audit labels -w {workspace}`): the "
        "benchmark scores every model against them",
        markup=False,
        soft_wrap=True,
    )


@handle_errors
def demo_command(
    folder: Annotated[Path, typer.Argument(help="A new folder for the demo (data, workspace, Label Studio).")] = Path(
        "demo-workspace"
    ),
    images: Annotated[int, typer.Option(min=20, help="Synthetic photos.")] = 260,
    review_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the queue the simulated dermatologist reviews.")
    ] = 0.5,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help="Round-0 epochs (default: 40 on CPU, 60 on GPU).")
    ] = None,
    imgsz: Annotated[
        Optional[int], typer.Option(min=32, max=8192, help="Image size (default: 320 on CPU, 640 on GPU).")
    ] = None,
    port: Annotated[
        Optional[int], typer.Option(min=1, max=65535, help="Label Studio port (default: a free one).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    reviewers: Annotated[
        int,
        typer.Option(
            min=1, max=2, help="2: double review by two SIMULATED reviewers (10% slips) with a SIMULATED adjudicator."
        ),
    ] = 1,
) -> None:
    """The whole loop on SIMULATED photos: synth, init, bootstrap, serve, push, simulate, pull, retrain."""
    from bootstrap.demo import DemoSettings, run_demo

    run_demo(
        DemoSettings(
            folder=folder,
            images=images,
            review_fraction=review_fraction,
            epochs=epochs,
            imgsz=imgsz,
            port=port,
            seed=seed,
            reviewers=reviewers,
        )
    )
