"""`annotator review ...`: serve Label Studio, push predictions, pull reviews, simulate a reviewer, status.

Thin: parse options, open the workspace, call the stage, render. Errors are one red line; a
numeric option out of its range is refused by the parser before anything runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import httpx
import typer
from rich.progress import TaskID

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.console import console, err_console, escape, print_json, progress_bar, say, tagged
from annotator.errors import LabelStudioError
from annotator.store import Workspace
from review_queue.constants import ACCEPT_IOU
from review_queue.labelstudio.server import credentials_path, read_server_info, start_server, stop_server
from review_queue.reviewer import PROFILES, profile_named

# The Label Studio SDK takes ~2 s to import: the modules that need it are imported by the commands
# that use them, so `annotator --help`, `status` and `serve` stay quick.

review_app = typer.Typer(
    help="Review the model's boxes in Label Studio: serve it, push predictions, pull corrections.", no_args_is_help=True
)

UrlOption = Annotated[
    Optional[str],
    typer.Option(
        "--url",
        help="Label Studio to use (default: [review] url in annotator.toml, else the workspace's own server). "
        "Its token comes from LABEL_STUDIO_API_KEY.",
    ),
]


@contextlib.contextmanager
def _progress() -> Iterator:
    """A (step, done, total) callback drawing one rich bar per step."""
    with progress_bar() as bar:
        steps: dict[str, TaskID] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in steps:
                steps[step] = bar.add_task(step, total=total)
            bar.update(steps[step], completed=done, total=total)

        yield update


@review_app.command()
@handle_errors
def serve(
    workspace: WorkspaceOption = Path("."),
    stop: Annotated[bool, typer.Option("--stop", help="Stop the workspace's Label Studio.")] = False,
    port: Annotated[
        Optional[int], typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
    url: Annotated[
        Optional[str],
        typer.Option("--url", help="Use this running Label Studio instead of starting one (saved in annotator.toml)."),
    ] = None,
    team: Annotated[
        bool,
        typer.Option(
            "--team",
            help="Run Label Studio on PostgreSQL behind a multi-worker server, for several reviewers at once "
            "(see docs/team-server.md).",
        ),
    ] = False,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers", min=1, max=64, help="With --team: worker processes (default 2 x cores + 1, at most 8)."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Start the workspace's own Label Studio on 127.0.0.1 (offline), or stop it, or adopt an existing one."""
    if stop:
        stopped = stop_server(workspace.resolve())
        if json_out:
            print_json({"stopped": stopped})
        else:
            say("Label Studio stopped." if stopped else "Label Studio was not running.")
        return
    if url is not None:
        url = url.rstrip("/")
        try:
            ok = httpx.get(url + "/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            raise LabelStudioError(
                f"Label Studio at {url} is not reachable; check the address, or start the "
                "workspace's own server with `annotator review serve`"
            )
        with Workspace.open(workspace, write=True) as ws:
            ws.set_config(ws.config.with_(label_studio_url=url))
        if json_out:
            print_json({"url": url})
        else:
            console.print(
                f"Using Label Studio at {url} (saved in annotator.toml). Set LABEL_STUDIO_API_KEY to "
                "your token from its Account & Settings page.",
                soft_wrap=True,
                markup=False,
            )
        return
    with Workspace.open(workspace) as ws:
        say("Starting Label Studio (the first start takes up to a minute)...")
        info = start_server(ws, port=port, team=team, workers=workers)
        creds = credentials_path(ws.root)
        configured = ws.config.label_studio_url
    if json_out:
        print_json(
            {
                "url": info.url,
                "pid": info.pid,
                "port": info.port,
                "database": info.database,
                "workers": info.workers,
                "credentials": str(creds),
                "log": info.log,
            }
        )
        return
    console.print(f"Label Studio is running at [bold]{escape(info.url)}[/]", soft_wrap=True)
    console.print(
        f"Log in with the email and password in {creds} (readable only by you).", soft_wrap=True, markup=False
    )
    console.print("Stop it with `annotator review serve --stop`.", soft_wrap=True)
    if configured and configured.rstrip("/") != info.url:
        say(
            tagged(
                "note:",
                "yellow",
                f"annotator.toml sets [review] url = {configured}; push and pull use that "
                "one. Remove it to use this server.",
            )
        )


@review_app.command()
@handle_errors
def push(
    workspace: WorkspaceOption = Path("."),
    url: UrlOption = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Tasks per import request.")] = 1000,
    new_project: Annotated[
        bool, typer.Option("--new-project", help="Start a new Label Studio project (when the old one is gone).")
    ] = False,
    reviewers: Annotated[
        Optional[int],
        typer.Option(
            "--reviewers",
            min=1,
            max=10,
            help="Independent reviews per task (2: double review with adjudication; default: keep the setting).",
        ),
    ] = None,
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap", min=0.01, max=1.0, help="Share of tasks that get --reviewers reviews (the rest get one)."
        ),
    ] = 1.0,
    control: Annotated[
        float,
        typer.Option(
            "--control",
            min=0.0,
            max=0.5,
            help="Share of NEW tasks served without predictions, as 'draw from scratch' (an effort study: "
            "`review status` compares the measured seconds of both arms). Recorded; such a task never gets one.",
        ),
    ] = 0.0,
    json_out: JsonOption = False,
) -> None:
    """Send every photo whose current label is a model prediction to the review queue."""
    with Workspace.open(workspace, write=True) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.labelstudio.push import push as push_tasks

        client = connect(ws, url=url)
        with _progress() as update:
            result = push_tasks(
                ws,
                client,
                batch=batch,
                new_project=new_project,
                progress=update,
                reviewers=reviewers,
                overlap=overlap,
                control=control,
            )
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"Project {result.project_id} ({result.model_version}): {result.created} tasks created, "
        f"{result.replaced} predictions replaced, {result.up_to_date} up to date, "
        f"{result.kept_annotated} already annotated left alone"
        + (f", {result.adopted} adopted from an interrupted push" if result.adopted else "")
        + ".",
        soft_wrap=True,
        markup=False,
    )
    if result.control:
        console.print(
            f"{result.control} of the new tasks are served without predictions (draw from scratch: the effort "
            "study's control arm).",
            soft_wrap=True,
            markup=False,
        )
    if result.conflicts:
        console.print(
            f"{result.conflicts} photos with conflicting labels are served first (`annotator status` "
            "counts them; the task says why).",
            soft_wrap=True,
            markup=False,
        )


@review_app.command()
@handle_errors
def pull(
    workspace: WorkspaceOption = Path("."),
    url: UrlOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-read every annotated task, not only those changed since the last pull.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Store the reviewers' annotations as reviewed labels (safe to run again at any time)."""
    with Workspace.open(workspace, write=True) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.queue import LabelStudioQueue

        queue = LabelStudioQueue(connect(ws, url=url))
        with _progress() as update:
            result = queue.pull(ws, full=full, progress=update)  # then settles double reviews
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.stored} annotations stored ({result.current} current, {result.history} history), "
        f"{result.already_pulled} already pulled, {result.skipped} skipped by reviewers "
        f"({'full re-sync: ' + result.reason if result.full else 'changed tasks only'}).",
        soft_wrap=True,
        markup=False,
    )
    if result.deleted:
        err_console.print(
            f"[yellow]{len(result.deleted)} pulled annotations were deleted in Label Studio[/] (their "
            f"reviews stay in the history; listed in {escape(str(result.issues_file))})",
            soft_wrap=True,
        )
    if result.fixed:
        err_console.print(
            f"[yellow]{len(result.fixed)} reviewed boxes clipped to the photo or left out[/] (the "
            f"reviews are stored; listed in {escape(str(result.issues_file))}):",
            soft_wrap=True,
        )
        for fix in result.fixed[:20]:
            err_console.print(
                f"  task {fix['task_id']} ({fix['photo']}): {fix['message']}", soft_wrap=True, markup=False
            )
    if result.issues:
        err_console.print(
            f"[yellow]{len(result.issues)} annotations not merged[/] (listed in {escape(str(result.issues_file))}):",
            soft_wrap=True,
        )
        for issue in result.issues[:20]:
            err_console.print(
                f"  task {issue['task_id']} ({issue['photo']}): {issue['problem']}", soft_wrap=True, markup=False
            )


def _known_profile(name: str) -> str:
    """Refuse an unknown reviewer profile in the parser, with the known ones (`review_queue.reviewer.PROFILES`)."""
    if name not in PROFILES:
        raise typer.BadParameter(f"unknown reviewer profile {name!r}; known: {', '.join(PROFILES)}")
    return name


@review_app.command()
@handle_errors
def simulate(
    workspace: WorkspaceOption = Path("."),
    url: UrlOption = None,
    count: Annotated[int, typer.Option("--count", min=1, help="How many queued tasks to annotate.")] = 10,
    truth: Annotated[
        Optional[Path],
        typer.Option("--truth", help="Ground-truth VOC folder (default: truth/ beside the image folder)."),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            metavar="|".join(PROFILES),
            callback=_known_profile,
            help="How the simulated reviewer reviews: realistic (misses small and faint lesions, confuses "
            "look-alike classes, anchors on the predictions; docs/reviewer-profiles.md) or careful (an oracle "
            "that copies the truth: tests only).",
        ),
    ] = "realistic",
    noise: Annotated[
        float,
        typer.Option(
            "--noise", min=0.0, max=1.0, help="Probability of a mild reviewer slip, 0-1, on top of the profile."
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the reviewer's draws.")] = 0,
    accept_iou: Annotated[
        float,
        typer.Option(
            "--accept-iou",
            min=0.0,
            max=1.0,
            help="Leave a predicted box as it is when its IoU with the true box is at least this (1.0: fix "
            "every box that is not pixel-exact).",
        ),
    ] = ACCEPT_IOU,
    reviewer: Annotated[
        Optional[int],
        typer.Option(
            "--reviewer",
            min=1,
            max=9,
            help="Act as simulated reviewer N of a double review (its own Label Studio user).",
        ),
    ] = None,
    adjudicate: Annotated[
        bool, typer.Option("--adjudicate", help="Act as the simulated adjudicator on the adjudication project.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """SIMULATION: annotate queued tasks from ground truth, as a dermatologist would (--profile)."""
    with Workspace.open(workspace) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.simulate import simulate as simulate_review

        client = connect(ws, url=url)
        with _progress() as update:
            if adjudicate:
                from review_queue.simulate import simulate_adjudication

                result = simulate_adjudication(
                    ws, client, truth_dir=truth, noise=noise, seed=seed, count=count, profile=profile_named(profile)
                )
            else:
                result = simulate_review(
                    ws,
                    client,
                    count=count,
                    truth_dir=truth,
                    noise=noise,
                    seed=seed,
                    accept_iou=accept_iou,
                    progress=update,
                    reviewer=reviewer,
                    profile=profile_named(profile),
                )
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"Simulated reviewer annotated {result.annotated} tasks ({result.lead_time_s:.0f} s of modelled "
        f"review time; actions: {result.actions}).",
        soft_wrap=True,
        markup=False,
    )
    if result.missing_truth:
        say(f"{len(result.missing_truth)} photos had no ground truth and were left in the queue.", style="yellow")


@review_app.command()
@handle_errors
def status(
    workspace: WorkspaceOption = Path("."),
    server: Annotated[bool, typer.Option("--server", help="Also ask Label Studio for its counts.")] = False,
    effort: Annotated[
        bool,
        typer.Option(
            "--effort",
            help="Fit the effort model's per-action seconds to the reviewers' measured times (Label Studio's "
            "lead_time) and print them with their spread.",
        ),
    ] = False,
    url: UrlOption = None,
    json_out: JsonOption = False,
) -> None:
    """How far the review is: pushed, reviewed, excluded, remaining, how often the model was corrected, and
    what reviewing measurably cost."""
    with Workspace.open(workspace) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.status import review_status

        client = connect(ws, url=url) if server else None
        summary = review_status(ws, client)
        local = read_server_info(ws.root)
        measured = _measured_lines(ws, fit=effort)
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(
        f"pushed {summary.pushed}, reviewed {summary.reviewed} (excluded {summary.excluded}), "
        f"remaining {summary.remaining}",
        soft_wrap=True,
    )
    from review_queue.status import correction_lines

    for line in correction_lines(summary.corrections):
        console.print(line, soft_wrap=True, markup=False)
    from review_queue.agreement import agreement_lines

    for line in agreement_lines(summary.agreement) if summary.agreement else []:
        console.print(line, soft_wrap=True, markup=False)
    for line in measured:
        console.print(line, soft_wrap=True, markup=False)
    console.print(
        f"local Label Studio: {local.url}" if local else "local Label Studio: not running", soft_wrap=True, markup=False
    )


def _measured_lines(ws: Workspace, *, fit: bool) -> list[str]:
    """Measured seconds per photo by what reviewers did; with `fit`, the per-action times fitted to them."""
    from bootstrap.measured_effort import (
        MIN_REVIEWS_PER_TERM,
        arm_agreement,
        compare_arms,
        fit_effort,
        measured_by_group,
        timed_reviews,
    )
    from review_queue.edits import EditKind

    current = ws.store.labels.current_labels().values()
    reviews = timed_reviews(current)
    lines = [
        f"measured by Label Studio, {g.group}: {g.mean_seconds:.1f} s per photo over {g.photos} photos"
        for g in measured_by_group(reviews)
    ] or ["measured by Label Studio: none (no real reviewer's timed review yet; simulated ones are not counted)"]
    lines.append(compare_arms(current).line())
    agreement = arm_agreement(ws)
    if agreement.reviewed.photos or agreement.control.photos:
        lines.append(agreement.line())
    if fit:
        result = fit_effort(reviews)
        needed = MIN_REVIEWS_PER_TERM * (1 + len(EditKind))
        lines += result.lines() if result else [f"too few measured reviews to fit: {len(reviews)} (need {needed})"]
    return lines


readers_app = typer.Typer(
    help="The reader study: the test split read blinded by dermatologists in Label Studio, scored by "
    "`annotator benchmark`.",
    no_args_is_help=True,
)
review_app.add_typer(readers_app, name="readers")


@readers_app.command("push")
@handle_errors
def readers_push(
    workspace: WorkspaceOption = Path("."),
    url: UrlOption = None,
    readers: Annotated[
        int, typer.Option("--readers", min=1, max=20, help="Readers: each reads every test photo once.")
    ] = 2,
    json_out: JsonOption = False,
) -> None:
    """Put the fixed test split into a readers' project, without predictions (blinded)."""
    with Workspace.open(workspace, write=True) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.readers import push_readers

        result = push_readers(ws, connect(ws, url=url), readers=readers)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"Readers' project {result.project_id}: {result.created} test photos added, "
        f"{result.already_there} already there; {result.readers} reads asked per photo. Each reader logs "
        "in to Label Studio as themselves and opens the project's label stream.",
        soft_wrap=True,
        markup=False,
    )


@readers_app.command("pull")
@handle_errors
def readers_pull(workspace: WorkspaceOption = Path("."), url: UrlOption = None, json_out: JsonOption = False) -> None:
    """Write the readers' reads to reports/reader-reads.csv, the reader rows of `annotator benchmark`."""
    with Workspace.open(workspace, write=True) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.readers import pull_readers
        from training.readers import READER_READS_FILE

        result = pull_readers(ws, connect(ws, url=url), out=ws.reports_dir / READER_READS_FILE)
    if json_out:
        print_json(result.to_dict())
        return
    reads = ", ".join(f"{reader} {n}" for reader, n in result.reads.items()) or "none yet"
    console.print(
        f"Reads of {result.photos} test photos: {reads} -> {result.reads_file} (`annotator benchmark` "
        "scores them as reader rows).",
        soft_wrap=True,
        markup=False,
    )


@readers_app.command("simulate")
@handle_errors
def readers_simulate(
    workspace: WorkspaceOption = Path("."),
    url: UrlOption = None,
    readers: Annotated[int, typer.Option("--readers", min=1, max=20)] = 2,
    truth: Annotated[
        Optional[Path],
        typer.Option("--truth", help="Ground-truth VOC folder (default: truth/ beside the image folder)."),
    ] = None,
    noise: Annotated[
        float, typer.Option("--noise", min=0.0, max=1.0, help="Probability of a misread photo, 0-1.")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    profile: Annotated[
        Optional[str],
        typer.Option(
            "--profile",
            help="Read as this simulated reviewer profile (careful, realistic) boxes the photo blind: its misses "
            "and confusions (--noise is then not used). Default: the truth's classes, with --noise.",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """SIMULATION: simulated readers (their own Label Studio users) read every test photo from ground truth."""
    with Workspace.open(workspace) as ws:
        from review_queue.labelstudio.client import connect
        from review_queue.readers import simulate_readers
        from review_queue.reviewer import profile_named

        reviewer = None if profile is None else profile_named(profile)
        done = simulate_readers(
            ws, connect(ws, url=url), readers=readers, truth_dir=truth, noise=noise, seed=seed, profile=reviewer
        )
    if json_out:
        print_json(done)
        return
    console.print("Simulated reads: " + ", ".join(f"{r} {n}" for r, n in done.items()), soft_wrap=True, markup=False)
