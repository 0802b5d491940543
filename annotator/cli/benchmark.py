"""`annotator benchmark`: train detector families on the workspace's splits and compare them
(and dermatologists' answers) on the test split; thin layer over `training.benchmark`.

The models `--models` names and accepts are the detector registry's (`training.detectors.registry`): its help is
written when the command's options are listed (`BenchmarkCommand`), so a family registered by any imported module
appears, and other commands never import the detector families."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.progress import TaskID
from typer.core import TyperCommand, TyperOption

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json, progress_bar, say, tagged
from training.constants import BOOTSTRAP_RESAMPLES  # a constant alone: no detector family is imported
from training.protocol import PROFILES  # the profiles' table alone, likewise

if TYPE_CHECKING:
    from training.benchmark import BenchmarkSettings
    from training.results import BenchmarkResult

T = TypeVar("T")


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
    profile: Annotated[
        Optional[str],
        typer.Option(
            help=f"The protocol: {' | '.join(PROFILES)} (docs/benchmark-protocol.md): the models, the photos, the "
            "image size, early stopping and a time budget per family, each family's own recipe. The flags below "
            "override its values. Without one: a smoke run of --epochs with the tool's recipe."
        ),
    ] = None,
    models: Annotated[
        Optional[str],
        typer.Option(
            "--models",
            "-m",
            help="Comma list of model names, a local .pt/.yaml path, or 'all' (BenchmarkCommand names the models).",
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            help="Training epochs per model, a ceiling under a profile (0: evaluate as built/loaded). Default: the "
            "profile's, else 30.",
        ),
    ] = None,
    imgsz: Annotated[
        Optional[int],
        typer.Option(
            min=32,
            max=8192,
            help="Input size (long side) for training and prediction. Default: the profile's, else 640.",
        ),
    ] = None,
    batch: Annotated[
        Optional[int], typer.Option(min=1, help="Training batch size. Default: the profile's, else 16.")
    ] = None,
    patience: Annotated[
        Optional[int], typer.Option(min=1, help="Epochs without a better val mAP50-95 before a model stops.")
    ] = None,
    budget_minutes: Annotated[
        Optional[float], typer.Option(min=0.1, help="Training minutes per model (its stopping rule's budget).")
    ] = None,
    max_photos: Annotated[
        Optional[int], typer.Option(min=1, help="Train + val photos kept (a fixed subset; the test split stays whole).")
    ] = None,
    pretrained: Annotated[
        Optional[list[str]],
        typer.Option(
            help="MODEL=PATH: the local checkpoint MODEL starts from (recorded in the report); repeat per model."
        ),
    ] = None,
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
    device: Annotated[
        Optional[str], typer.Option(help="cpu, 0, 0,1 ... (default: the profile's, else the first GPU, else CPU).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Training and bootstrap seed.")] = 0,
    resamples: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the 95% intervals (0: none).")
    ] = BOOTSTRAP_RESAMPLES,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="Data-loading worker processes. Default: the profile's, else 2.")
    ] = None,
    add_readers: Annotated[
        bool,
        typer.Option(
            "--add-readers",
            help="Score the readers beside the models of the finished benchmark in --out, without training again "
            "(the models are scored again from their recorded predictions).",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Compare detector families and human readers on the test split (Table 1 of the study)."""
    from annotator.store import Workspace
    from bootstrap.rounds import ensure_splits
    from training.benchmark import default_reader_files, run_benchmark

    if add_readers:
        _add_readers(workspace, out, readers, device_csv, json_out)
        return

    names, settings = _settings(
        profile,
        models,
        pretrained or [],
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        patience=patience,
        budget_minutes=budget_minutes,
        max_photos=max_photos,
        device=device,
        seed=seed,
        workers=workers,
        n_resamples=resamples,
    )
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
                ws, names, out_dir, settings=settings, readers=reader_files, device_csv=device_csv, progress=progress
            )
    _print_result(result, json_out)


def _add_readers(
    workspace: Path, out: Path | None, readers: list[Path] | None, device_csv: Path | None, json_out: bool
) -> None:
    """The readers scored beside a finished benchmark's models (`--add-readers`)."""
    from annotator.errors import ConfigError
    from annotator.store import Workspace
    from training.benchmark import add_readers, default_reader_files

    if out is None:
        raise ConfigError("--add-readers needs --out: the folder of the finished benchmark")
    with Workspace.open(workspace) as ws:
        reader_files = readers or default_reader_files(ws)
        if not reader_files:
            raise ConfigError(
                "no reads to add: name a reader CSV with --readers, or pull the reader study's reads first "
                "(`annotator review readers pull`)"
            )
        result = add_readers(ws, out, reader_files, device_csv)
    _print_result(result, json_out)


def _print_result(result: BenchmarkResult, json_out: bool) -> None:
    """The report's table and warnings (or the whole result as JSON) and where the files are."""
    if json_out:
        print_json(result.to_dict())
        return
    console.print(Path(result.files["markdown"]).read_text(), markup=False, soft_wrap=True)
    for warning in result.warnings:
        console.print(tagged("warning:", "yellow", warning), soft_wrap=True)
    console.print(
        f"report: {result.files['html']}\ntable: {result.files['markdown']}\njson: {result.files['json']}", markup=False
    )


def _settings(
    profile: str | None, models: str | None, pretrained: list[str], **given: Any
) -> tuple[list[str], BenchmarkSettings]:
    """The models and the benchmark's settings: the profile's, each replaced by a flag given (not None)."""
    from training.benchmark import BenchmarkSettings, default_models, parse_models, parse_pretrained
    from training.protocol import profile_named

    if profile is not None:
        _flagged("--profile", profile_named, profile)
    names = _flagged("--models", parse_models, models) if models is not None else default_models(profile)
    starts = _flagged("--pretrained", parse_pretrained, pretrained, names)
    return names, BenchmarkSettings.for_profile(profile, pretrained=starts, **given)


def _flagged(flag: str, parse: Callable[..., T], *args: Any) -> T:
    """parse(*args), its error prefixed with the flag the value came from."""
    from annotator.errors import ConfigError

    try:
        return parse(*args)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc
