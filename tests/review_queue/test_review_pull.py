"""pull against a real Label Studio: idempotent, crash-safe, and strict about what it merges; a reviewed
box outside the photo or under a pixel gets the rule ingest applies (clipped or dropped, reported),
and the review is stored."""

from __future__ import annotations

import json

import pytest

from annotator.types import Box, Source
from review_queue.labelstudio import pull as pull_module
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.pull import pending_annotations, pull
from review_queue.labelstudio.push import push
from review_queue.simulate import simulate

pytestmark = pytest.mark.server


def _versions(ws):
    return ws.store.conn.execute("SELECT COUNT(*) FROM label_versions WHERE source='reviewed'").fetchone()[0]


def _reviewed_setup(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    simulate(s.ws, s.client, count=len(s.photos))
    return s


def test_pull_twice_is_a_no_op(review_setup):
    s = _reviewed_setup(review_setup)
    first = pull(s.ws, s.client)
    labels = {p: v.id for p, v in s.ws.store.labels.current_labels().items()}
    second = pull(s.ws, s.client, full=True)  # re-reads every annotation: each is recognised as stored
    assert (first.current, second.current, second.history, second.already_pulled) == (6, 0, 0, 6)
    assert _versions(s.ws) == 6
    assert {p: v.id for p, v in s.ws.store.labels.current_labels().items()} == labels


@pytest.mark.parametrize("where", ["between annotations", "inside a transaction"])
def test_pull_killed_half_way_loses_nothing_and_duplicates_nothing(review_setup, monkeypatch, where):
    s = _reviewed_setup(review_setup)
    stored = {"n": 0}
    if where == "between annotations":
        real = pull_module._store_annotation

        def crash(ws, item):
            if stored["n"] == 3:
                raise KeyboardInterrupt
            stored["n"] += 1
            return real(ws, item)

        monkeypatch.setattr(pull_module, "_store_annotation", crash)
    else:  # the label version is written, its pulled-row is not: the transaction must roll back
        real = s.ws.store.review.record_pulled

        def crash(*args, **kwargs):
            if stored["n"] == 3:
                raise KeyboardInterrupt
            stored["n"] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(s.ws.store.review, "record_pulled", crash)
    with pytest.raises(KeyboardInterrupt):
        pull(s.ws, s.client)
    monkeypatch.undo()
    assert _versions(s.ws) == 3 and len(s.ws.store.review.pulled_annotations()) == 3

    again = pull(s.ws, s.client)
    assert (again.current, again.already_pulled) == (3, 3)
    assert _versions(s.ws) == 6 and len(s.ws.store.review.pulled_annotations()) == 6
    assert all(v.source is Source.REVIEWED for v in s.ws.store.labels.current_labels().values())
    assert s.ws.store.mirror.stale_voc() == []


def test_bad_annotations_are_reported_not_merged(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    tasks = s.ws.store.review.task_map()
    good = box_to_result(Box("mel", 10, 10, 50, 50), 320, 240, "ok")
    unknown = {**good, "id": "u", "value": {**good["value"], "rectanglelabels": ["nevus"]}}
    no_size = {k: v for k, v in good.items() if k not in ("original_width", "original_height")}
    for photo, result in (("p0.jpg", [good, unknown]), ("p1.jpg", [no_size])):
        s.client.sdk.annotations.create(tasks[photo], result=result, lead_time=1.0)
    result = pull(s.ws, s.client)
    assert result.current == 0
    problems = {i["photo"]: i["problem"] for i in result.issues}
    assert "unknown label 'nevus'" in problems["p0.jpg"]
    assert "original_width/original_height missing" in problems["p1.jpg"]
    report = json.loads((s.ws.reports_dir / "pull-issues.json").read_text())
    assert len(report["issues"]) == 2
    assert all(v.source is Source.MODEL for v in s.ws.store.labels.current_labels().values())


def test_a_box_outside_the_photo_is_clipped_reported_and_the_review_stored(review_setup):
    # the same rule as ingest (annotator.boxes.fit_box): init clips a box 40 px outside, so pull does too
    s = review_setup()
    push(s.ws, s.client)
    tasks = s.ws.store.review.task_map()
    inside = Box("hori", 10, 10, 80, 60)
    outside = Box("caf", 250, 150, 340, 190)  # 40 px past the right edge of the 300x200 photo p2
    sliver = Box("sl", 299.5, 20, 330, 40)  # half a pixel inside: dropped
    result = [box_to_result(b, 300, 200, rid) for b, rid in ((inside, "in"), (outside, "far"), (sliver, "thin"))]
    s.client.sdk.annotations.create(tasks["p2.jpg"], result=result, lead_time=1.0)

    pulled = pull(s.ws, s.client)
    assert (pulled.current, pulled.issues) == (1, [])
    stored = s.ws.store.labels.current_label("p2.jpg")
    assert stored.source is Source.REVIEWED
    assert [(b.label, round(b.x1), round(b.x2)) for b in stored.boxes] == [("hori", 10, 80), ("caf", 250, 300)]
    report = json.loads((s.ws.reports_dir / "pull-issues.json").read_text())
    assert report["fixed"] == pulled.fixed
    clipped, dropped = report["fixed"]
    assert [clipped[k] for k in ("photo", "region", "action", "outside_px")] == ["p2.jpg", "far", "clipped", 40.0]
    assert "40.0 px outside the 300x200 photo" in clipped["message"] and clipped["task_id"] == tasks["p2.jpg"]
    assert [dropped[k] for k in ("photo", "region", "reason", "action")] == [
        "p2.jpg",
        "thin",
        "box-outside-photo",
        "box dropped",
    ]
    assert [f["region"] for f in stored.meta["box_fixes"]] == ["far", "thin"], "kept with the review, too"


def test_excluded_photo_and_several_annotations(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    tasks = s.ws.store.review.task_map()
    exclude = {
        "id": "ex",
        "type": "choices",
        "from_name": "exclude",
        "to_name": "image",
        "value": {"choices": ["blurred"]},
    }
    s.client.sdk.annotations.create(tasks["p4.jpg"], result=[exclude], lead_time=2.0)
    first = s.client.sdk.annotations.create(tasks["p3.jpg"], result=[], lead_time=1.0)
    later = s.client.sdk.annotations.create(
        tasks["p3.jpg"], result=[box_to_result(Box("sl", 1, 2, 30, 40), 256, 256, "n1")], lead_time=5.0
    )
    result = pull(s.ws, s.client)
    assert (result.current, result.history) == (2, 1)

    p4 = s.ws.store.labels.current_label("p4.jpg")
    assert p4.excluded and p4.meta["exclude_reasons"] == ["blurred"] and p4.boxes == ()
    assert p4.meta["edits"]["deleted"] == 1  # the reviewer removed the predicted ota box
    p3 = s.ws.store.labels.current_label("p3.jpg")
    assert p3.meta["annotation_id"] == later.id and p3.boxes == (Box("sl", 1, 2, 30, 40),)
    history = [v for v in s.ws.store.labels.history("p3.jpg") if v.source is Source.REVIEWED]
    assert [v.meta["annotation_id"] for v in history] == [first.id, later.id]

    # an edited annotation comes back as a new version; the unedited ones are not pulled again: the pull exports
    # only the task whose time changed (p3), whose other, unedited annotation it finds already pulled
    s.client.sdk.annotations.update(first.id, result=[box_to_result(Box("fre", 5, 5, 20, 20), 256, 256, "n2")])
    again = pull(s.ws, s.client)
    assert (again.current + again.history, again.already_pulled) == (1, 1)
    assert s.ws.store.labels.current_label("p3.jpg").meta["annotation_id"] == first.id  # now the latest edit


def _skip(s, photo: str):
    """What Label Studio's Skip button does: a cancelled annotation with no result."""
    return s.client.sdk.annotations.create(
        s.ws.store.review.task_map()[photo], result=[], was_cancelled=True, lead_time=3.0
    )


def test_a_skipped_task_is_counted_as_skipped_not_stored_as_a_label(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    _skip(s, "p0.jpg")
    result = pull(s.ws, s.client)
    assert (result.skipped, result.stored, result.issues) == (1, 0, [])
    assert _versions(s.ws) == 0 and s.ws.store.review.pulled_annotations() == {}
    assert s.ws.store.labels.current_label("p0.jpg").source is Source.MODEL  # still in the queue, awaiting a review


def test_a_skipped_task_does_not_wait_to_be_pulled(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    _skip(s, "p0.jpg")
    assert pending_annotations(s.ws, s.client) == 0
