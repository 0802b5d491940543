"""push -> (simulated) review -> pull against a real Label Studio: the labels that come back are the
reviewer's, every edit is recorded with its provenance, and Label Studio serves our queue order."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from annotator.types import Source
from review_queue.edits import EditKind, EditOp
from review_queue.labelstudio.convert import SIMULATED_REVIEWER
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from review_queue.review_meta import ReviewMeta
from review_queue.simulate import queue_query, simulate
from review_queue.status import review_status

pytestmark = pytest.mark.server


def _operations(version) -> tuple[EditOp, ...]:
    """A stored review's edit diff, parsed."""
    return ReviewMeta.from_dict(version.meta).operations or ()


def _close(a, b, tol=1.0):
    return a.label == b.label and all(
        abs(p - q) <= tol for p, q in zip((a.x1, a.y1, a.x2, a.y2), (b.x1, b.y1, b.x2, b.y2), strict=True)
    )


def test_reviewed_labels_equal_ground_truth(review_setup):
    s = review_setup()
    pushed = push(s.ws, s.client)
    assert pushed.created == len(s.photos)
    sim = simulate(s.ws, s.client, count=len(s.photos), accept_iou=None)  # a pixel-exact reviewer
    assert sim.annotated == len(s.photos)
    result = pull(s.ws, s.client)
    assert (result.current, result.history, result.issues) == (len(s.photos), 0, [])

    labels = s.ws.store.labels.current_labels()
    for photo in s.photos:
        version = labels[photo.name]
        assert version.source is Source.REVIEWED
        truth = sorted(photo.truth, key=lambda b: (b.label, b.x1))
        got = sorted(version.boxes, key=lambda b: (b.label, b.x1))
        assert len(got) == len(truth) and all(_close(g, t) for g, t in zip(got, truth, strict=True)), photo.name
        assert all(b.score is None for b in got)


def test_every_edit_is_recorded_with_provenance(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    simulate(s.ws, s.client, count=len(s.photos))
    pull(s.ws, s.client)
    tasks = s.ws.store.review.task_map()
    seen: dict[str, int] = {k.value: 0 for k in EditKind}
    for photo in s.photos:
        version = s.ws.store.labels.current_label(photo.name)
        meta = version.meta
        assert version.reviewer == SIMULATED_REVIEWER and meta["simulated"] is True
        assert version.round == 0 and version.model_version == "round-000"
        assert meta["task_id"] == tasks[photo.name] and isinstance(meta["annotation_id"], int)
        assert meta["lead_time"] > 0 and meta["updated_at"] and meta["parent_prediction"]
        for op in _operations(version):
            seen[op.kind.value] += 1
        assert sum(meta["edits"][k.value] for k in EditKind) == len(_operations(version))
        # the VOC mirror follows, marked verified
        root = etree.parse(str(s.ws.voc_path(photo.name))).getroot()
        assert root.get("verified") == "yes" and root.findtext("annotator/source") == "reviewed"
    # the scenario: p0 accepted+moved, p1 relabelled+deleted, p2 accepted+added, p3 deleted,
    # p4 accepted, p5 relabelled(+moved)+accepted
    assert seen == {"accepted": 4, "moved": 1, "relabelled": 2, "deleted": 2, "added": 1}
    moved = next(o for o in _operations(s.ws.store.labels.current_label("p0.jpg")) if o.kind is EditKind.MOVED)
    assert moved.label == "fre" and moved.iou is not None and 0.5 <= moved.iou < 1.0
    relabel = next(o for o in _operations(s.ws.store.labels.current_label("p1.jpg")) if o.kind is EditKind.RELABELLED)
    assert (relabel.label, relabel.new_label) == ("caf", "sl")

    status = review_status(s.ws)
    assert (status.pushed, status.reviewed, status.excluded, status.remaining) == (6, 6, 0, 0)
    # 9 predicted boxes, 5 of them corrected (moved 1, relabelled 2, deleted 2), and 1 missed lesion added
    corrections = status.corrections
    assert corrections.predicted_boxes == 9 and corrections.correction_rate == pytest.approx(6 / 10, abs=1e-4)
    assert corrections.correction_rate_per_class["caf"] == 1.0 and corrections.correction_rate_per_class["ota"] == 0.5
    assert corrections.added_per_photo == pytest.approx(1 / 6, abs=1e-4)


def test_label_studio_serves_the_most_uncertain_first(review_setup, live_server):
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    expected = [p.name for p in sorted(s.photos, key=lambda p: -p.uncertainty)]
    served = [t.data["photo"] for page in s.client.task_pages(pid, fields="all", query=queue_query()) for t in page]
    assert served == expected
    nxt = httpx.get(
        f"{live_server.url}/api/projects/{pid}/next",
        headers={"Authorization": f"Token {live_server.credentials.token}"},
    )
    assert nxt.status_code == 200 and nxt.json()["data"]["photo"] == expected[0]
    # the simulated reviewer follows the same queue
    sim = simulate(s.ws, s.client, count=2)
    tasks = s.ws.store.review.task_map()
    assert sim.task_ids == [tasks[expected[0]], tasks[expected[1]]]


def test_photos_are_served_and_nothing_beside_them(review_setup, live_server):
    s = review_setup()
    pid = push(s.ws, s.client).project_id
    auth = {"Authorization": f"Token {live_server.credentials.token}"}
    task = next(t for page in s.client.task_pages(pid) for t in page if t.data["photo"] == "p1.jpg")
    photo = httpx.get(live_server.url + task.data["image"], headers=auth)
    assert photo.status_code == 200 and photo.content == (s.folder / "images" / "p1.jpg").read_bytes()
    prefix = task.data["image"].split("?d=")[0] + "?d="
    case = task.data["image"].split("?d=")[1].split("/")[0]  # the photo folder's parent, under the root
    crafted = [
        f"{case}/truth/p1.xml",
        f"{case}/images/../truth/p1.xml",
        f"{case}/images/%2e%2e/truth/p1.xml",
        f"{case}/ws/annotator.db",
        "../../../../etc/passwd",
        "/etc/passwd",
        f"{case}/images/../../../etc/hosts",
    ]
    for path in crafted:  # refused: 404, or 500 where Django's safe_join rejects a traversal
        refused = httpx.get(live_server.url + prefix + path, headers=auth)
        assert refused.status_code in (404, 500) and b"root:" not in refused.content, path
    assert httpx.get(live_server.url + task.data["image"]).status_code in (401, 403)


def test_status_works_offline_before_any_review(review_setup):
    s = review_setup()
    push(s.ws, s.client)
    status = review_status(s.ws)
    assert (status.pushed, status.reviewed, status.remaining) == (6, 0, 6)
    assert status.corrections.correction_rate is None
