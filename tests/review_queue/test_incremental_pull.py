"""Incremental pull against a real Label Studio: after the first pull only tasks changed since the last one
are read, and nothing is missed: edits, deletions and new annotations between pulls leave the store equal
to Label Studio's state, and `full=True` agrees."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from annotator.types import Box, Source
from review_queue.labelstudio import pull as pull_module
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.pull import WATERMARK_KEY, pull
from review_queue.labelstudio.push import push

pytestmark = pytest.mark.server


def _annotate(s, photo: str, box: Box):
    rec = s.ws.store.labels.image(photo)
    task = s.ws.store.review.task_map()[photo]
    result = [box_to_result(box, rec.width, rec.height, "r1")]
    return s.client.sdk.annotations.create(task, result=result, lead_time=2.0, was_cancelled=False)


def _server_state(s) -> dict[int, str]:
    """Label Studio's submitted annotations of the workspace's tasks: id -> updated_at."""
    state = {}
    for task_id in s.ws.store.review.task_map().values():
        for ann in s.client.sdk.annotations.list(task_id):
            if not ann.was_cancelled:
                state[int(ann.id)] = ann.updated_at.isoformat().replace("+00:00", "Z")
    return state


def _store_state(s) -> dict[int, str]:
    """The store's live pulled annotations (not marked deleted): id -> the updated_at stored."""
    deleted = s.ws.store.review.deleted_annotations()
    return {a: u for a, u in s.ws.store.review.pulled_annotations().items() if a not in deleted}


def _same_time(a: dict[int, str], b: dict[int, str]) -> bool:
    """Label Studio writes times with and without trailing zeros in the microseconds; compare the instants."""

    def norm(d):
        return {k: dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in d.items()}

    return norm(a) == norm(b)


def _current_annotation(s, photo: str) -> int | None:
    return s.ws.store.labels.current_label(photo).meta.get("annotation_id")


def test_edits_deletions_and_new_annotations_between_pulls_leave_the_store_equal_to_label_studio(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    edited = _annotate(s, "p0.jpg", Box("mel", 10, 10, 60, 60))
    removed = _annotate(s, "p1.jpg", Box("sl", 20, 20, 60, 60))
    _annotate(s, "p2.jpg", Box("hori", 10, 10, 80, 60))
    first = pull(s.ws, s.client)
    assert (first.full, first.current) == (True, 3)
    assert _same_time(_store_state(s), _server_state(s))

    # between pulls: an annotation edited after it was pulled, one deleted, one new, a second one on a photo
    s.client.sdk.annotations.update(edited.id, result=[box_to_result(Box("fre", 5, 5, 40, 40), 320, 240, "r1")])
    s.client.sdk.annotations.delete(removed.id)
    added = _annotate(s, "p3.jpg", Box("mel", 30, 30, 60, 60))
    second_on_p2 = _annotate(s, "p2.jpg", Box("caf", 100, 100, 200, 180))
    again = pull(s.ws, s.client)

    assert (again.full, again.reason) == (False, "incremental")
    assert again.current == 3  # the edit, the new annotation, the second review of p2
    assert _same_time(_store_state(s), _server_state(s))
    assert s.ws.store.labels.current_label("p0.jpg").boxes == (Box("fre", 5, 5, 40, 40),)
    assert (_current_annotation(s, "p3.jpg"), _current_annotation(s, "p2.jpg")) == (added.id, second_on_p2.id)
    assert [d["annotation_id"] for d in again.deleted] == [removed.id]
    kept = [v for v in s.ws.store.labels.history("p1.jpg") if v.source is Source.REVIEWED]
    assert [v.meta["annotation_id"] for v in kept] == [removed.id], "a deleted annotation's review is never lost"
    report = json.loads((s.ws.reports_dir / "pull-issues.json").read_text())
    assert [d["photo"] for d in report["deleted"]] == ["p1.jpg"]

    full = pull(s.ws, s.client, full=True)
    assert (full.full, full.stored, full.deleted) == (True, 0, [])
    assert _same_time(_store_state(s), _server_state(s))


def test_a_pull_with_nothing_new_stores_nothing_and_stays_incremental(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    _annotate(s, "p0.jpg", Box("mel", 10, 10, 60, 60))
    pull(s.ws, s.client)
    labels = {p: v.id for p, v in s.ws.store.labels.current_labels().items()}
    again = pull(s.ws, s.client)
    assert (again.full, again.stored, again.deleted) == (False, 0, [])
    assert {p: v.id for p, v in s.ws.store.labels.current_labels().items()} == labels


def test_a_deleted_task_is_found_by_a_full_pull(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    gone = _annotate(s, "p4.jpg", Box("ota", 30, 40, 150, 200))
    pull(s.ws, s.client)
    s.client.sdk.tasks.delete(str(s.ws.store.review.task_map()["p4.jpg"]))
    full = pull(s.ws, s.client, full=True)
    assert [d["annotation_id"] for d in full.deleted] == [gone.id]
    assert s.ws.store.labels.current_label("p4.jpg").meta["annotation_id"] == gone.id  # the review stays


def test_a_watermark_of_another_project_makes_a_full_pull(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    _annotate(s, "p0.jpg", Box("mel", 10, 10, 60, 60))
    s.ws.store.set_meta(WATERMARK_KEY, json.dumps({"project_id": -1, "updated_at": "2099-01-01T00:00:00+00:00"}))
    result = pull(s.ws, s.client)
    assert (result.full, result.reason, result.current) == (True, "first pull of this project", 1)


def test_an_unmerged_annotation_stays_reported_until_it_is_fixed(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    bad = box_to_result(Box("mel", 10, 10, 50, 50), 320, 240, "bad")
    bad["value"]["rectanglelabels"] = ["nevus"]
    ann = s.client.sdk.annotations.create(s.ws.store.review.task_map()["p0.jpg"], result=[bad], lead_time=1.0)
    assert [i["annotation_id"] for i in pull(s.ws, s.client).issues] == [ann.id]
    _annotate(s, "p1.jpg", Box("sl", 20, 20, 60, 60))
    again = pull(s.ws, s.client)
    assert (again.full, again.current, [i["annotation_id"] for i in again.issues]) == (False, 1, [ann.id])
    s.client.sdk.annotations.update(ann.id, result=[box_to_result(Box("mel", 10, 10, 50, 50), 320, 240, "ok")])
    fixed = pull(s.ws, s.client)
    assert (fixed.current, fixed.issues) == (1, [])


def test_a_full_pull_exported_in_chunks_stores_every_annotation_once(review_setup, monkeypatch):
    monkeypatch.setattr(pull_module, "EXPORT_CHUNK", 2)  # six tasks: three exports, the last one open-ended
    s = review_setup()
    push(s.ws, s.client)
    for photo in ("p0.jpg", "p2.jpg", "p3.jpg", "p5.jpg"):
        _annotate(s, photo, Box("mel", 10, 10, 60, 60))
    first = pull(s.ws, s.client)
    again = pull(s.ws, s.client, full=True)
    assert (first.full, first.tasks, first.current, again.stored, again.already_pulled) == (True, 4, 4, 0, 4)
    assert _same_time(_store_state(s), _server_state(s))


def test_the_watermark_is_the_listing_of_every_task_taken_before_the_exports(review_setup):
    """The next pull compares every task's time with this listing: a task listed with another time is read
    again, however old that time (a late commit), and a failed listing keeps the last one."""
    s = review_setup()
    listed = {1: dt.datetime(2026, 12, 1, 9, 50, tzinfo=dt.UTC), 2: dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)}
    pull_module._save_watermark(s.ws, 7, listed)
    pull_module._save_watermark(s.ws, 7, "listing the tasks failed (down)")
    mark = pull_module._watermark(s.ws, 7)
    assert mark is not None and mark.seen == listed


def test_a_watermark_of_the_time_overlap_rule_makes_one_full_pull(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    _annotate(s, "p0.jpg", Box("mel", 10, 10, 60, 60))
    project_id = pull_module.require_project_id(s.ws)
    old = {"project_id": project_id, "updated_at": "2026-12-01T10:00:00+00:00", "recent": {}}
    s.ws.store.set_meta(WATERMARK_KEY, json.dumps(old))
    assert pull_module._watermark(s.ws, project_id) is None
    first = pull(s.ws, s.client)
    assert (first.full, first.current) == (True, 1)
    assert pull(s.ws, s.client).full is False
