"""finalize accepts only what an acceptance audit has bounded: no plan, an incomplete or failed audit,
or predictions changed since the plan all refuse, and nothing is accepted then."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import Config
from annotator.errors import WorkspaceError
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.acceptance import AuditSettings
from bootstrap.finalize import (
    audit_state,
    finalize,
    plan_acceptance_audit,
    recorded_plan,
)
from bootstrap.queue_order import recommend_threshold
from review_queue.review_meta import ReviewMeta

LESION = Box("mel", 10, 10, 40, 40)
PREDICTED = Box("mel", 11, 11, 41, 41, score=0.8)


def _workspace(tmp_path, photos: int) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for i in range(photos):
        ws.store.labels.add_image(ImageRecord(path=f"p{i:03d}.jpg", sha256=str(i), width=100, height=100))
        ws.store.labels.add_label_version(_model(f"p{i:03d}.jpg"))
    return ws


def _model(path: str, boxes: tuple[Box, ...] = (PREDICTED,)) -> LabelVersion:
    return LabelVersion(
        image_path=path, source=Source.MODEL, boxes=boxes, round=0, model_version="round-000", uncertainty=0.2
    )


def _audit(ws: Workspace, paths, boxes: tuple[Box, ...] = (LESION,)) -> None:
    """An auditor boxes each photo blind (what review_queue.audit pulls back)."""
    digest = recorded_plan(ws).population_digest
    for path in paths:
        ws.store.labels.add_label_version(
            LabelVersion(
                image_path=path,
                source=Source.REVIEWED,
                boxes=boxes,
                reviewer="auditor@example.org",
                meta=ReviewMeta(lead_time=20.0, acceptance_audit=digest).to_dict(),
            )
        )


def _sources(ws: Workspace) -> set[Source]:
    return {v.source for v in ws.store.labels.current_labels().values()}


def test_finalize_without_an_audit_refuses_and_says_how_to_start_one(tmp_path):
    ws = _workspace(tmp_path, 5)
    with pytest.raises(WorkspaceError, match="no audit has checked them.*annotator audit plan"):
        finalize(ws)
    assert _sources(ws) == {Source.MODEL}
    ws.close()


def test_few_photos_left_from_a_weak_model_are_refused_whatever_the_last_batch_said(tmp_path):
    ws = _workspace(tmp_path, 12)
    for i in range(12):  # a weak model: empty predictions on photos that hold lesions
        ws.store.labels.add_label_version(_model(f"p{i:03d}.jpg", boxes=()))
    plan = plan_acceptance_audit(ws)
    assert plan.census and plan.sample_size == 12, "12 photos cannot be bounded at 2% by a sample: audit them all"
    _audit(ws, plan.sample[:2])
    with pytest.raises(WorkspaceError, match=r"errors at 100\.0%.*keep reviewing"):
        finalize(ws)
    assert Source.AUTO_ACCEPTED not in _sources(ws)
    ws.close()


def test_an_incomplete_audit_says_how_many_photos_are_left(tmp_path):
    ws = _workspace(tmp_path, 200)
    plan = plan_acceptance_audit(ws)
    assert (plan.sample_size, plan.errors_allowed) == (149, 0)
    _audit(ws, plan.sample[:100])
    with pytest.raises(WorkspaceError, match=r"audit 49 more photos \(0 errors so far\)"):
        finalize(ws)
    ws.close()


def test_a_clean_audit_accepts_the_rest_with_the_audit_in_its_provenance(tmp_path):
    ws = _workspace(tmp_path, 200)
    plan = plan_acceptance_audit(ws, AuditSettings(seed=3))
    _audit(ws, plan.sample)
    result = finalize(ws)
    assert result.auto_accepted == 200 - 149 and result.audit["verdict"] == "accept"
    assert result.audit["photo_bound"] <= 0.02 and result.audit_plan["seed"] == 3
    unaudited = next(p for p in (f"p{i:03d}.jpg" for i in range(200)) if p not in plan.sample)
    accepted = ws.store.labels.current_label(unaudited)
    assert accepted.source is Source.AUTO_ACCEPTED
    assert accepted.meta["audit"] == plan.population_digest and accepted.meta["wrong_photo_bound"] <= 0.02
    assert ws.store.labels.current_label(plan.sample[0]).source is Source.REVIEWED, "the auditor's own boxes are kept"
    coco = json.loads((ws.root / "export" / "coco" / "annotations.json").read_text())
    assert len(coco["images"]) == 200
    ws.close()


def test_one_wrong_photo_in_a_zero_error_plan_refuses(tmp_path):
    ws = _workspace(tmp_path, 200)
    plan = plan_acceptance_audit(ws)
    _audit(ws, plan.sample[:1], boxes=(Box("hori", 10, 10, 40, 40),))  # the model's class was wrong
    _audit(ws, plan.sample[1:])
    with pytest.raises(WorkspaceError, match="keep reviewing"):
        finalize(ws)
    ws.close()


def test_new_predictions_void_the_audit_and_planning_again_never_resamples_a_valid_one(tmp_path):
    ws = _workspace(tmp_path, 200)
    plan = plan_acceptance_audit(ws, AuditSettings(seed=1))
    _audit(ws, plan.sample[:10])
    assert plan_acceptance_audit(ws, AuditSettings(seed=99)).sample == plan.sample, "a running audit is not resampled"
    ws.store.labels.add_label_version(_model("p000.jpg", boxes=(LESION,)))  # a new round re-predicted a photo
    assert not audit_state(ws, plan).valid
    _audit(ws, plan.sample[10:])
    with pytest.raises(WorkspaceError, match="changed since the audit was planned"):
        finalize(ws)
    assert plan_acceptance_audit(ws, AuditSettings(seed=1)).population_digest != plan.population_digest
    ws.close()


def test_the_audit_and_finalize_commands(tmp_path):
    ws = _workspace(tmp_path, 160)
    root = str(ws.root)
    ws.close()
    planned = CliRunner().invoke(app, ["audit", "plan", "-w", root])
    assert planned.exit_code == 0, planned.output
    assert "audit 149 of 160 photos to accept" in planned.output and "Clopper-Pearson" in planned.output
    refused = CliRunner().invoke(app, ["finalize", "-w", root])
    assert refused.exit_code != 0 and "audit 149 more photos (0 errors so far)" in refused.output
    with Workspace.open(tmp_path / "ws", write=True) as ws:
        _audit(ws, recorded_plan(ws).sample)
    done = CliRunner().invoke(app, ["finalize", "-w", root, "--json"])
    assert done.exit_code == 0, done.output
    figures = json.loads(done.output)
    assert figures["auto_accepted"] == 11 and figures["audit"]["wrong_photos"] == 0


def test_the_old_diluted_rule_survives_only_to_compare_queue_orders():
    # 2% of all boxes: with few predictions left, any correction rate passes. finalize no longer uses it.
    assert recommend_threshold(remaining_boxes=100, human_boxes=900) == pytest.approx(0.2)
    assert recommend_threshold(remaining_boxes=1, human_boxes=900) == 1.0


def test_the_audit_is_kept_in_the_round_record_and_its_report(tmp_path):
    from annotator.rounds import Stage

    ws = _workspace(tmp_path, 200)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE)
    plan = plan_acceptance_audit(ws)
    _audit(ws, plan.sample[:1], boxes=())  # the auditor found no lesion where the model boxed one
    _audit(ws, plan.sample[1:])
    with pytest.raises(WorkspaceError, match="keep reviewing"):
        finalize(ws)
    audit = ws.store.rounds.round_record(0).acceptance_audit
    assert audit["plan"]["sample_size"] == 149 and audit["outcome"]["wrong_photos"] == 1 and audit["accepted"] == 0
    assert "sample" not in audit["plan"], "the sample itself stays in the store's plan, not in every record"
    report = (ws.round_dir(0) / "report.html").read_text()
    assert "Acceptance audit (finalize): 149 of 200 photos" in report
    ws.close()
