"""`annotator audit ...`: the acceptance audit that must pass before `finalize` accepts any prediction.

Thin: parse options, open the workspace, call bootstrap.finalize, render.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from annotator.cli.common import JsonOption, WorkspaceOption, handle_errors
from annotator.cli.review import UrlOption
from annotator.console import console, print_json
from annotator.errors import WorkspaceError

if TYPE_CHECKING:
    from annotator.store import Workspace

audit_app = typer.Typer(
    help="Audit what finalize would accept: a random sample of the photos to accept, boxed blind by reviewers.",
    no_args_is_help=True,
)


def _human_baseline(ws: Workspace) -> str:
    """The same rule between two reviewers of one photo, where double review gave any."""
    from bootstrap.measured_effort import reviewer_disagreement

    differ, photos = reviewer_disagreement(ws)
    if not photos:
        return "human baseline: none (no photo was double-reviewed; `annotator review push --reviewers 2`)"
    return (
        f"human baseline: two reviewers' boxes differ by the same rule on {differ} of {photos} double-reviewed photos "
        f"({differ / photos:.1%}): the audit cannot show the model more accurate than that"
    )


@audit_app.command("plan")
@handle_errors
def plan_command(
    workspace: WorkspaceOption = Path("."),
    tolerance: Annotated[
        Optional[float],
        typer.Option(
            min=0.001,
            max=0.5,
            help="Largest share of wrong photos the accepted photos may hold (0-1; default: [finalize] tolerance "
            "in annotator.toml, 0.02).",
        ),
    ] = None,
    expected_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="The wrong-photo share you expect (size the sample so such a pool passes 80% of the time). "
            "0 plans the smallest sample, which passes only if the audit finds no error.",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the random sample (recorded).")] = 0,
    json_out: JsonOption = False,
) -> None:
    """Draw (or show the running) audit sample of the photos finalize would accept, and print the plan."""
    from annotator.store import Workspace
    from bootstrap.acceptance import AuditSettings
    from bootstrap.finalize import plan_acceptance_audit

    with Workspace.open(workspace, write=True) as ws:
        settings = AuditSettings(
            tolerance=ws.config.audit_tolerance if tolerance is None else tolerance,
            expected_rate=expected_rate,
            seed=seed,
        )
        plan = plan_acceptance_audit(ws, settings)
    if json_out:
        print_json(plan.to_dict())
        return
    console.print(plan.describe(), markup=False, soft_wrap=True)


@audit_app.command("status")
@handle_errors
def status_command(workspace: WorkspaceOption = Path("."), json_out: JsonOption = False) -> None:
    """What the recorded audit has found so far and what it allows."""
    from annotator.store import Workspace
    from bootstrap.acceptance import judge
    from bootstrap.finalize import audit_state, recorded_plan

    with Workspace.open(workspace) as ws:
        plan = recorded_plan(ws)
        if plan is None:
            console.print("no audit planned: run `annotator audit plan`", markup=False)
            raise typer.Exit(0)
        state = audit_state(ws, plan)
        baseline = _human_baseline(ws)
    outcome = judge(plan, state.checks)
    if json_out:
        print_json({"valid": state.valid, "pending": len(state.pending), **outcome.to_dict()})
        return
    console.print(plan.describe(), markup=False, soft_wrap=True)
    if not state.valid:
        console.print("the predictions to accept changed since this plan: plan again", markup=False)
    console.print(outcome.message, markup=False, soft_wrap=True)
    console.print(baseline, markup=False, soft_wrap=True)


@audit_app.command("push")
@handle_errors
def push_command(workspace: WorkspaceOption = Path("."), url: UrlOption = None, json_out: JsonOption = False) -> None:
    """Serve the planned audit sample in Label Studio's "acceptance audit" project, blind (no predictions)."""
    from annotator.store import Workspace
    from bootstrap.finalize import audit_state, recorded_plan
    from review_queue.audit import push_audit
    from review_queue.labelstudio.client import connect

    with Workspace.open(workspace, write=True) as ws:
        plan = recorded_plan(ws)
        if plan is None or not audit_state(ws, plan).valid:
            raise WorkspaceError("no valid audit plan for the current predictions: run `annotator audit plan` first")
        result = push_audit(ws, connect(ws, url=url), plan=plan.population_digest, photos=plan.sample)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"acceptance audit project {result.project_id}: {result.created} photos added, "
        f"{result.already_there} already there; reviewers box them without seeing the model's boxes",
        markup=False,
    )


@audit_app.command("pull")
@handle_errors
def pull_command(workspace: WorkspaceOption = Path("."), url: UrlOption = None, json_out: JsonOption = False) -> None:
    """Store the audits done in Label Studio (each becomes the photo's reviewed label), then show the verdict."""
    from annotator.store import Workspace
    from bootstrap.acceptance import judge
    from bootstrap.finalize import audit_state, recorded_plan
    from review_queue.audit import pull_audit
    from review_queue.labelstudio.client import connect

    with Workspace.open(workspace, write=True) as ws:
        plan = recorded_plan(ws)
        if plan is None:
            raise WorkspaceError("no audit planned: run `annotator audit plan` first")
        result = pull_audit(ws, connect(ws, url=url), plan=plan.population_digest)
        outcome = judge(plan, audit_state(ws, plan).checks)
    if json_out:
        print_json({**result.to_dict(), "audit": outcome.to_dict()})
        return
    console.print(
        f"{result.stored} audits stored, {result.unchanged} unchanged, {result.skipped} skipped", markup=False
    )
    for problem in result.problems:
        console.print(f"not stored: {problem}", markup=False, soft_wrap=True)
    console.print(outcome.message, markup=False, soft_wrap=True)


@audit_app.command("labels")
@handle_errors
def labels_command(
    workspace: WorkspaceOption = Path("."),
    folds: Annotated[int, typer.Option(min=2, help="Folds: each photo is predicted by a model that never saw it.")] = 3,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of each fold's model.")] = 30,
    imgsz: Annotated[int, typer.Option(min=32, help="Training and prediction image size (pixels).")] = 640,
    top: Annotated[float, typer.Option(min=0.001, max=1.0, help="Share of photos flagged, worst first (0-1).")] = 0.1,
    skip_test: Annotated[
        bool, typer.Option("--skip-test", help="Leave the fixed test split out of the audit.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="Training device: cpu, 0 (GPU); default: the GPU if any.")] = None,
    high_probability: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="The score a fold model's box needs to charge an overlooked or swapped box (cleanlab's default "
            "0.95); a briefly trained model rarely reaches it.",
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Serve the flagged photos in Label Studio's label audit.")
    ] = False,
    pull: Annotated[bool, typer.Option("--pull", help="Store the label audit reviews done in Label Studio.")] = False,
    url: UrlOption = None,
    json_out: JsonOption = False,
) -> None:
    """Question the stored hand labels: out-of-sample predictions (K folds) scored by cleanlab; writes
    reports/label-issues.csv and .html; --push serves the flagged photos to the seniors, --pull stores their reviews."""
    from annotator.store import Workspace
    from bootstrap.label_audit import LabelAuditSettings, run_label_audit
    from bootstrap.label_audit_report import doubted_labels, flagged, write_issue_csv, write_issue_html
    from review_queue.label_audit import pull_label_audit, push_label_audit
    from review_queue.labelstudio.client import connect

    settings = LabelAuditSettings(
        folds=folds,
        epochs=epochs,
        imgsz=imgsz,
        device=device,
        include_test=not skip_test,
        high_probability=high_probability,
    )
    with Workspace.open(workspace, write=True) as ws:
        if pull:
            pulled = pull_label_audit(ws, connect(ws, url=url))
            _print_result(
                pulled.to_dict(), json_out, f"{pulled.stored} label audit reviews stored, {pulled.skipped} skipped"
            )
            return
        audit = run_label_audit(ws, settings, progress=None if json_out else lambda m: console.print(m, markup=False))
        csv_path, html_path = write_issue_csv(ws, audit, top), write_issue_html(ws, audit, top)
        pushed = push_label_audit(ws, connect(ws, url=url), doubted_labels(audit, top)) if push else None
    summary = {
        "audited": len(audit.qualities),
        "flagged": len(flagged(audit, top)),
        "test_split_audited": audit.test_audited,
        "cached": audit.out_of_sample.cached,
        "csv": str(csv_path),
        "html": str(html_path),
        "push": pushed.to_dict() if pushed else None,
    }
    message = (
        f"{summary['audited']} labels audited (test split {'included' if audit.test_audited else 'left out'}), "
        f"{summary['flagged']} flagged: {html_path}"
        + (f"; label audit project {pushed.project_id}: {pushed.created} photos added" if pushed else "")
    )
    _print_result(summary, json_out, message)


def _print_result(result: dict, json_out: bool, message: str) -> None:
    """JSON on stdout, or one line for a person."""
    if json_out:
        print_json(result)
    else:
        console.print(message, markup=False, soft_wrap=True)
