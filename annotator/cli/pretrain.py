"""`annotator pretrain KIND`: make (or reuse) a start for round 0 without internet, and optionally use it.

Thin: parse options, open the workspace, call bootstrap.pretrain, render.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import TaskID

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, print_json, progress_bar


@handle_errors
def pretrain_command(
    kind: Annotated[
        str,
        typer.Argument(
            help="synthetic: a detector trained on synthetic faces; photos: the backbone self-supervised on this "
            "workspace's photos (no labels); both: the photos' backbone, then the synthetic detector grown from it."
        ),
    ] = "synthetic",
    workspace: WorkspaceOption = Path("."),
    synthetic_photos: Annotated[int, typer.Option("--synthetic-photos", min=10, help="Synthetic faces drawn.")] = 800,
    synthetic_epochs: Annotated[int, typer.Option("--synthetic-epochs", min=1, help="Epochs on them.")] = 10,
    preset: Annotated[str, typer.Option(help="Synthetic world: hard | default (docs/synthetic-worlds.md).")] = "hard",
    photo_epochs: Annotated[int, typer.Option("--photo-epochs", min=1, help="Self-supervised epochs.")] = 5,
    photo_size: Annotated[int, typer.Option("--photo-size", min=32, help="Crop side the backbone sees (px).")] = 160,
    model: Annotated[Optional[str], typer.Option(help="Network YAML (default: the model in annotator.toml).")] = None,
    device: Annotated[
        Optional[str], typer.Option(help="cpu, or a GPU index such as 0 (default: a GPU if any).")
    ] = None,
    use: Annotated[
        bool, typer.Option("--use", help="Write it and its sha256 into annotator.toml: round 0 starts from it.")
    ] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Make it again even when the cache holds it.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Make a pretrained start from synthetic faces and/or the workspace's own photos (cached; nothing downloaded)."""
    from annotator.errors import ConfigError
    from annotator.store import Workspace
    from annotator.synthetic import PRESETS
    from bootstrap.pretrain import PretrainSettings, StartKind, pretrain
    from training.pretraining.selfsupervised import SelfSupervisedSettings
    from training.pretraining.synthetic import SyntheticSettings

    if kind not in {k.value for k in StartKind}:
        raise ConfigError(f"unknown start {kind!r}; choose one of {', '.join(k.value for k in StartKind)}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings = PretrainSettings(
        kind=StartKind(kind),
        model=model,
        synthetic=SyntheticSettings(photos=synthetic_photos, epochs=synthetic_epochs, preset=preset),
        photos=SelfSupervisedSettings(imgsz=photo_size, epochs=photo_epochs),
        device=device,
        rebuild=rebuild,
    )
    with Workspace.open(workspace, write=True) as ws, progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done)

        result = pretrain(ws, settings, use=use, progress=report)
    if json_out:
        print_json(result.to_dict())
        return
    for step in result.steps:
        how = "reused from the cache" if step.reused else f"made in {step.provenance.seconds / 60:.1f} min"
        console.print(f"{step.provenance.key.kind} start: {step.path} ({step.provenance.tensors} tensors, {how})",
                      markup=False, soft_wrap=True)  # fmt: skip
    hint = "round 0 now starts from it (pretrained and pretrained_sha256 in annotator.toml)" if result.used else (
        f"use it: annotator bootstrap --pretrained {result.start.path}  (or run again with --use)"
    )  # fmt: skip
    console.print(hint, markup=False, soft_wrap=True)
