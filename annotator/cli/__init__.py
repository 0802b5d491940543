"""The `annotator` command: thin typer layer (parse, call, render). Each stage's work lives in
its package; heavy imports (torch, ultralytics, the Label Studio SDK) happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, escape, print_json, progress_bar, tagged

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Human-in-the-loop labelling of pigmented skin lesion photos: ingest, bootstrap a detector, "
    "review in Label Studio, retrain, benchmark.",
)


@app.command()
@handle_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write images/, labels/ and truth/ into.")],
    images: Annotated[int, typer.Option("--images", "-n", min=1, help="Number of photos.")] = 200,
    labelled: Annotated[
        float, typer.Option("--labelled", min=0.0, max=1.0, help="Fraction hand-labelled (4,868/12,836 = 0.38).")
    ] = 0.38,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same photos).")] = 0,
    size: Annotated[str, typer.Option(help="small | phone | dslr (18 MP).")] = "small",
    workers: Annotated[int, typer.Option(min=1, help="Parallel processes.")] = 1,
    preset: Annotated[
        str, typer.Option(help="What the photos vary over: default | hard (see docs/synthetic-worlds.md).")
    ] = "default",
    json_out: JsonOption = False,
) -> None:
    """Write a synthetic PSL photo set (SIMULATED data, for demos and tests)."""
    from annotator.synthetic import generate, preset_world

    world = preset_world(preset)

    with progress_bar() as bar:
        task = bar.add_task("synthesising photos", total=images)
        summary = generate(
            out,
            images=images,
            labelled_fraction=labelled,
            seed=seed,
            size=size,
            workers=workers,
            progress=lambda n: bar.advance(task, n),
            world=world,
        )
    data = {
        "images": summary.images,
        "labelled": summary.labelled,
        "phone": summary.phone,
        "rotated": summary.rotated,
        "boxes_by_class": summary.boxes_by_class,
        "photos_by_class": summary.photos_by_class,
        "out": str(summary.out),
    }
    if json_out:
        print_json(data)
    else:
        console.print(
            f"wrote {summary.images} photos ({summary.labelled} hand-labelled, {summary.phone} phone) to "
            f"{out}/images, labels to {out}/labels, ground truth to {out}/truth",
            markup=False,
        )


@app.command()
@handle_errors
def init(
    workspace: Annotated[Path, typer.Argument(help="Workspace folder to create or update.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of photos (searched recursively).")],
    labels: Annotated[
        Optional[Path], typer.Option("--labels", help="Folder of labelImg XML (default: beside the photos).")
    ] = None,
    classes: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated class names (default: the six PSL classes). On an existing workspace: new classes "
            "are added after the existing ones, which keep their order."
        ),
    ] = None,
    xml_wins: Annotated[
        bool,
        typer.Option(
            "--xml-wins",
            help="Let a labelImg file edited after a dermatologist's review replace the reviewed label "
            "(kept in the history). Without it the reviewed label stays and the photo is flagged.",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Ingest photos and labelImg VOC XML; re-running adds what is new and picks up edited XML."""
    from annotator.classes import ClassOrderError, changed_classes, parse_class_list
    from annotator.config import Config, load_config
    from annotator.errors import ConfigError
    from annotator.ingest import ingest
    from annotator.store import Workspace

    for what, folder in (("--images", images), ("--labels", labels)):
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{what} {folder}: no such folder; check the path (nothing was created)")
    try:
        wanted = parse_class_list(classes) if classes is not None else None
    except ConfigError as exc:
        raise ConfigError(f"--classes {exc}") from exc
    workspace = workspace.resolve()
    class_change = ""
    if (workspace / "annotator.toml").exists():
        cfg = load_config(workspace)
        if cfg.images.resolve() != images.resolve():
            raise ConfigError(f"{workspace} already ingests {cfg.images}; use a new workspace for {images}")
        ws = Workspace.open(workspace, write=True)
        if wanted is not None and wanted != cfg.classes:
            try:
                new = changed_classes(cfg.classes, wanted, ws.store.labels.classes_in_use())
            except ClassOrderError as exc:
                ws.close()
                raise ConfigError(exc.phrased("--classes")) from exc
            ws.set_config(cfg.with_(classes=new))
            class_change = (
                f"classes {', '.join(new[len(cfg.classes) :])} added after the existing ones"
                if new[: len(cfg.classes)] == cfg.classes
                else f"classes are now {', '.join(new)} (were {', '.join(cfg.classes)}, unused by any label)"
            )
    else:
        cfg = Config(images=images.resolve(), labels=labels.resolve() if labels else None)
        if wanted is not None:
            cfg = cfg.with_(classes=wanted)
        ws = Workspace.create(workspace, cfg)
    with ws, progress_bar() as bar:
        task = bar.add_task("ingesting photos", total=None)
        report = ingest(
            ws,
            images=images,
            labels=labels or ws.config.labels,
            xml_wins=xml_wins,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        counts = ws.store.status_counts()
        class_names = ws.config.classes
    data = report.to_dict()
    data["classes"] = list(class_names)
    if json_out:
        print_json(data)
    else:
        _print_ingest_summary(report, workspace, class_change)
    hand_labelled = counts["images"] - counts["by_status"].get("unlabelled", 0)
    if counts["images"] == 0 or (hand_labelled == 0 and report.unknown_classes):
        raise ConfigError(_nothing_usable(report, images, class_names, counts["images"]))


def _print_ingest_summary(report, workspace: Path, class_change: str) -> None:
    if class_change:
        console.print(f"{class_change}; saved in annotator.toml", markup=False)
    console.print(
        f"scanned {report.scanned} photos: {report.added} added ({report.labelled} hand-labelled with "
        f"{report.boxes} boxes, {report.unlabelled} unlabelled), {report.already_known} already known, "
        f"{report.quarantined} quarantined",
        markup=False,
    )
    if report.updated or report.conflicts:
        console.print(
            f"{report.updated} labels updated from edited labelImg files, {report.conflicts} photos with "
            "conflicting labels flagged for review",
            markup=False,
        )
    colours = {"quarantined": "red", "needs review": "magenta"}
    for line in report.lines[:20]:
        console.print(
            tagged(f"  {line.action}", colours.get(line.action, "yellow"), f"{line.path}: {line.message}"),
            soft_wrap=True,
        )
    if len(report.lines) > 20:
        console.print(f"  ... and {len(report.lines) - 20} more")
    if report.lines:
        console.print(f"full report: {workspace / 'reports' / 'ingest.txt'}", markup=False)


def _nothing_usable(report, images: Path, class_names: tuple[str, ...], photos: int) -> str:
    """The one error line when init leaves a workspace with no photo, or with no hand label because of
    class names it does not know, with the fix."""
    if report.scanned == 0:
        return (
            f"no photos found in {images} (searched recursively for .jpg, .png, .tif, ...); check the --images folder"
        )
    if report.unknown_classes:
        unknown = list(report.unknown_classes)
        quarantined = len({ln.path for ln in report.lines if ln.reason == "unknown-class"})
        what = (
            f"nothing was ingested: all {report.scanned} photos were quarantined, {quarantined} of them"
            if photos == 0
            else f"no hand-labelled photo was ingested (only {photos} unlabelled): {quarantined} "
            "photos were quarantined"
        )
        return (
            f"{what} for class names not in this workspace ({', '.join(unknown)}); run "
            f"init again with --classes {','.join(unknown)} (or --classes {','.join((*class_names, *unknown))} "
            "to keep the current ones), or map the names to existing classes under [classes.aliases] in "
            "annotator.toml"
        )
    return (
        f"nothing was ingested: all {report.scanned} photos were quarantined; the reasons and fixes are in "
        "reports/ingest.txt in the workspace"
    )


@app.command()
@handle_errors
def status(workspace: WorkspaceOption = Path("."), json_out: JsonOption = False) -> None:
    """Where every photo stands: per status, class, device, split and round; the learning curve."""
    from annotator.store import Workspace
    from bootstrap.curve import curve_table, learning_curve

    with Workspace.open(workspace) as ws:
        data = ws.store.status_counts()
        curve = learning_curve(ws)
        data["rounds"] = [row.to_dict() for row in curve]
    if json_out:
        print_json(data)
        return
    console.print(
        f"[bold]{data['images']}[/] photos in {escape(str(workspace.resolve()))}  "
        f"({data['quarantined']} quarantined at ingest, see reports/ingest.txt"
        + (f"; {data['conflicts']} with conflicting labels, served first for review" if data["conflicts"] else "")
        + ")"
    )
    for title, key in (
        ("status", "by_status"),
        ("photos per class", "photos_by_class"),
        ("boxes per class", "boxes_by_class"),
        ("device", "by_device"),
        ("split", "by_split"),
        ("labels per round", "labels_by_round"),
    ):
        if data[key]:
            console.print(f"  {title:<17}" + "  ".join(f"{k}: {v}" for k, v in data[key].items()), markup=False)
    if data["rounds"]:
        console.print(curve_table(curve))


@app.command()
@handle_errors
def export(
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="voc | yolo | coco")] = "voc",
    include_predictions: Annotated[bool, typer.Option(help="Also export unreviewed model predictions.")] = False,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy",
            help="Copy the photos into the export (VOC, YOLO) instead of linking to the originals, so the "
            "export can be moved or shared on its own.",
        ),
    ] = False,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Write the current labels (displayed-frame pixels) as VOC, YOLO or COCO.

    VOC and YOLO exports hold the photos as symbolic links to the originals unless --copy is given;
    COCO writes only annotations.json (file names relative to the image folder)."""
    from annotator.export import export_labels
    from annotator.store import Workspace

    with Workspace.open(workspace) as ws:
        data = export_labels(ws, fmt, out, include_predictions=include_predictions, copy_images=copy)
    if json_out:
        print_json(data)
    else:
        how = {"copied": " (photos copied)", "linked": " (photos linked to the originals)"}.get(data["photo_files"], "")
        console.print(
            f"exported {data['photos']} photos, {data['boxes']} boxes as {fmt} to {out}{how}",
            markup=False,
            soft_wrap=True,
        )


def _mount_stages() -> None:
    from annotator.cli.audit import audit_app
    from annotator.cli.benchmark import BenchmarkCommand, benchmark
    from annotator.cli.loop import bootstrap_command, demo_command, finalize_command, retrain_command
    from annotator.cli.pretrain import pretrain_command
    from annotator.cli.review import review_app

    app.command("pretrain")(pretrain_command)
    app.command("bootstrap")(bootstrap_command)
    app.command("retrain")(retrain_command)
    app.command("finalize")(finalize_command)
    app.command("demo")(demo_command)
    app.command("benchmark", cls=BenchmarkCommand)(benchmark)
    app.add_typer(review_app, name="review", help="The Label Studio review queue.")
    app.add_typer(audit_app, name="audit", help="Audit what finalize would accept.")


_mount_stages()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
