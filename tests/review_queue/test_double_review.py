"""Double review against a real Label Studio: two users review the same tasks, pull keeps both with
provenance, agreeing photos merge, disagreeing ones go to the adjudication project and the
adjudicator's label becomes current."""

from __future__ import annotations

import pytest

from annotator.types import Box, Source
from review_queue.adjudication import ADJUDICATED, MERGED, adjudication_project_id, agreement_summary
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.push import push
from review_queue.people import client_as, simulated_reviewer
from review_queue.queue import LabelStudioQueue
from review_queue.simulate import simulate, simulate_adjudication
from review_queue.status import review_status
from tests.review_queue.conftest import SCENARIO

pytestmark = pytest.mark.server

TWO = SCENARIO[:2]  # p0 (320x240), p1 (240x320)


def _annotate(client, task_id: int, boxes, width: int, height: int) -> None:
    result = [box_to_result(b, width, height, f"r{i}") for i, b in enumerate(boxes)]
    client.call("annotating", client.sdk.annotations.create, task_id, idempotent=False, result=result, lead_time=10.0)


def pull(ws, client):
    """The queue's pull: the transport's pull, then double reviews settled."""
    return LabelStudioQueue(client).pull(ws)


def _reviews(ws, photo):
    return [
        v for v in ws.store.labels.history(photo) if v.source is Source.REVIEWED and not v.meta.get("double_review")
    ]


def test_push_asks_label_studio_for_two_reviews_per_task(review_setup):
    s = review_setup(TWO)
    result = push(s.ws, s.client, reviewers=2)
    project = s.client.sdk.projects.get(result.project_id)
    assert project.maximum_annotations == 2
    tasks = s.client.sdk.tasks.list(project=result.project_id, fields="all")
    assert sorted(t.overlap for t in tasks.items) == [2, 2]


def test_each_reviewer_is_served_every_task_once_and_pull_stores_both_reviews(review_setup):
    s = review_setup(TWO)
    push(s.ws, s.client, reviewers=2)
    first = simulate(s.ws, s.client, count=10, reviewer=1)
    second = simulate(s.ws, s.client, count=10, reviewer=2)
    assert sorted(first.task_ids) == sorted(second.task_ids) == sorted(s.ws.store.review.task_map().values())
    pull(s.ws, s.client)
    for photo in TWO:
        reviews = _reviews(s.ws, photo.name)
        assert {v.reviewer for v in reviews} == {simulated_reviewer(1), simulated_reviewer(2)}
        assert all(v.meta["simulated"] and "operations" in v.meta for v in reviews)


def test_agreeing_reviews_merge_without_adjudication(review_setup):
    s = review_setup(TWO)
    push(s.ws, s.client, reviewers=2)
    simulate(s.ws, s.client, count=10, reviewer=1)  # no slips: both reviewers submit the truth
    simulate(s.ws, s.client, count=10, reviewer=2)
    pull(s.ws, s.client)
    assert adjudication_project_id(s.ws) is None
    for photo in TWO:
        current = s.ws.store.labels.current_label(photo.name)
        assert current.meta["double_review"] == MERGED
        assert current.meta["reviewers"] == [simulated_reviewer(1), simulated_reviewer(2)]
        assert sorted(current.meta["reviews"]) == sorted(v.id for v in _reviews(s.ws, photo.name))

        def rounded(boxes):
            return sorted((b.label, round(b.x1), round(b.y1), round(b.x2), round(b.y2)) for b in boxes)

        assert rounded(current.boxes) == rounded(photo.truth)


def test_agreement_figures_match_a_hand_computation(review_setup):
    s = review_setup(TWO)
    push(s.ws, s.client, reviewers=2)
    tasks = s.ws.store.review.task_map()
    one, two = client_as(s.client, simulated_reviewer(1)), client_as(s.client, simulated_reviewer(2))
    # p0: both draw mel at the same place; A draws a fre, B a caf at the same place (class disagreement)
    _annotate(one, tasks["p0.jpg"], [Box("mel", 20, 20, 120, 100), Box("fre", 200, 150, 230, 180)], 320, 240)
    _annotate(two, tasks["p0.jpg"], [Box("mel", 20, 20, 120, 90), Box("caf", 200, 150, 230, 180)], 320, 240)
    # p1: both draw the same sl box
    _annotate(one, tasks["p1.jpg"], [Box("sl", 50, 50, 90, 90)], 240, 320)
    _annotate(two, tasks["p1.jpg"], [Box("sl", 50, 50, 90, 90)], 240, 320)
    pull(s.ws, s.client)
    summary = agreement_summary(s.ws)
    # boxes: 2 matched (mel IoU 7000/8000 = 0.875, sl IoU 1.0) of 3 + 3 -> F1 4/6, mean IoU 0.9375
    assert summary.overall.box_f1 == pytest.approx(4 / 6, abs=1e-3)
    assert summary.overall.mean_iou == pytest.approx(0.9375, abs=1e-3)
    # image-level calls over 2 photos x 6 classes = 12; they differ on (p0, fre) and (p0, caf):
    # po = 10/12; A says yes 3 times, B 3 times -> pe = (3*3 + 9*9) / 144 = 90/144; kappa = (po-pe)/(1-pe) = 0.5556
    assert summary.overall.observed_agreement == pytest.approx(10 / 12)
    assert summary.overall.kappa == pytest.approx((10 / 12 - 90 / 144) / (1 - 90 / 144), abs=1e-3)
    assert summary.per_class["mel"].box_f1 == 1.0 and summary.per_class["fre"].box_f1 == 0.0
    assert summary.per_pair[f"{simulated_reviewer(1)} + {simulated_reviewer(2)}"].photos == 2
    assert summary.disagreeing == ("p0.jpg",)


def test_disagreeing_photos_are_adjudicated_and_the_adjudicated_label_becomes_current(review_setup):
    s = review_setup(TWO)
    push(s.ws, s.client, reviewers=2)
    tasks = s.ws.store.review.task_map()
    one, two = client_as(s.client, simulated_reviewer(1)), client_as(s.client, simulated_reviewer(2))
    _annotate(one, tasks["p0.jpg"], [Box("mel", 20, 20, 120, 100)], 320, 240)
    _annotate(two, tasks["p0.jpg"], [Box("caf", 20, 20, 120, 100)], 320, 240)  # disagrees on the class
    _annotate(one, tasks["p1.jpg"], [Box("sl", 50, 50, 90, 90)], 240, 320)
    _annotate(two, tasks["p1.jpg"], [Box("sl", 50, 50, 90, 90)], 240, 320)  # agrees
    pull(s.ws, s.client)
    adj = adjudication_project_id(s.ws)
    assert adj is not None
    queued = s.client.tasks_with_annotations(adj)
    assert [t["data"]["photo"] for t in queued] == ["p0.jpg"]
    names = sorted(p["model_version"] for p in queued[0]["predictions"])
    assert names == [f"review by {simulated_reviewer(1)}", f"review by {simulated_reviewer(2)}"]
    assert s.ws.store.labels.current_label("p1.jpg").meta["double_review"] == MERGED

    adjudicated = simulate_adjudication(s.ws, s.client)  # the truth: two lesions, mel and fre
    assert adjudicated.annotated == 1
    pull(s.ws, s.client)
    current = s.ws.store.labels.current_label("p0.jpg")
    assert current.meta["double_review"] == ADJUDICATED
    assert current.meta["adjudicator"] == "simulated-adjudicator@annotator.local"
    assert current.meta["reviewers"] == [simulated_reviewer(1), simulated_reviewer(2)]
    assert sorted(b.label for b in current.boxes) == ["fre", "mel"]
    assert len(_reviews(s.ws, "p0.jpg")) == 2  # both reviews kept in the history
    pull(s.ws, s.client)  # a rerun stores nothing again
    assert s.ws.store.labels.current_label("p0.jpg").id == current.id
    assert client_as(s.client, "simulated-adjudicator@annotator.local").next_task(adj) is None


def test_review_status_reports_the_agreement(review_setup):
    s = review_setup(TWO)
    push(s.ws, s.client, reviewers=2)
    simulate(s.ws, s.client, count=10, reviewer=1)
    simulate(s.ws, s.client, count=10, reviewer=2)
    pull(s.ws, s.client)
    out = review_status(s.ws).to_dict()
    assert out["agreement"]["overall"]["photos"] == 2 and out["agreement"]["overall"]["box_f1"] == 1.0
    assert out["reviewed"] == 2  # a photo reviewed twice is one reviewed photo
