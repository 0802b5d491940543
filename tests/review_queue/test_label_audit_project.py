"""The label audit project against a real Label Studio: a doubted photo is pushed with its current label as the
served starting point and the model's suggestion beside it; nothing changes until a person submits; the submitted
annotation comes back as a new reviewed version with its provenance (who, when, the doubted version, the issue)."""

from __future__ import annotations

import pytest

from annotator.types import Box, LabelVersion, Source
from review_queue.label_audit import (
    CURRENT_LABEL,
    SUGGESTION,
    DoubtedLabel,
    pull_label_audit,
    push_label_audit,
)
from review_queue.labelstudio.convert import box_to_result, result_to_box
from review_queue.review_meta import ReviewMeta
from tests.review_queue.conftest import SCENARIO

pytestmark = pytest.mark.server

HAND = (Box("mel", 10, 10, 40, 40), Box("sl", 100, 50, 130, 90))
SUGGESTED = (Box("hori", 10, 10, 40, 40, score=0.9), Box("sl", 100, 50, 130, 90, score=0.8))


def _doubt(s) -> DoubtedLabel:
    s.ws.store.labels.add_label_version(LabelVersion("p1.jpg", Source.MANUAL, HAND))
    label = s.ws.store.labels.current_label("p1.jpg")
    return DoubtedLabel("p1.jpg", label, SUGGESTED, issue="swapped class", score=0.12)


def _boxes(result, s):
    record = s.ws.store.labels.image("p1.jpg")
    boxes = [result_to_box(r, record.width, record.height) for r in result]
    return [(b.label, round(b.x1), round(b.y1), round(b.x2), round(b.y2)) for b in boxes]


def test_a_doubted_label_is_served_as_the_starting_point_beside_the_suggestion(review_setup):
    s = review_setup(SCENARIO)
    doubt = _doubt(s)
    pushed = push_label_audit(s.ws, s.client, [doubt])
    project = s.client.sdk.projects.get(pushed.project_id)
    assert project.show_collab_predictions and "label audit" in project.title
    assert project.model_version == CURRENT_LABEL, "the current label is what the reviewer starts from"
    (task,) = list(s.client.sdk.tasks.list(project=pushed.project_id, fields="all").items)
    assert task.data["photo"] == "p1.jpg" and task.data["label_version"] == doubt.label.id
    assert task.data["issue"] == "swapped class" and "swapped class" in task.data["conflict"]
    served = [p if isinstance(p, dict) else p.model_dump() for p in task.predictions]
    predictions = {p["model_version"]: p for p in served}
    assert _boxes(predictions[CURRENT_LABEL]["result"], s) == [(b.label, b.x1, b.y1, b.x2, b.y2) for b in HAND]
    assert _boxes(predictions[SUGGESTION]["result"], s) == [(b.label, b.x1, b.y1, b.x2, b.y2) for b in SUGGESTED]
    again = push_label_audit(s.ws, s.client, [doubt])
    assert (again.created, again.already_there) == (0, 1)


def test_only_a_persons_submitted_annotation_changes_the_label_and_it_keeps_its_provenance(review_setup):
    s = review_setup(SCENARIO)
    doubt = _doubt(s)
    pushed = push_label_audit(s.ws, s.client, [doubt])
    assert pull_label_audit(s.ws, s.client).stored == 0
    assert s.ws.store.labels.current_label("p1.jpg").id == doubt.label.id, "no person, no change"
    (task,) = list(s.client.sdk.tasks.list(project=pushed.project_id, fields="all").items)
    record = s.ws.store.labels.image("p1.jpg")
    fixed = [
        box_to_result(Box(b.label, b.x1, b.y1, b.x2, b.y2), record.width, record.height, f"r{i}")
        for i, b in enumerate(SUGGESTED)
    ]
    s.client.call("annotating", s.client.sdk.annotations.create, task.id, idempotent=False, result=fixed, lead_time=7.5)
    pulled = pull_label_audit(s.ws, s.client)
    assert (pulled.stored, pulled.problems) == (1, ())
    current = s.ws.store.labels.current_label("p1.jpg")
    meta = ReviewMeta.from_dict(current.meta)
    assert current.source is Source.REVIEWED and [b.label for b in current.boxes] == ["hori", "sl"]
    assert current.reviewer and current.created_at and meta.updated_at and meta.lead_time == 7.5
    assert (meta.label_audit, meta.label_audit_issue) == (doubt.label.id, "swapped class")
    assert {"label_audit", "label_audit_issue"} <= set(current.meta)
    assert pull_label_audit(s.ws, s.client).unchanged == 1, "pulled once"
    history = s.ws.store.labels.history("p1.jpg")
    assert doubt.label.id in [v.id for v in history], "the doubted label stays in the history"
