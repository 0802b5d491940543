"""The acceptance audit against a real Label Studio: the audit project holds exactly the sampled photos,
blind (no prediction); pushing again does not resample; audits come back as reviewed labels tagged
with their plan, lead time kept; finalize judges them; a new round voids the audit."""

from __future__ import annotations

import pytest

from annotator.types import Source
from bootstrap.acceptance import Verdict, judge
from bootstrap.finalize import audit_state, finalize, plan_acceptance_audit
from review_queue.audit import pull_audit, push_audit, simulate_audit
from review_queue.review_meta import ReviewMeta
from review_queue.reviewer import CAREFUL
from tests.review_queue.conftest import SCENARIO

pytestmark = pytest.mark.server


def _push(s):
    plan = plan_acceptance_audit(s.ws)
    return plan, push_audit(s.ws, s.client, plan=plan.population_digest, photos=plan.sample)


def test_the_audit_project_holds_exactly_the_sample_blind_and_a_repush_does_not_resample(review_setup):
    s = review_setup(SCENARIO)
    plan, pushed = _push(s)
    assert plan.census and set(plan.sample) == {p.name for p in SCENARIO}  # 6 photos: audit them all
    project = s.client.sdk.projects.get(pushed.project_id)
    assert not project.show_collab_predictions and "acceptance audit" in project.title
    tasks = list(s.client.sdk.tasks.list(project=pushed.project_id, fields="all").items)
    assert sorted(t.data["photo"] for t in tasks) == sorted(plan.sample)
    assert all(not t.predictions and not (t.total_predictions or 0) for t in tasks), "blind: no prediction"
    assert all(set(t.data) == {"image", "photo"} for t in tasks)
    again, repushed = _push(s)
    assert again.sample == plan.sample and (repushed.created, repushed.already_there) == (0, len(plan.sample))


def test_audits_come_back_tagged_with_their_plan_and_finalize_judges_them(review_setup):
    s = review_setup(SCENARIO)
    plan, pushed = _push(s)
    audited = simulate_audit(s.ws, s.client, plan=plan.population_digest, profile=CAREFUL, truth_dir=s.folder / "truth")
    assert audited == len(SCENARIO)
    result = pull_audit(s.ws, s.client, plan=plan.population_digest)
    assert (result.stored, result.unchanged, result.problems) == (len(SCENARIO), 0, ())
    assert pull_audit(s.ws, s.client, plan=plan.population_digest).unchanged == len(SCENARIO), "pulled once"
    p4 = s.ws.store.labels.current_label("p4.jpg")
    meta = ReviewMeta.from_dict(p4.meta)
    assert p4.source is Source.REVIEWED and meta.acceptance_audit == plan.population_digest
    assert meta.lead_time is not None and meta.lead_time > 0, "Label Studio's lead_time survives the round trip"
    state = audit_state(s.ws, plan)
    # the scenario's predictions: p0 (4 px off) and p4 right; p1, p2, p3, p5 wrong or missing a lesion
    assert state.valid and sorted(c.path for c in state.checks if c.wrong) == ["p1.jpg", "p2.jpg", "p3.jpg", "p5.jpg"]
    assert judge(plan, state.checks).verdict is Verdict.KEEP_REVIEWING
    assert finalize(s.ws).auto_accepted == 0, "every photo was audited: nothing is left to accept"


def test_a_new_round_voids_the_audit_and_its_tasks(review_setup, add_round):
    s = review_setup(SCENARIO)
    plan, _ = _push(s)
    add_round(s.ws, SCENARIO, 1)
    assert not audit_state(s.ws, plan).valid
    new_plan, pushed = _push(s)
    assert new_plan.population_digest != plan.population_digest and pushed.created == len(SCENARIO)
