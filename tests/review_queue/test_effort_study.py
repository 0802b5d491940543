"""The effort study against a real Label Studio: `push --control` serves a share of the new tasks without
predictions, never gives them one later, and their reviews come back marked as the draw-from-scratch arm,
with Label Studio's lead time kept and no edit diff (they say nothing about the model's corrections)."""

from __future__ import annotations

import pytest

from annotator.types import EVAL_SPLIT
from review_queue.labelstudio.convert import ARM_FIELD, CONTROL_ARM, box_to_result, in_control_arm
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from review_queue.review_meta import ReviewMeta
from review_queue.simulate import simulate
from tests.review_queue.conftest import SCENARIO

pytestmark = pytest.mark.server

SHARE = 0.5
CONTROL = {p.name for p in SCENARIO if in_control_arm(p.name, SHARE)}


def test_the_draw_is_a_fixed_share_of_photos():
    assert 0 < len(CONTROL) < len(SCENARIO), CONTROL  # the scenario has photos in both arms
    drawn = sum(in_control_arm(f"photo-{i}.jpg", 0.2) for i in range(5000))
    assert 900 <= drawn <= 1100  # 20% of 5,000, within sampling error


def test_control_tasks_carry_no_prediction_ever_and_come_back_as_the_control_arm(review_setup, add_round):
    s = review_setup(SCENARIO)
    result = push(s.ws, s.client, control=SHARE)
    assert result.control == len(CONTROL)
    tasks = {t.data["photo"]: t for t in s.client.sdk.tasks.list(project=result.project_id, fields="all").items}
    for photo, task in tasks.items():
        in_control = photo in CONTROL
        assert (task.data.get(ARM_FIELD) == CONTROL_ARM) == in_control
        assert bool(task.predictions or task.total_predictions) != in_control, photo
    add_round(s.ws, SCENARIO, 1)  # a new round: untouched tasks get the new prediction, control ones none
    again = push(s.ws, s.client, control=SHARE)
    assert again.replaced == len(SCENARIO) - len(CONTROL) and again.created == 0
    for task in s.client.sdk.tasks.list(project=result.project_id, fields="all").items:
        if task.data["photo"] in CONTROL:
            assert not task.predictions and not task.total_predictions
    photo = next(p for p in SCENARIO if p.name in CONTROL)
    boxes = [box_to_result(b, photo.width, photo.height, f"d{i}") for i, b in enumerate(photo.truth)]
    s.client.sdk.annotations.create(tasks[photo.name].id, result=boxes, lead_time=42.5)
    pull(s.ws, s.client)
    meta = ReviewMeta.from_dict(s.ws.store.labels.current_label(photo.name).meta)
    assert meta.arm == CONTROL_ARM and meta.operations is None and meta.lead_time == pytest.approx(42.5)


def test_the_simulated_reviewer_draws_control_photos_from_scratch(review_setup):
    s = review_setup(SCENARIO)
    push(s.ws, s.client, control=SHARE)
    done = simulate(s.ws, s.client, count=len(SCENARIO), truth_dir=s.folder / "truth")
    assert done.annotated == len(SCENARIO)
    pull(s.ws, s.client)
    for photo in SCENARIO:
        meta = ReviewMeta.from_dict(s.ws.store.labels.current_label(photo.name).meta)
        if photo.name in CONTROL:
            assert meta.arm == CONTROL_ARM and meta.operations is None
        else:
            assert meta.arm is None and meta.operations is not None
        assert meta.lead_time is not None and meta.lead_time > 0


def test_the_fixed_evaluation_set_never_enters_the_queue(review_setup, add_round):
    s = review_setup(SCENARIO)
    held_out = {"p2.jpg", "p4.jpg"}
    s.ws.store.labels.set_splits({p: EVAL_SPLIT for p in held_out})
    result = push(s.ws, s.client)
    add_round(s.ws, SCENARIO, 1)
    push(s.ws, s.client)  # a new round re-predicts every photo: the held-out ones stay out
    photos = {t.data["photo"] for t in s.client.sdk.tasks.list(project=result.project_id, fields="all").items}
    assert photos == {p.name for p in SCENARIO} - held_out
    assert set(s.ws.store.review.task_map()) == photos
