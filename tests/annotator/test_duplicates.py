"""Copies of one photo (same bytes under another name, folder or extension) become one photo, and no
copy's hand boxes are ever lost: the labelled copy is kept whatever the scan order, a labelled copy
arriving on a later run brings its boxes to the kept photo, and copies that disagree keep both label
sets in the history and flag the photo as a conflict the review queue serves first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from annotator.types import Box, Source
from tests.corpus.make_corpus import GOOD_BOX, Obj

GOOD = Box("mel", 9, 7, 40, 30)  # GOOD_BOX in our frame
OTHER_BOX = Obj("sl", 1, 1, 5, 5)
OTHER = Box("sl", 0, 0, 5, 5)


def copy_photo(folder, src: str, dst: str) -> None:
    target = folder.images / dst
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder.images / src, target)


def photos_with_sha(ws, rel: str) -> list[str]:
    sha = ws.store.labels.image(rel).sha256
    return [r.path for r in ws.store.labels.images() if r.sha256 == sha]


@pytest.mark.parametrize(
    "labelled, unlabelled",
    [
        ("a_labelled.jpg", "b_unlabelled.jpg"),
        ("b_labelled.jpg", "a_unlabelled.jpg"),  # the unlabelled copy is scanned first
        ("visit 2/x.jpeg", "x.JPG"),  # another folder and extension
    ],
    ids=["labelled-first", "unlabelled-first", "other-folder-and-extension"],
)
def test_the_labelled_copy_is_kept_whatever_the_scan_order(folder, run_ingest, labelled, unlabelled):
    folder.controls()
    folder.pair(labelled)
    copy_photo(folder, labelled, unlabelled)
    result = run_ingest()
    assert result.boxes(labelled) == (GOOD,)
    assert photos_with_sha(result.ws, labelled) == [labelled]
    line = result.only_line(unlabelled)
    assert (line.reason, line.action) == ("duplicate-photo", "quarantined")
    assert f"same content (sha256) as {labelled}" in line.message
    result.assert_controls_intact()


def test_a_labelled_copy_arriving_later_brings_its_boxes_to_the_kept_photo(folder, run_ingest):
    folder.controls()
    folder.photo("kept.jpg")
    first = run_ingest()
    assert first.ws.store.labels.current_label("kept.jpg") is None
    copy_photo(folder, "kept.jpg", "later/copy.jpg")
    folder.xml("later/copy.jpg")
    result = run_ingest()
    version = result.ws.store.labels.current_label("kept.jpg")
    assert (version.source, version.boxes) == (Source.MANUAL, (GOOD,))
    assert version.meta["copy"] == "later/copy.jpg"
    assert Path(version.meta["xml"]) == (folder.labels / "later" / "copy.xml").resolve()
    assert (result.report.added, result.report.labelled, result.report.boxes) == (0, 1, 1)
    line = result.only_line("later/copy.jpg")
    assert line.reason == "duplicate-photo" and "this copy's boxes (1 box) are now its label" in line.message
    assert not result.is_ingested("later/copy.jpg")
    result.assert_controls_intact()


def test_copies_with_different_boxes_keep_both_label_sets_and_flag_a_conflict(folder, run_ingest):
    folder.controls()
    folder.pair("a.jpg")
    copy_photo(folder, "a.jpg", "b.jpg")
    folder.xml("b.jpg", [OTHER_BOX])
    result = run_ingest()
    store = result.ws.store
    assert result.boxes("a.jpg") == (GOOD,)
    history = store.labels.history("a.jpg")
    assert [(v.source, v.boxes, Path(v.meta["xml"]).name) for v in history] == [
        (Source.MANUAL, (GOOD,), "a.xml"),
        (Source.MANUAL, (OTHER,), "b.xml"),
    ]
    (conflict,) = store.labels.conflicts()
    assert (conflict.path, conflict.kind, conflict.version_id) == ("a.jpg", "duplicate-labels", history[1].id)
    line = result.only_line("a.jpg")
    assert (line.reason, line.action) == ("duplicate-labels", "needs review")
    assert "a.xml (1 box) is the current label, b.xml (1 box," in line.message
    assert "both label sets are kept in a.jpg's history" in result.only_line("b.jpg").message
    saved = json.loads((result.ws.reports_dir / "ingest.json").read_text())
    assert saved["conflicts"] == 1 and saved["by_reason"]["duplicate-labels"] == 1
    assert "a.jpg: duplicate-labels: " in (result.ws.reports_dir / "ingest.txt").read_text()
    assert store.status_counts()["conflicts"] == 1
    result.assert_controls_intact()


def test_a_later_copy_with_different_boxes_joins_the_history_and_flags_a_conflict(folder, run_ingest):
    folder.pair("a.jpg")
    run_ingest()
    copy_photo(folder, "a.jpg", "z/a.png.jpg")
    folder.xml("z/a.png.jpg", [OTHER_BOX, GOOD_BOX])
    result = run_ingest()
    assert result.boxes("a.jpg") == (GOOD,)
    assert [v.boxes for v in result.ws.store.labels.history("a.jpg")] == [(GOOD,), (OTHER, GOOD)]
    assert [c.path for c in result.ws.store.labels.conflicts()] == ["a.jpg"]


def test_rerunning_stores_no_copy_twice_and_still_reports_the_open_conflict(folder, run_ingest):
    folder.pair("a.jpg")
    copy_photo(folder, "a.jpg", "b.jpg")
    folder.xml("b.jpg", [OTHER_BOX])
    first = run_ingest()
    history = first.ws.store.labels.history("a.jpg")
    second = run_ingest()
    assert second.ws.store.labels.history("a.jpg") == history
    assert len(second.ws.store.labels.conflicts()) == 1
    assert second.only_line("a.jpg").reason == "duplicate-labels"
    assert second.only_line("b.jpg").reason == "duplicate-photo"


def test_copies_with_the_same_boxes_add_nothing_and_flag_nothing(folder, run_ingest):
    folder.pair("a.jpg")
    copy_photo(folder, "a.jpg", "b.jpg")
    folder.xml("b.jpg")
    result = run_ingest()
    assert len(result.ws.store.labels.history("a.jpg")) == 1
    assert result.ws.store.labels.conflicts() == []
    assert "the same boxes" in result.only_line("b.jpg").message
    assert result.lines("a.jpg") == []


def test_a_copy_whose_xml_cannot_be_used_is_quarantined_for_that_and_the_other_copy_kept(folder, run_ingest):
    folder.photo("a.jpg")
    copy_photo(folder, "a.jpg", "b.jpg")
    folder.xml("b.jpg", [Obj("nevus spilus", 1, 1, 5, 5)])
    result = run_ingest()
    assert result.is_ingested("a.jpg") and not result.is_ingested("b.jpg")
    assert result.only_line("b.jpg").reason == "unknown-class"
    folder.xml("b.jpg", [OTHER_BOX])  # fixed in labelImg: the boxes come to the kept photo
    assert run_ingest().boxes("a.jpg") == (OTHER,)
