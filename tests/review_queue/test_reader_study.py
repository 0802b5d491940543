"""The reader study against a real Label Studio: the test split goes to a readers' project blinded (no
prediction), each reader is a Label Studio user served every photo once, and their reads come back as
the reader (DOCTOR) rows of the benchmark, scored as a hand computation says."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from annotator.types import Box, LabelVersion, Source
from review_queue.labelstudio.convert import IMAGE_TAG, box_to_result
from review_queue.people import client_as
from review_queue.readers import CLASSES_TAG, NO_LESION, pull_readers, push_readers, simulate_readers
from tests.review_queue.conftest import SCENARIO
from training.benchmark import default_reader_files, run_benchmark
from training.readers import READER_READS_FILE

pytestmark = pytest.mark.server

TEST_SPLIT = ("p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg")  # truth: {mel, fre}, {sl}, {hori, caf}, no lesion
READER_A, READER_B = "reader-a@clinic.test", "reader-b@clinic.test"
# what each reader ticks, and (reader B on p1) a box whose class counts as named too
READS = {
    READER_A: {"p0.jpg": ["mel", "fre"], "p1.jpg": ["sl"], "p2.jpg": ["hori"], "p3.jpg": [NO_LESION]},
    READER_B: {"p0.jpg": ["mel"], "p1.jpg": ["sl"], "p2.jpg": ["hori", "caf"], "p3.jpg": [NO_LESION]},
}
B_BOX_ON_P1 = "caf"


def _study(review_setup):
    """A workspace whose photos p0-p3 are the hand-labelled test split and p4, p5 the train split."""
    s = review_setup(SCENARIO)
    s.ws.store.labels.set_splits({p.name: "test" if p.name in TEST_SPLIT else "train" for p in SCENARIO})
    for photo in SCENARIO:
        if photo.name in TEST_SPLIT:
            s.ws.store.labels.add_label_version(LabelVersion(photo.name, Source.MANUAL, photo.truth))
    return s


def _read_everything(s, reader: str) -> list[dict]:
    """The reader takes every task the label stream serves and submits the planned read."""
    acting = client_as(s.client, reader)
    sizes = {p.name: (p.width, p.height) for p in SCENARIO}
    served = []
    pid = int(s.ws.store.get_meta("review.readers_project_id"))
    while (task := acting.next_task(pid)) is not None:
        served.append(task)
        photo = task["data"]["photo"]
        result = [
            {
                "from_name": CLASSES_TAG,
                "to_name": IMAGE_TAG,
                "type": "choices",
                "value": {"choices": READS[reader][photo]},
            }
        ]
        if reader == READER_B and photo == "p1.jpg":
            result.append(box_to_result(Box(B_BOX_ON_P1, 150, 200, 200, 260), *sizes[photo], "b1"))
        acting.call("reading", acting.sdk.annotations.create, int(task["id"]), idempotent=False, result=result)
    return served


def test_the_readers_project_holds_the_test_split_without_predictions(review_setup):
    s = _study(review_setup)
    pushed = push_readers(s.ws, s.client, readers=2)
    project = s.client.sdk.projects.get(pushed.project_id)
    assert project.maximum_annotations == 2 and not project.show_collab_predictions
    tasks = list(s.client.sdk.tasks.list(project=pushed.project_id, fields="all").items)
    assert sorted(t.data["photo"] for t in tasks) == list(TEST_SPLIT)
    assert all(not t.predictions and not (t.total_predictions or 0) for t in tasks)
    assert all(set(t.data) == {"image", "photo"} for t in tasks), "nothing in the task hints at a label"


def test_each_reader_is_served_every_test_photo_once_with_no_prediction(review_setup):
    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=2)
    for reader in (READER_A, READER_B):
        served = _read_everything(s, reader)
        assert sorted(t["data"]["photo"] for t in served) == list(TEST_SPLIT)
        assert all(not t.get("predictions") for t in served)


def test_pushing_again_adds_no_second_task(review_setup):
    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=2)
    again = push_readers(s.ws, s.client, readers=2)
    assert (again.created, again.already_there) == (0, len(TEST_SPLIT))


def test_pull_writes_both_readers_reads_as_a_reader_csv(review_setup):
    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=2)
    for reader in (READER_A, READER_B):
        _read_everything(s, reader)
    out = s.ws.reports_dir / READER_READS_FILE
    pulled = pull_readers(s.ws, s.client, out=out)
    assert pulled.reads == {READER_A: 4, READER_B: 4}
    rows = {(r["reader"], r["photo"]): r["classes"] for r in csv.DictReader(out.read_text().splitlines())}
    assert rows[(READER_A, "p0.jpg")] == "fre;mel"
    assert rows[(READER_A, "p3.jpg")] == "", "'no lesion' is an empty class set"
    assert rows[(READER_B, "p1.jpg")] == "caf;sl", "a boxed lesion names its class"


def test_reads_become_doctor_rows_scored_as_a_hand_computation(review_setup, tmp_path):
    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=2)
    for reader in (READER_A, READER_B):
        _read_everything(s, reader)
    pull_readers(s.ws, s.client, out=s.ws.reports_dir / READER_READS_FILE)
    result = run_benchmark(
        s.ws, [], tmp_path / "bench", epochs=0, imgsz=64, readers=default_reader_files(s.ws), n_resamples=0
    )
    rows = {r.name: r.results["all"].image_level for r in result.raters if r.kind == "reader"}
    assert set(rows) == {READER_A, READER_B}
    # A: right on p0, p1, p3; misses caf on p2.  B: misses fre on p0, adds caf on p1, right on p2, p3.
    a, b = rows[READER_A], rows[READER_B]
    assert (a.n_correct, a.accuracy) == (3, 0.75)
    assert (b.n_correct, b.accuracy) == (2, 0.5)
    caf_a, caf_b = a.per_class["caf"], b.per_class["caf"]
    assert (caf_a.tp, caf_a.fp, caf_a.fn, caf_a.tn) == (0, 0, 1, 3)
    assert (caf_a.precision, caf_a.sensitivity, caf_a.specificity) == (None, 0.0, 1.0)
    assert (caf_b.tp, caf_b.fp, caf_b.fn, caf_b.tn) == (1, 1, 0, 2)
    assert (caf_b.precision, caf_b.sensitivity) == (0.5, 1.0) and caf_b.specificity == pytest.approx(2 / 3)
    fre_b = b.per_class["fre"]
    assert (fre_b.sensitivity, fre_b.specificity) == (0.0, 1.0)
    (pair,) = [c for c in result.comparisons if {c["a"], c["b"]} == {READER_A, READER_B}]
    only = {pair["a"]: pair["only_a"], pair["b"]: pair["only_b"]}
    assert only == {READER_A: 2, READER_B: 1} and pair["p_value"] == pytest.approx(1.0)


def test_simulated_readers_are_distinct_users_who_read_every_photo(review_setup):
    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=2)
    done = simulate_readers(s.ws, s.client, readers=2, truth_dir=s.folder / "truth")
    assert sorted(done.values()) == [4, 4] and len(done) == 2
    pulled = pull_readers(s.ws, s.client, out=s.ws.reports_dir / READER_READS_FILE)
    assert pulled.reads == done


def test_pull_before_push_says_what_to_run(review_setup):
    from annotator.errors import LabelStudioError

    s = _study(review_setup)
    with pytest.raises(LabelStudioError, match="readers push"):
        pull_readers(s.ws, s.client, out=s.ws.reports_dir / READER_READS_FILE)


def test_a_reviewer_profile_reads_what_it_would_box_blind(review_setup):
    """With a profile, a read is the classes of the reviewer's blind boxes: one that reads every melasma as Hori's
    nevus and overlooks nothing else names hori on p0 (truth mel, fre) and keeps the other photos' classes."""
    from review_queue.reviewer import CAREFUL

    s = _study(review_setup)
    push_readers(s.ws, s.client, readers=1)
    confuses = replace(CAREFUL, name="confuses", confusions=(("mel", "hori", 1.0),))
    done = simulate_readers(s.ws, s.client, readers=1, truth_dir=s.folder / "truth", profile=confuses)
    assert list(done.values()) == [4]
    out = s.ws.reports_dir / READER_READS_FILE
    pull_readers(s.ws, s.client, out=out)
    with out.open(newline="") as f:
        reads = {row["photo"]: row["classes"] for row in csv.DictReader(f)}
    assert reads == {"p0.jpg": "fre;hori", "p1.jpg": "sl", "p2.jpg": "caf;hori", "p3.jpg": ""}
