"""`annotator benchmark`: train detector families on the workspace's splits and compare them
(and dermatologists' answers) on the test split; thin layer over `training.benchmark`.

The models `--models` names and accepts are the detector registry's (`training.detectors.registry`): its help is
written when the command's options are listed (`BenchmarkCommand`), so a family registered by any imported module
appears, and other commands never import the detector families."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import TaskID
from typer.core import TyperCommand, TyperOption

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json, progress_bar, say, tagged
from training.constants import BOOTSTRAP_RESAMPLES  # a constant alone: no detector family is imported


def models_help() -> str:
    """The help of `--models`: every model name the registry knows, family by family."""
    from training.benchmark import benchmark_models

    return f"Comma list: {', '.join(benchmark_models())}, a local .pt/.yaml path, or 'all'."


class BenchmarkCommand(TyperCommand):
    """The `benchmark` command, its `--models` help read from the detector registry whenever its options are
    listed (help, docs, parsing) rather than when the CLI is built: mount it with `cls=BenchmarkCommand`."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer's vendored click types: its Context and Parameter
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.name == "models":
                param.help = models_help()
        return params


@handle_errors
def benchmark(
    workspace: WorkspaceOption = Path("."),
    models: Annotated[
        str,
        typer.Option(
            "--models",
            "-m",
            help="Comma list of model names, a local .pt/.yaml path, or 'all' (BenchmarkCommand names the models).",
        ),
    ] = "yolo11n,ssdlite",
    epochs: Annotated[int, typer.Option(min=0, help="Training epochs per model (0: evaluate as built/loaded).")] = 30,
    imgsz: Annotated[
        int, typer.Option(min=32, max=8192, help="Input size (long side) for training and prediction.")
    ] = 640,
    batch: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 16,
    out: Annotated[
        Optional[Path],
        typer.Option(help="Report folder (default: <workspace>/reports/benchmark-<time>).", file_okay=False),
    ] = None,
    readers: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--readers",
            help="Reader CSV (photo, reader, classes "
            "separated by ';' or '|'); repeat for several files. "
            "Default: the reader study's reads pulled by `annotator "
            "review readers pull`, when present.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    device_csv: Annotated[
        Optional[Path],
        typer.Option(
            "--device-csv",
            help="CSV (path, device) overriding the dslr/phone class read from EXIF.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, 0, 0,1 ... (default: first GPU, else CPU).")] = None,
    seed: Annotated[int, typer.Option(help="Training and bootstrap seed.")] = 0,
    resamples: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the 95% intervals (0: none).")
    ] = BOOTSTRAP_RESAMPLES,
    workers: Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")] = 2,
    json_out: JsonOption = False,
) -> None:
    """Compare detector families and human readers on the test split (Table 1 of the study)."""
    from annotator.store import Workspace
    from bootstrap.rounds import ensure_splits
    from training.benchmark import default_reader_files, parse_models, run_benchmark

    names = parse_models(models)
    with Workspace.open(workspace, write=True) as ws:
        # A fully hand-labelled workspace (the study's case) needs no bootstrap: the fixed splits are
        # made here if no command made them before, and are the same ones every round will use.
        ensure_splits(ws)
        reader_files = readers or default_reader_files(ws)
        if reader_files and not readers:
            say(f"reader rows: the reader study's reads in {reader_files[0]}")
        out_dir = out or ws.reports_dir / f"benchmark-{dt.datetime.now():%Y%m%d-%H%M%S}"
        say(f"benchmarking {', '.join(names)} on {ws.root} -> {out_dir}")
        with progress_bar() as bar:
            tasks: dict[tuple[str, str], TaskID] = {}

            def progress(stage: str, name: str, done: int, total: int) -> None:
                key = (stage, name)
                if key not in tasks:
                    label = f"{'training' if stage == 'train' else 'predicting'} {name}"
                    tasks[key] = bar.add_task(label, total=total)
                bar.update(tasks[key], completed=done, total=total)

            result = run_benchmark(
                ws,
                names,
                out_dir,
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                readers=reader_files,
                device_csv=device_csv,
                device=device,
                seed=seed,
                workers=workers,
                n_resamples=resamples,
                progress=progress,
            )
    if json_out:
        print_json(result.to_dict())
        return
    console.print(Path(result.files["markdown"]).read_text(), markup=False, soft_wrap=True)
    for warning in result.warnings:
        console.print(tagged("warning:", "yellow", warning), soft_wrap=True)
    console.print(
        f"report: {result.files['html']}\ntable: {result.files['markdown']}\njson: {result.files['json']}", markup=False
    )
