"""push against a real Label Studio: one task per photo, ever; a new round replaces only untouched
predictions; a push killed half-way is finished by the next without duplicates."""

from __future__ import annotations

import pytest

from annotator.types import Box
from review_queue.labelstudio.push import push
from review_queue.simulate import simulate

pytestmark = pytest.mark.server


def _shifted(photo):
    """A new round's prediction: every box one pixel to the right and down."""
    return tuple(Box(b.label, b.x1 + 1, b.y1 + 1, b.x2 + 1, b.y2 + 1, score=0.5) for b in photo.predicted)


def _server_tasks(s, pid):
    return [t for page in s.client.task_pages(pid, fields="all") for t in page]


def test_push_twice_creates_nothing_new(review_setup):
    s = review_setup()
    first = push(s.ws, s.client)
    second = push(s.ws, s.client)
    assert (second.created, second.replaced, second.up_to_date) == (0, 0, len(s.photos))
    tasks = _server_tasks(s, first.project_id)
    assert sorted(t.data["photo"] for t in tasks) == sorted(p.name for p in s.photos)
    assert {t.id for t in tasks} == set(s.ws.store.task_map().values())  # ids recorded for the right photos
    assert all(s.ws.store.task_map()[t.data["photo"]] == t.id for t in tasks)


def test_new_round_replaces_untouched_predictions_only(review_setup, add_round):
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    annotated = set(simulate(s.ws, s.client, count=2).task_ids)
    before = {t.id: [(p.id, p.result) for p in t.predictions] for t in _server_tasks(s, pid)}

    add_round(s.ws, s.photos, 1, boxes=_shifted)
    result = push(s.ws, s.client)
    assert (result.created, result.replaced, result.kept_annotated) == (0, 4, 2)
    assert result.model_version == "round-001"

    tasks = _server_tasks(s, pid)
    assert len(tasks) == len(s.photos)
    for task in tasks:
        if task.id in annotated:  # annotated: untouched, still the round-0 prediction
            assert [(p.id, p.result) for p in task.predictions] == before[task.id]
            assert len(task.annotations) == 1
        else:  # untouched: exactly one prediction, the new round's
            assert [p.model_version for p in task.predictions] == ["round-001"]
            assert task.predictions[0].result[0]["value"]["x"] != before[task.id][0][1][0]["value"]["x"]
    project = s.client.sdk.projects.get(pid)
    assert project.model_version == "round-001" and project.sampling == "Uncertainty sampling"
    again = push(s.ws, s.client)
    assert (again.created, again.replaced, again.kept_annotated) == (0, 0, 2)


def test_push_killed_after_an_import_is_finished_without_duplicates(review_setup, monkeypatch):
    s = review_setup()
    real = s.ws.store.record_tasks
    calls = {"n": 0}

    def crash_after_first_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch reached Label Studio, the store never heard of it
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(s.ws.store, "record_tasks", crash_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        push(s.ws, s.client, batch=2)
    monkeypatch.setattr(s.ws.store, "record_tasks", real)
    assert len(s.ws.store.task_map()) == 2

    result = push(s.ws, s.client, batch=2)
    assert (result.adopted, result.created) == (2, 2)
    tasks = _server_tasks(s, result.project_id)
    assert sorted(t.data["photo"] for t in tasks) == sorted(p.name for p in s.photos)
    assert all(s.ws.store.task_map()[t.data["photo"]] == t.id for t in tasks)
    assert push(s.ws, s.client).created == 0


def test_push_killed_right_after_creating_the_project_adopts_it_instead_of_making_another(review_setup, monkeypatch):
    s = review_setup()
    sdk_projects = s.client.sdk.projects
    real_create = sdk_projects.create

    def created_then_killed(*args, **kwargs):
        real_create(*args, **kwargs)  # Label Studio has the project; the store never hears its id
        raise KeyboardInterrupt

    monkeypatch.setattr(sdk_projects, "create", created_then_killed)
    with pytest.raises(KeyboardInterrupt):
        push(s.ws, s.client)
    monkeypatch.setattr(sdk_projects, "create", real_create)

    result = push(s.ws, s.client)
    titled = [p for p in sdk_projects.list() if p.title == s.ws.config.project_title]
    assert len(titled) == 1 and titled[0].id == result.project_id
    assert result.created == len(s.photos)


def test_a_new_round_leaves_a_skipped_task_with_the_prediction_the_reviewer_skipped(review_setup, add_round):
    # A skip is a reviewer's decision about that prediction: push counts the task as worked on
    # (kept_annotated) and never swaps the prediction under it, as it does for untouched tasks.
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    skipped_task = s.ws.store.task_map()["p0.jpg"]
    s.client.sdk.annotations.create(skipped_task, result=[], was_cancelled=True, lead_time=3.0)
    before = next([(p.id, p.result) for p in t.predictions] for t in _server_tasks(s, pid) if t.id == skipped_task)

    add_round(s.ws, s.photos, 1, boxes=_shifted)
    result = push(s.ws, s.client)
    assert (result.replaced, result.kept_annotated) == (len(s.photos) - 1, 1)
    task = next(t for t in _server_tasks(s, pid) if t.id == skipped_task)
    assert [(p.id, p.result) for p in task.predictions] == before
    assert [p.model_version for p in task.predictions] == ["round-000"]
