"""push against a real Label Studio: one task per photo, ever; a new round replaces only untouched
predictions; a push killed half-way is finished by the next without duplicates; a photo with an open
label conflict is the first task served, whether or not the model predicted it."""

from __future__ import annotations

import uuid

import httpx
import pytest
from PIL import Image

from annotator.types import Box, ImageRecord, LabelVersion, Source
from review_queue.corrections import correction_summary
from review_queue.labelstudio.convert import CONFLICT_SCORE, box_to_result, model_version_of, shuffled_score
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from review_queue.simulate import queue_query, simulate

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
    assert {t.id for t in tasks} == set(s.ws.store.review.task_map().values())  # ids recorded for the right photos
    assert all(s.ws.store.review.task_map()[t.data["photo"]] == t.id for t in tasks)


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
    real = s.ws.store.review.record_tasks
    calls = {"n": 0}

    def crash_after_first_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch reached Label Studio, the store never heard of it
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(s.ws.store.review, "record_tasks", crash_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        push(s.ws, s.client, batch=2)
    monkeypatch.setattr(s.ws.store.review, "record_tasks", real)
    assert len(s.ws.store.review.task_map()) == 2

    result = push(s.ws, s.client, batch=2)
    # the third batch was already on its way when the second was being recorded: both are adopted, none made again
    assert (result.adopted, result.created) == (4, 0)
    tasks = _server_tasks(s, result.project_id)
    assert sorted(t.data["photo"] for t in tasks) == sorted(p.name for p in s.photos)
    assert all(s.ws.store.review.task_map()[t.data["photo"]] == t.id for t in tasks)
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
    skipped_task = s.ws.store.review.task_map()["p0.jpg"]
    s.client.sdk.annotations.create(skipped_task, result=[], was_cancelled=True, lead_time=3.0)
    before = next([(p.id, p.result) for p in t.predictions] for t in _server_tasks(s, pid) if t.id == skipped_task)

    add_round(s.ws, s.photos, 1, boxes=_shifted)
    result = push(s.ws, s.client)
    assert (result.replaced, result.kept_annotated) == (len(s.photos) - 1, 1)
    task = next(t for t in _server_tasks(s, pid) if t.id == skipped_task)
    assert [(p.id, p.result) for p in task.predictions] == before
    assert [p.model_version for p in task.predictions] == ["round-000"]


# ---- conflicts are served first -----------------------------------------------------------------------

HAND_BOXES = (Box("mel", 10, 10, 60, 60),)  # the current label (a.xml)
OTHER_BOXES = (Box("mel", 14, 10, 60, 60), Box("sl", 100, 100, 120, 120))  # another copy's label (b.xml)


def _conflicting_photo(s, name: str = "c.jpg", size: tuple[int, int] = (200, 160)) -> int:
    """A hand-labelled photo the model never predicted, whose duplicate brought other boxes (as ingest
    flags it). Returns the waiting version's id."""
    Image.new("RGB", size, (10, 200, 10)).save(s.folder / "images" / name)
    s.ws.store.labels.add_image(ImageRecord(path=name, sha256=uuid.uuid4().hex, width=size[0], height=size[1]))
    s.ws.store.labels.add_label_version(LabelVersion(name, Source.MANUAL, HAND_BOXES, meta={"xml": "a.xml"}))
    waiting = s.ws.store.labels.add_history_version(
        LabelVersion(name, Source.MANUAL, OTHER_BOXES, meta={"xml": "b.xml"})
    )
    s.ws.store.labels.flag_conflict(name, "duplicate-labels", "copies of this photo carry different boxes", waiting)
    return waiting


def _next_task(live_server, pid: int) -> dict:
    served = httpx.get(
        f"{live_server.url}/api/projects/{pid}/next",
        headers={"Authorization": f"Token {live_server.credentials.token}"},
    )
    assert served.status_code == 200, served.text
    return served.json()


def _queue(s, pid: int) -> list[str]:
    return [t.data["photo"] for page in s.client.task_pages(pid, fields="all", query=queue_query()) for t in page]


def test_a_conflicting_photo_without_a_prediction_is_the_first_task_served(review_setup, live_server):
    s = review_setup()
    waiting = _conflicting_photo(s)
    result = push(s.ws, s.client)
    assert (result.created, result.conflicts) == (len(s.photos) + 1, 1)

    task = _next_task(live_server, result.project_id)
    assert task["data"]["photo"] == "c.jpg", "Label Studio serves the conflict before the most uncertain prediction"
    assert "duplicate-labels" in task["data"]["conflict"] and "different boxes" in task["data"]["conflict"]
    assert _queue(s, result.project_id)[0] == "c.jpg"  # the queue the simulated reviewer follows too
    (check,) = task["predictions"]  # the one the reviewer starts from: the current label
    assert check["model_version"] == "round-000" and check["score"] == CONFLICT_SCORE
    assert [r["value"] for r in check["result"]] == [box_to_result(b, 200, 160, "x")["value"] for b in HAND_BOXES]
    (stored,) = [t for t in _server_tasks(s, result.project_id) if t.id == task["id"]]
    other = next(p for p in stored.predictions if p.model_version != "round-000")  # for comparison, beside it
    assert other.model_version == f"conflicting-label {waiting}" and len(other.result) == len(OTHER_BOXES)


def test_pushing_again_leaves_the_conflict_task_as_it_is(review_setup):
    s = review_setup()
    _conflicting_photo(s)
    first = push(s.ws, s.client)
    again = push(s.ws, s.client)
    assert (again.created, again.replaced, again.up_to_date, again.conflicts) == (0, 0, len(s.photos) + 1, 1)
    assert s.ws.store.review.task_map()["c.jpg"] in {t.id for t in _server_tasks(s, first.project_id)}


def test_a_new_round_keeps_the_conflict_first(review_setup, add_round, live_server):
    s = review_setup()
    _conflicting_photo(s)
    pid = push(s.ws, s.client).project_id
    add_round(s.ws, s.photos, 1, boxes=_shifted)
    result = push(s.ws, s.client)
    assert result.model_version == "round-001" and result.conflicts == 1
    task = _next_task(live_server, pid)
    assert task["data"]["photo"] == "c.jpg" and task["predictions"][0]["model_version"] == "round-001"


def test_a_photo_reviewed_before_its_xml_changed_gets_a_new_task_served_first(review_setup, live_server):
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    old_task = s.ws.store.review.task_map()["p4.jpg"]
    s.client.sdk.annotations.create(old_task, result=[box_to_result(b, 200, 300, "r") for b in HAND_BOXES])
    pull(s.ws, s.client)
    waiting = s.ws.store.labels.add_history_version(
        LabelVersion("p4.jpg", Source.MANUAL, OTHER_BOXES, meta={"xml": "p4.xml"})
    )
    s.ws.store.labels.flag_conflict(
        "p4.jpg", "xml-after-review", "p4.xml changed after a dermatologist reviewed", waiting
    )

    result = push(s.ws, s.client)
    assert (result.created, result.conflicts) == (1, 1)
    new_task = s.ws.store.review.task_map()["p4.jpg"]
    assert new_task != old_task
    assert _next_task(live_server, pid)["id"] == new_task


def test_a_push_killed_after_creating_a_second_task_for_a_conflict_adopts_it_instead_of_a_third(
    review_setup, monkeypatch
):
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    old_task = s.ws.store.review.task_map()["p4.jpg"]
    s.client.sdk.annotations.create(old_task, result=[box_to_result(b, 200, 300, "r") for b in HAND_BOXES])
    pull(s.ws, s.client)
    waiting = s.ws.store.labels.add_history_version(
        LabelVersion("p4.jpg", Source.MANUAL, OTHER_BOXES, meta={"xml": "p4.xml"})
    )
    s.ws.store.labels.flag_conflict(
        "p4.jpg", "xml-after-review", "p4.xml changed after a dermatologist reviewed", waiting
    )

    def killed(*args, **kwargs):  # the new task reached Label Studio, the store never heard of it
        raise KeyboardInterrupt

    monkeypatch.setattr(s.ws.store.review, "record_tasks", killed)
    with pytest.raises(KeyboardInterrupt):
        push(s.ws, s.client)
    monkeypatch.undo()

    result = push(s.ws, s.client)
    assert (result.adopted, result.created, result.conflicts) == (1, 0, 1)
    p4_tasks = sorted(t.id for t in _server_tasks(s, pid) if t.data["photo"] == "p4.jpg")
    assert len(p4_tasks) == 2 and s.ws.store.review.task_map()["p4.jpg"] == p4_tasks[1] != old_task


def test_a_review_of_the_conflict_resolves_it_and_stays_out_of_the_correction_statistic(review_setup):
    s = review_setup()
    _conflicting_photo(s)
    push(s.ws, s.client)
    s.client.sdk.annotations.create(
        s.ws.store.review.task_map()["c.jpg"],
        result=[box_to_result(b, 200, 160, "d") for b in OTHER_BOXES],
        lead_time=9.0,
    )
    result = pull(s.ws, s.client)
    assert result.current == 1 and s.ws.store.labels.conflicts() == []
    decided = s.ws.store.labels.current_label("c.jpg")
    assert decided.source is Source.REVIEWED and len(decided.boxes) == len(OTHER_BOXES)
    assert "duplicate-labels" in decided.meta["conflict"] and "operations" not in decided.meta
    assert correction_summary([decided]).unmeasured_photos == 1, "a person's label was checked, not the model's"
    assert push(s.ws, s.client).conflicts == 0


def test_a_random_queue_order_serves_a_fixed_shuffle_instead_of_the_most_uncertain_first(review_setup, live_server):
    """[review] queue_order = "random": a fair sample of the pool, so the batch's correction rate is unbiased."""
    s = review_setup()
    s.ws.set_config(s.ws.config.with_(queue_order="random"))
    pid = push(s.ws, s.client).project_id
    model = {p: v for p, v in s.ws.store.labels.current_labels().items() if v.source is Source.MODEL}
    shuffled = sorted(model, key=lambda p: shuffled_score(p, model_version_of(model[p])))
    by_uncertainty = sorted(model, key=lambda p: -(model[p].uncertainty or 0.0))
    assert shuffled != by_uncertainty  # the scenario tells the two orders apart
    assert _queue(s, pid) == shuffled
    assert _next_task(live_server, pid)["data"]["photo"] == shuffled[0]
    again = push(s.ws, s.client)
    assert (again.created, again.replaced) == (0, 0) and _queue(s, pid) == shuffled  # a re-push does not reshuffle
