"""`annotator finalize`: accept the remaining predictions as `auto-accepted` labels only when an
acceptance audit of exactly those predictions bounds the share of wrong photos at or below the
tolerance (`bootstrap.acceptance`), then export VOC, YOLO and COCO.

Two steps: `annotator audit plan` draws a seeded random sample of the photos to accept and records it
with the prediction version of each (reviewers box the sample blind in Label Studio:
`review_queue.audit`); `finalize` compares each auditor's boxes with the prediction it would accept,
bounds the wrong share and accepts, or says what is needed. A new round, a new prediction or a photo
reviewed since the plan changes what would be accepted and voids the audit. The last reviewed batch's
correction rate is printed as information only: the queue served its most uncertain photos, so the
rate says nothing exact about the photos left.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from annotator.errors import WorkspaceError
from annotator.store import Workspace
from annotator.types import LabelVersion, Source
from bootstrap.acceptance import (
    AuditOutcome,
    AuditPlan,
    AuditSettings,
    PhotoCheck,
    Verdict,
    check_photo,
    judge,
    plan_audit,
    population_digest,
)
from review_queue.review_meta import ReviewMeta

AUDIT_PLAN_KEY = "finalize.audit_plan"  # the store's meta key holding the current AuditPlan as JSON


def photos_to_accept(ws: Workspace) -> dict[str, LabelVersion]:
    """The photos whose current label is still a model's prediction: what finalize would accept."""
    return {
        path: version
        for path, version in ws.store.labels.current_labels().items()
        if version.source is Source.MODEL and not version.excluded
    }


def recorded_plan(ws: Workspace) -> AuditPlan | None:
    """The audit plan recorded by `plan_acceptance_audit`, if any."""
    raw = ws.store.get_meta(AUDIT_PLAN_KEY)
    return AuditPlan.from_dict(json.loads(raw)) if raw else None


@dataclass(frozen=True)
class AuditState:
    """An audit plan read against the workspace: still valid?, and the photos audited so far."""

    plan: AuditPlan
    valid: bool  # the photos to accept are still exactly those the plan sampled from
    checks: tuple[PhotoCheck, ...]  # the audited photos, in sample order
    audit_versions: dict[str, int]  # audited photo -> the auditor's label version id

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(p for p in self.plan.sample if p not in self.audit_versions)


def audit_state(ws: Workspace, plan: AuditPlan, candidates: dict[str, LabelVersion] | None = None) -> AuditState:
    """Compare the plan with the workspace: find each sampled photo's auditor label, check it against
    the prediction the plan would accept, and whether anything else changed since the plan."""
    predicted = dict(zip(plan.sample, plan.sample_versions, strict=True))
    audits = {path: v for path in plan.sample if (v := _audit_version(ws, path, plan.population_digest))}
    to_accept = photos_to_accept(ws) if candidates is None else candidates
    pairs = {(path, v.id) for path, v in to_accept.items() if v.id is not None}
    pairs |= {(path, predicted[path]) for path in audits}
    checks = []
    for path in plan.sample:
        if path in audits:
            prediction = ws.store.labels.version(predicted[path])
            checks.append(check_photo(path, prediction.boxes if prediction else (), audits[path].boxes))
    return AuditState(
        plan=plan,
        valid=population_digest(pairs) == plan.population_digest,
        checks=tuple(checks),
        audit_versions={path: v.id for path, v in audits.items() if v.id is not None},
    )


def _audit_version(ws: Workspace, path: str, digest: str) -> LabelVersion | None:
    """The newest label version an auditor made of `path` for the audit `digest`."""
    for version in reversed(ws.store.labels.history(path)):
        if version.source is Source.REVIEWED and ReviewMeta.from_dict(version.meta).acceptance_audit == digest:
            return version
    return None


def plan_acceptance_audit(ws: Workspace, settings: AuditSettings | None = None) -> AuditPlan:
    """Draw and record the audit of the photos to accept (settings: default, the workspace's tolerance). A plan
    still valid for the same photos and settings is returned as it is (planning again never resamples it)."""
    settings = settings or AuditSettings(tolerance=ws.config.audit_tolerance)
    candidates = photos_to_accept(ws)
    if not candidates:
        raise WorkspaceError("nothing to audit: no photo's label is still a model's prediction")
    plan = recorded_plan(ws)
    same = plan is not None and replace(plan.settings, seed=settings.seed) == settings
    if plan is not None and same and audit_state(ws, plan, candidates).valid:
        return plan
    plan = plan_audit([(path, v.id) for path, v in candidates.items() if v.id is not None], settings)
    ws.store.set_meta(AUDIT_PLAN_KEY, json.dumps(plan.to_dict()))
    return plan


@dataclass(frozen=True)
class FinalizeResult:
    """What finalize decided on: the audit's figures, what it accepted, where it exported."""

    audit_plan: dict[str, Any]  # population, sample size, seed, tolerance (the sample itself is in the store)
    audit: dict[str, Any]  # AuditOutcome.to_dict(): verdict, wrong photos, bounds
    auto_accepted: int
    correction_rate: float | None  # of the last reviewed batch: information only (see the module docstring)
    exports: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finalize(ws: Workspace, *, export_dir: Path | None = None) -> FinalizeResult:
    """Accept the photos to accept when their audit allows it (refuse with what is needed otherwise);
    export VOC, YOLO and COCO."""
    candidates = photos_to_accept(ws)
    plan = recorded_plan(ws)
    outcome = _audit_outcome(ws, plan, candidates) if candidates else None
    accepted = _accept(ws, candidates, plan, outcome) if candidates else 0
    if plan is not None and outcome is not None:
        _record_audit(ws, candidates, plan, outcome, accepted=accepted)
    return FinalizeResult(
        audit_plan=_plan_summary(plan) if candidates else {},
        audit=outcome.to_dict() if outcome else {},
        auto_accepted=accepted,
        correction_rate=_last_batch_correction_rate(ws),
        exports=_export(ws, export_dir),
    )


def _audit_outcome(ws: Workspace, plan: AuditPlan | None, candidates: dict[str, LabelVersion]) -> AuditOutcome:
    """The audit's verdict, or a refusal that says what to do."""
    if plan is None:
        raise WorkspaceError(
            f"not finalizing: {len(candidates)} photos would be accepted and no audit has checked them; "
            "run `annotator audit plan` (it prints how many photos reviewers must box), let reviewers box "
            "them, `annotator audit pull`, and run `annotator finalize` again"
        )
    state = audit_state(ws, plan, candidates)
    if not state.valid:
        raise WorkspaceError(
            "not finalizing: the predictions to accept changed since the audit was planned (a new round, new "
            "predictions or photos reviewed since); run `annotator audit plan` again for a new sample"
        )
    outcome = judge(plan, state.checks)
    if outcome.verdict is not Verdict.ACCEPT:
        _record_audit(ws, candidates, plan, outcome, accepted=0)
        raise WorkspaceError(f"not finalizing: {outcome.message}")
    return outcome


def _record_audit(
    ws: Workspace, candidates: dict[str, LabelVersion], plan: AuditPlan, outcome: AuditOutcome, *, accepted: int
) -> None:
    """Keep the audit in the record of the round whose predictions it judged, and redraw that round's report."""
    from bootstrap.rounds import write_report

    made_by = max((v.round for v in candidates.values() if v.round is not None), default=None)
    record = ws.store.rounds.round_record(made_by) if made_by is not None else None
    if record is None:
        return
    audit = {
        "plan": _plan_summary(plan),
        "outcome": outcome.to_dict(),
        "accepted": accepted,
        "correction_rate": _last_batch_correction_rate(ws),
    }
    ws.store.rounds.upsert_round(record.round_no, record.attempt, stage=record.stage, acceptance_audit=audit)
    write_report(ws, record.round_no, record.attempt)


def _accept(
    ws: Workspace, candidates: dict[str, LabelVersion], plan: AuditPlan | None, outcome: AuditOutcome | None
) -> int:
    """Write each remaining prediction again as `auto-accepted`, with the audit that allowed it."""
    audit = {
        "audit": plan.population_digest if plan else None,
        "wrong_photo_bound": outcome.photo_bound if outcome else None,
        "tolerance": plan.tolerance if plan else None,
    }
    with ws.store.transaction():
        for version in candidates.values():
            ws.store.labels.add_label_version(
                LabelVersion(
                    image_path=version.image_path,
                    source=Source.AUTO_ACCEPTED,
                    boxes=version.boxes,
                    round=version.round,
                    model_version=version.model_version,
                    uncertainty=version.uncertainty,
                    meta={"accepted_from_version": version.id, **audit},
                )
            )
    ws.sync_voc_mirror()
    return len(candidates)


def _plan_summary(plan: AuditPlan | None) -> dict[str, Any]:
    """The plan's figures without its sample list."""
    if plan is None:
        return {}
    return {k: v for k, v in plan.to_dict().items() if k not in ("sample", "sample_versions")}


def _last_batch_correction_rate(ws: Workspace) -> float | None:
    """The correction rate of the last reviewed round's batch (information only)."""
    from review_queue.corrections import correction_summary

    reviewed = [
        v for v in ws.store.labels.current_labels().values() if v.source is Source.REVIEWED and v.round is not None
    ]
    if not reviewed:
        return None
    last = max(v.round for v in reviewed if v.round is not None)
    return correction_summary([v for v in reviewed if v.round == last]).correction_rate


def _export(ws: Workspace, export_dir: Path | None) -> dict[str, Any]:
    """VOC, YOLO and COCO of every current label."""
    from annotator.export import export_labels

    out = export_dir or ws.root / "export"
    return {fmt: export_labels(ws, fmt, out / fmt) for fmt in ("voc", "yolo", "coco")}
