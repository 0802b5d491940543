"""`annotator demo`: the whole loop, on SIMULATED photos and a SIMULATED dermatologist.

synth -> init -> serve Label Studio -> round 0 (train, pre-annotate, push) -> simulated review of
part of the queue -> round 1 (pull, warm-start train, re-predict, re-push) -> learning curve -> the
acceptance audit (a SIMULATED auditor boxes a random sample of what finalize would accept, blind) -> finalize. Both
rounds run `bootstrap.rounds.run_round`, the same sequence as `bootstrap` and `retrain`. Label Studio is left
running so a person can open the queue. Every step is idempotent: rerunning the demo on the
same folder continues where it stopped.

With `reviewers=2` (`annotator demo --reviewers 2`) the review is double, as in the study: after
round 0's push the project asks for two reviews per task, two SIMULATED reviewers (their own Label
Studio users, each with 10% slips) review the same photos, round 1's pull merges agreeing reviews and
sends disagreeing ones to the adjudication project, a SIMULATED adjudicator settles them and a last
pull stores the adjudicated labels; the agreement figures are printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from annotator.config import Config
from annotator.console import console, progress_bar, say, tagged
from annotator.progress import LoopProgress
from annotator.rounds import Stage, stage_reached
from annotator.store import Workspace
from bootstrap.curve import CurveRow, curve_table, effort_verdict, learning_curve
from bootstrap.evaluation import MIN_TEST_PHOTOS, describe_map, round_map
from bootstrap.rounds import RoundHooks, RoundSettings, run_round
from review_queue.queue import ReviewQueue


@dataclass(frozen=True)
class DemoSettings:
    folder: Path
    images: int = 260
    labelled_fraction: float = 0.47  # 122 hand-labelled: 40 held out for the test split, ~82 to train on
    review_fraction: float = 0.5
    epochs: int | None = None
    retrain_epochs: int | None = None
    imgsz: int | None = None
    port: int | None = None
    seed: int = 0
    reviewers: int = 1  # 2: double review with adjudication


TEST_PHOTOS = MIN_TEST_PHOTOS  # the held-out test split: the fewest that can tell two rounds apart
DOUBLE_REVIEW_SLIPS = 0.10  # each simulated reviewer's (and the adjudicator's) slip rate in a double review


STEPS = 9


def _step(n: int, text: str) -> None:
    say(tagged(f"\nstep {n}/{STEPS}", "bold cyan", text))


def _run_or_resume(ws: Workspace, round_no: int, settings: RoundSettings, queue: ReviewQueue) -> None:
    """Run a round through the loop's one sequence, or say it was done by an earlier run of the demo."""
    if stage_reached(ws.store.rounds.round_record(round_no), Stage.DONE):
        say(f"  round {round_no} was finished by an earlier run of the demo")
        return
    with LoopProgress() as progress:
        result = run_round(
            ws,
            round_no,
            settings,
            queue=queue,
            hooks=RoundHooks(on_stage=progress.stage, on_epoch=progress.epoch, on_predicted=progress.predicted),
        )
    say(
        f"  round {round_no} test {describe_map(round_map(result.record))}; "
        f"{result.preannotate.predicted if result.preannotate else 0} photos pre-annotated; "
        f"{result.pushed.created if result.pushed else 0} tasks created, "
        f"{result.pushed.replaced if result.pushed else 0} predictions replaced in the queue"
    )


def _adjudicate(ws: Workspace, queue: ReviewQueue, seed: int) -> None:
    """The SIMULATED adjudicator settles the photos round 1's pull sent to adjudication; a last pull stores
    the adjudicated labels; the agreement figures of every double-reviewed photo are printed."""
    from review_queue.adjudication import agreement_summary
    from review_queue.agreement import agreement_lines
    from review_queue.labelstudio.client import connect
    from review_queue.simulate import simulate_adjudication

    adjudicated = simulate_adjudication(ws, connect(ws), noise=DOUBLE_REVIEW_SLIPS, seed=seed)
    queue.pull(ws)
    say(
        f"  the SIMULATED adjudicator settled {adjudicated.annotated} disagreeing photos "
        f"({adjudicated.lead_time_s / 60:.1f} simulated minutes); agreeing photos took the merged label"
    )
    for line in agreement_lines(agreement_summary(ws)):
        say(f"  {line}")


@dataclass(frozen=True)
class _Recipe:
    """How the demo trains on this machine: sized for a GPU, or to finish within 12 min on 2 CPU cores."""

    gpu: bool
    epochs: int
    retrain_epochs: int
    batch: int
    imgsz: int

    @classmethod
    def for_machine(cls, settings: DemoSettings, gpu: bool) -> _Recipe:
        """The settings' figures, else the machine's defaults."""
        epochs = settings.epochs or (60 if gpu else 56)  # CPU-sized: the demo must finish within 12 min on 2 cores
        return cls(
            gpu=gpu,
            epochs=epochs,
            retrain_epochs=settings.retrain_epochs or max(5, epochs * 2 // 5),  # warm start: fewer epochs
            batch=16 if gpu else 8,  # more updates per epoch on the small CPU seed set
            imgsz=settings.imgsz or (640 if gpu else 320),
        )


def run_demo(settings: DemoSettings) -> dict:
    """The demo's eight steps on `settings.folder`; returns the learning curve, Label Studio's URL and the minutes."""
    import torch

    from review_queue.labelstudio.server import start_server
    from review_queue.queue import open_queue

    recipe = _Recipe.for_machine(settings, torch.cuda.is_available())
    folder = settings.folder.resolve()
    data, ws_root = folder / "data", folder / "workspace"
    started = time.perf_counter()
    _announce(folder, recipe)

    _step(
        1,
        f"synthesising {settings.images} face photos with six lesion types "
        f"({settings.labelled_fraction:.0%} hand-labelled, {TEST_PHOTOS} of them held out as the test split)",
    )
    _synthesise(data, settings)

    _step(2, "ingesting photos and labelImg XML into the workspace")
    with _open_workspace(ws_root, data, recipe) as ws:
        _ingest(ws)

        _step(3, "starting a local Label Studio (127.0.0.1 only, offline)")
        server = start_server(ws, port=settings.port)
        queue = open_queue(ws)

        _step(
            4, "round 0: train on the hand-labelled photos, pre-annotate the rest, push the queue most uncertain first"
        )
        _run_or_resume(ws, 0, RoundSettings.from_config(ws.config, 0), queue)

        _simulated_review(ws, settings)

        _step(
            6,
            "round 1: pull the corrections with provenance, snapshot, warm start from round 0, evaluate, "
            "re-predict, re-push",
        )
        _run_or_resume(ws, 1, RoundSettings.from_config(ws.config, 1), queue)
        if settings.reviewers >= 2:
            _adjudicate(ws, queue, settings.seed)
        record = ws.store.rounds.round_record(1)
        report_path = ws.round_dir(1, record.attempt if record else 0) / "report.html"

        _step(7, "the learning curve")
        curve = _show_curve(ws)

        _step(
            8, "the acceptance audit: a random sample of the photos finalize would accept, boxed blind, then finalize"
        )
        _audited_finalize(ws, data, settings.seed)
    minutes = (time.perf_counter() - started) / 60
    _step(9, "done")
    _farewell(minutes, report_path, server.url, ws_root)
    return {"curve": curve, "url": server.url, "minutes": minutes}


def _announce(folder: Path, recipe: _Recipe) -> None:
    """The demo's first line: where it runs, on what, and that photos and reviewer are simulated."""
    say(
        tagged(
            "annotator demo",
            "bold",
            f"in {folder} ({'GPU' if recipe.gpu else 'CPU'}: yolo11{'s' if recipe.gpu else 'n'}, "
            f"{recipe.epochs}+{recipe.retrain_epochs} epochs at {recipe.imgsz} px). Photos and reviewer are SIMULATED.",
        )
    )


def _synthesise(data: Path, settings: DemoSettings) -> None:
    """Step 1: the simulated photos, their hand labels and their truth (kept when an earlier run made them all)."""
    from annotator.synthetic import generate

    if (data / "truth").exists() and len(list((data / "truth").glob("*.xml"))) >= settings.images:
        return
    with progress_bar() as bar:
        task = bar.add_task("synthesising", total=settings.images)
        generate(
            data,
            images=settings.images,
            labelled_fraction=settings.labelled_fraction,
            seed=settings.seed,
            size="small",
            progress=lambda n: bar.advance(task, n),
        )


def _open_workspace(ws_root: Path, data: Path, recipe: _Recipe) -> Workspace:
    """Step 2: the demo's workspace, created on the first run and reopened for writing on a rerun."""
    if (ws_root / "annotator.toml").exists():
        return Workspace.open(ws_root, write=True)
    cfg = Config(
        images=data / "images",
        labels=data / "labels",
        imgsz=recipe.imgsz,
        epochs=recipe.epochs,
        retrain_epochs=recipe.retrain_epochs,
        batch=recipe.batch,
        test_size=TEST_PHOTOS,
        test_fraction=0.35,  # the study held out 10%; the demo's small seed set needs a larger share for 40
        model="auto",
    )
    return Workspace.create(ws_root, cfg)


def _ingest(ws: Workspace) -> None:
    """Step 2: ingest the photos and labelImg XML, and say how many photos are in which state."""
    from annotator.ingest import ingest

    ingest(ws, images=ws.config.images, labels=ws.config.labels)
    counts = ws.store.status_counts()
    say(f"  {counts['images']} photos: {counts['by_status']}")


def _simulated_review(ws: Workspace, settings: DemoSettings) -> None:
    """Step 5: the SIMULATED dermatologist(s) review part of the queue, unless an earlier run already did."""
    from review_queue.labelstudio.client import connect
    from review_queue.simulate import simulate

    n_review = max(1, int(settings.review_fraction * len(ws.store.review.task_map())))
    double = settings.reviewers >= 2
    who = "two SIMULATED dermatologists each review" if double else "a SIMULATED dermatologist reviews"
    _step(5, f"{who} {n_review} photos in queue order through the Label Studio API")
    if ws.store.rounds.round_record(1) is not None:
        say("  reviewed by an earlier run of the demo")
        return
    client = connect(ws)
    if double:
        from review_queue.labelstudio.project import get_project, require_project_id, set_overlap

        set_overlap(client, get_project(client, require_project_id(ws)), reviewers=2)
    for reviewer in (1, 2) if double else (None,):
        simulated = simulate(
            ws,
            client,
            count=n_review,
            reviewer=reviewer,
            noise=DOUBLE_REVIEW_SLIPS if double else 0.0,
            seed=settings.seed,
        )
        say(
            f"  {'reviewer ' + str(reviewer) + ': ' if reviewer else ''}{simulated.annotated} photos "
            f"reviewed, actions {simulated.actions}, {simulated.lead_time_s / 60:.1f} simulated reviewer "
            "minutes"
        )


def _audited_finalize(ws: Workspace, data: Path, seed: int) -> None:
    """Step 8: plan the audit of what finalize would accept, let a SIMULATED auditor box the sample blind in
    Label Studio, pull, and finalize (it accepts only what the audit bounded)."""
    from annotator.errors import WorkspaceError
    from bootstrap.acceptance import AuditSettings, judge
    from bootstrap.finalize import audit_state, finalize, plan_acceptance_audit
    from review_queue.audit import pull_audit, push_audit, simulate_audit
    from review_queue.labelstudio.client import connect
    from review_queue.reviewer import CAREFUL

    try:
        plan = plan_acceptance_audit(ws, AuditSettings(seed=seed))
    except WorkspaceError as exc:
        say(f"  {exc}")
        return
    say(f"  plan: {plan.describe()}")
    client = connect(ws)
    push_audit(ws, client, plan=plan.population_digest, photos=plan.sample)
    audited = simulate_audit(
        ws, client, plan=plan.population_digest, profile=CAREFUL, truth_dir=data / "truth", seed=seed
    )
    pull_audit(ws, client, plan=plan.population_digest)
    say(f"  a SIMULATED auditor boxed {audited} photos blind; {judge(plan, audit_state(ws, plan).checks).message}")
    try:
        result = finalize(ws)
        say(f"  finalize: auto-accepted {result.auto_accepted} photos; exports in {ws.root / 'export'}")
    except WorkspaceError as exc:
        say(f"  {exc}")


def _show_curve(ws: Workspace) -> list[CurveRow]:
    """Step 7: the learning curve as a table, and each round's verdict on the reviewer's time."""
    curve = learning_curve(ws)
    console.print(curve_table(curve))
    for row in curve:
        verdict = effort_verdict(row)
        if verdict:
            say(f"  {verdict}")
    return curve


def _farewell(minutes: float, report_path: Path, url: str, ws_root: Path) -> None:
    """Step 8: how long it took, where the report is, and how to reach and stop Label Studio."""
    from review_queue.labelstudio.server import credentials_path

    console.print(f"\n[bold green]demo finished in {minutes:.1f} min.[/] Round report: {escape(str(report_path))}")
    console.print(
        f"Label Studio is running at [bold]{url}[/] — log in with the e-mail and password in "
        f"{escape(str(credentials_path(ws_root)))} (readable only by you). Stop it with "
        f"`annotator review serve --stop -w {escape(str(ws_root))}`."
    )
