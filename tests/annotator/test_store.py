"""annotator.store: label history is append-only, a model never overwrites a person, the VOC mirror
is written atomically and repaired when stale, and only one writer holds a workspace at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import annotator.fsutil
from annotator.errors import AnnotatorError, WorkspaceBusy, WorkspaceError
from annotator.formats.voc import read_voc
from annotator.store import Workspace
from annotator.types import Box, LabelVersion, Source
from tests.corpus.make_corpus import Obj
from tests.corpus.psl_testkit import CONTROL_LABELLED, CONTROL_UNLABELLED

MODEL_BOXES = (Box("fre", 1, 1, 9, 9, score=0.8),)
REVIEWED_BOXES = (Box("sl", 2, 2, 20, 15), Box("caf", 40, 30, 60, 45))


@pytest.fixture
def ws(folder, run_ingest) -> Workspace:
    folder.controls()
    return run_ingest().ws


def version(path: str, source: Source, boxes=MODEL_BOXES, **kw) -> LabelVersion:
    return LabelVersion(path, source, tuple(boxes), **kw)


def mirror_boxes(ws: Workspace, path: str) -> list[tuple]:
    return [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in read_voc(ws.voc_path(path)).objects]


# ---- label history -------------------------------------------------------------------------------


def test_label_versions_are_appended_and_the_history_kept(ws):
    manual = ws.store.labels.current_label(CONTROL_LABELLED)
    vid = ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="dr"))
    history = ws.store.labels.history(CONTROL_LABELLED)
    assert [v.source for v in history] == [Source.MANUAL, Source.REVIEWED]
    assert history[0] == manual  # the first version is untouched
    assert ws.store.labels.current_label(CONTROL_LABELLED).id == vid
    assert ws.store.labels.current_label(CONTROL_LABELLED).boxes == REVIEWED_BOXES


def test_photos_reviewed_by_two_different_reviewers_are_found_in_one_query(ws):
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="a@x"))
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="a@x"))
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="a@x"))
    assert ws.store.labels.paths_reviewed_by_several(2) == [], "the same reviewer twice is not a double review"
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="b@y"))
    assert ws.store.labels.paths_reviewed_by_several(2) == [CONTROL_LABELLED]


@pytest.mark.parametrize("human", [Source.MANUAL, Source.REVIEWED, Source.AUTO_ACCEPTED])
def test_a_model_version_never_replaces_a_human_or_accepted_label(ws, human):
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, human, REVIEWED_BOXES))
    before = ws.store.labels.history(CONTROL_UNLABELLED)
    assert ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.MODEL, round=1)) is None
    assert ws.store.labels.history(CONTROL_UNLABELLED) == before
    assert ws.store.labels.current_label(CONTROL_UNLABELLED).source is human


def test_a_newer_model_version_replaces_an_older_one(ws):
    first = ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.MODEL, round=0))
    second = ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.MODEL, round=1))
    assert first is not None and second is not None and second > first
    assert [v.round for v in ws.store.labels.history(CONTROL_UNLABELLED)] == [0, 1]
    assert ws.store.labels.current_label(CONTROL_UNLABELLED).round == 1


def test_a_person_replaces_a_model_version(ws):
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.MODEL, round=0))
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.REVIEWED, REVIEWED_BOXES))
    assert ws.store.labels.current_label(CONTROL_UNLABELLED).source is Source.REVIEWED


def test_history_versions_do_not_become_current(ws):
    ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.REVIEWED, (), reviewer="superseded"))
    assert ws.store.labels.current_label(CONTROL_LABELLED).source is Source.MANUAL
    assert len(ws.store.labels.history(CONTROL_LABELLED)) == 2


def test_provenance_and_boxes_survive_storage(ws):
    boxes = (Box("sl", 1.5, 2.25, 3, 4, score=0.123456, difficult=True, truncated=True),)
    vid = ws.store.labels.add_label_version(
        version(
            CONTROL_UNLABELLED, Source.MODEL, boxes, round=2, model_version="m2", uncertainty=0.4, meta={"batch": 7}
        )
    )
    stored = ws.store.labels.version(vid)
    assert (stored.boxes, stored.round, stored.model_version, stored.uncertainty, stored.meta) == (
        (Box("sl", 1.5, 2.25, 3, 4, score=0.12346, difficult=True, truncated=True),),
        2,
        "m2",
        0.4,
        {"batch": 7},
    )


def test_a_label_for_a_photo_not_in_the_workspace_is_refused(ws):
    with pytest.raises(WorkspaceError, match="annotator init"):
        ws.store.labels.add_label_version(version("not_there.jpg", Source.MANUAL))


def test_a_failed_transaction_leaves_nothing_behind(ws):
    before = ws.store.labels.history(CONTROL_LABELLED)
    with pytest.raises(RuntimeError):
        with ws.store.transaction():
            ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES))
            raise RuntimeError("killed half way")
    assert ws.store.labels.history(CONTROL_LABELLED) == before


# ---- conflicts: label sources that disagree ----------------------------------------------------------


def test_a_flagged_conflict_is_listed_oldest_first_with_its_waiting_version(ws):
    first = ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.MANUAL, REVIEWED_BOXES))
    second = ws.store.labels.add_history_version(version(CONTROL_UNLABELLED, Source.MANUAL, REVIEWED_BOXES))
    ws.store.labels.flag_conflict(CONTROL_UNLABELLED, "duplicate-labels", "b.xml disagrees", second)
    ws.store.labels.flag_conflict(CONTROL_LABELLED, "xml-after-review", "a.xml edited", first)
    ws.store.labels.flag_conflict(CONTROL_UNLABELLED, "duplicate-labels", "b.xml disagrees", second)  # twice: no-op
    assert [(c.path, c.kind, c.version_id) for c in ws.store.labels.conflicts()] == [
        (CONTROL_UNLABELLED, "duplicate-labels", second),
        (CONTROL_LABELLED, "xml-after-review", first),
    ]
    assert ws.store.status_counts()["conflicts"] == 2
    assert ws.store.labels.version(first).boxes == REVIEWED_BOXES  # the disagreeing boxes stay in the history


def test_a_new_review_resolves_the_photos_conflicts(ws):
    waiting = ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.MANUAL, REVIEWED_BOXES))
    ws.store.labels.flag_conflict(CONTROL_LABELLED, "duplicate-labels", "b.xml disagrees", waiting)
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.MANUAL, MODEL_BOXES[:0]))
    assert len(ws.store.labels.conflicts()) == 1  # a manual version is no decision
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES, reviewer="dr"))
    assert ws.store.labels.conflicts() == []


def test_resolving_one_waiting_version_leaves_the_others_open(ws):
    a = ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.MANUAL, REVIEWED_BOXES))
    b = ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.MANUAL, MODEL_BOXES))
    ws.store.labels.flag_conflict(CONTROL_LABELLED, "duplicate-labels", "a", a)
    ws.store.labels.flag_conflict(CONTROL_LABELLED, "duplicate-labels", "b", b)
    assert ws.store.labels.resolve_conflicts(CONTROL_LABELLED, "xml-wins", version_id=a) == 1
    assert [c.version_id for c in ws.store.labels.conflicts()] == [b]


def test_classes_in_use_counts_boxes_over_the_whole_history(ws):
    ws.store.labels.add_history_version(version(CONTROL_LABELLED, Source.MANUAL, (Box("caf", 1, 1, 5, 5),)))
    assert ws.store.labels.classes_in_use() == {"sl": 1, "hori": 1, "caf": 1}


# ---- the VOC mirror ------------------------------------------------------------------------------


def test_ingest_writes_the_voc_mirror(ws):
    assert mirror_boxes(ws, CONTROL_LABELLED) == [("sl", 3, 3, 20, 15), ("hori", 30, 20, 60, 45)]
    assert not ws.voc_path(CONTROL_UNLABELLED).exists()


def test_sync_repairs_a_stale_mirror(ws):
    # as if killed before the mirror was written
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES))
    assert mirror_boxes(ws, CONTROL_LABELLED)[0] == ("sl", 3, 3, 20, 15)
    assert ws.sync_voc_mirror() == 1
    assert mirror_boxes(ws, CONTROL_LABELLED) == [("sl", 3, 3, 20, 15), ("caf", 41, 31, 60, 45)]
    assert read_voc(ws.voc_path(CONTROL_LABELLED)).extra["source"] == "reviewed"
    assert ws.sync_voc_mirror() == 0


def test_sync_rewrites_a_mirror_file_deleted_by_hand(ws):
    ws.voc_path(CONTROL_LABELLED).unlink()
    assert ws.sync_voc_mirror() == 1
    assert len(mirror_boxes(ws, CONTROL_LABELLED)) == 2


def test_opening_for_writing_repairs_the_mirror(ws, folder, tmp_path):
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.REVIEWED, REVIEWED_BOXES))
    ws.close()
    with Workspace.open(tmp_path / "ws", write=True) as again:
        assert len(mirror_boxes(again, CONTROL_UNLABELLED)) == 2


def test_the_mirror_is_replaced_atomically(ws, monkeypatch):
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, REVIEWED_BOXES))
    before = ws.voc_path(CONTROL_LABELLED).read_bytes()

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing the temp file and the rename

    monkeypatch.setattr(annotator.fsutil.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ws.sync_voc_mirror()
    monkeypatch.undo()
    assert ws.voc_path(CONTROL_LABELLED).read_bytes() == before  # the old file, whole
    assert [p.name for p in ws.labels_dir.iterdir()] == [f"{CONTROL_LABELLED[:-4]}.xml"]  # no temp file left
    assert ws.sync_voc_mirror() == 1  # and the next sync finishes the job
    assert mirror_boxes(ws, CONTROL_LABELLED)[1][0] == "caf"


def test_the_mirror_reads_back_as_the_current_label(ws):
    ws.store.labels.add_label_version(
        version(CONTROL_UNLABELLED, Source.MODEL, round=3, model_version="m3", uncertainty=0.25)
    )
    ws.sync_voc_mirror()
    ann = read_voc(ws.voc_path(CONTROL_UNLABELLED))
    assert not ann.verified  # labelImg's "verified" means a person checked it; a model did not
    assert (ann.objects[0].name, ann.objects[0].score) == ("fre", 0.8)
    assert (ann.extra["source"], ann.extra["round"], ann.extra["model_version"]) == ("model", "3", "m3")


# ---- one writer at a time ------------------------------------------------------------------------


def test_a_second_writer_gets_workspace_busy(ws, tmp_path):
    with pytest.raises(WorkspaceBusy, match="busy"):
        Workspace.open(tmp_path / "ws", write=True)
    assert WorkspaceBusy.exit_code == 3 and issubclass(WorkspaceBusy, AnnotatorError)


def test_readers_are_not_blocked_by_a_writer(ws, tmp_path):
    with Workspace.open(tmp_path / "ws") as reader:
        assert reader.store.status_counts()["images"] == 2


def test_the_lock_is_released_on_close(ws, tmp_path):
    ws.close()
    with Workspace.open(tmp_path / "ws", write=True) as again:
        assert again.store.status_counts()["images"] == 2


def test_a_writer_in_another_process_makes_this_one_busy(ws, tmp_path):
    ws.close()
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from annotator.store import Workspace
        ws = Workspace.open(Path({str(tmp_path / "ws")!r}), write=True)
        print("locked", flush=True)
        sys.stdin.readline()
        ws.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceBusy):
            Workspace.open(tmp_path / "ws", write=True)
    finally:
        proc.communicate("done\n", timeout=30)
    with Workspace.open(tmp_path / "ws", write=True):
        pass


def test_opening_a_folder_that_is_not_a_workspace_says_how_to_make_one(tmp_path):
    with pytest.raises(AnnotatorError, match="annotator init"):
        Workspace.open(tmp_path)


# ---- status ---------------------------------------------------------------------------------------


def test_status_counts_follow_the_current_labels(ws):
    ws.store.labels.add_label_version(version(CONTROL_UNLABELLED, Source.MODEL, round=0))
    status = ws.store.status_counts()
    assert status["images"] == 2
    assert status["by_status"] == {"manual": 1, "model": 1, "unlabelled": 0}
    assert status["boxes_by_class"] == {"fre": 1, "hori": 1, "sl": 1}
    assert status["photos_by_class"] == {"fre": 1, "hori": 1, "sl": 1}
    assert status["labels_by_round"] == {"0": 1}
    assert status["by_split"] == {"pool": 2}


def test_status_leaves_out_excluded_photos(ws):
    ws.store.labels.add_label_version(version(CONTROL_LABELLED, Source.REVIEWED, (), excluded=True))
    status = ws.store.status_counts()
    assert (status["excluded"], status["by_status"]["excluded"], status["boxes_by_class"]) == (1, 1, {})


def test_only_missing_photos_count_as_quarantined(folder, run_ingest):
    folder.pair("x.jpg", [Obj("Nevus spilus", 1, 1, 5, 5)])
    folder.photo("empty.jpg", b"")
    assert run_ingest().ws.store.status_counts()["quarantined"] == 2
