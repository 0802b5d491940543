"""A labelImg file edited after it was ingested: a re-run of ingest notices (by the content hash kept
with the manual version), adds the edit as a new manual version and reports it, with the history kept.
A dermatologist's reviewed label is never replaced silently: the edit waits in the history, flagged for
a decision, unless `xml_wins` is asked for."""

from __future__ import annotations

from annotator.formats.voc import read_voc
from annotator.ingest import ingest
from annotator.types import Box, LabelVersion, Source
from tests.corpus.make_corpus import GOOD_BOX, Obj

GOOD = Box("mel", 9, 7, 40, 30)  # GOOD_BOX in our frame
EDITED_BOXES = [Obj("mel", 12, 8, 42, 30), Obj("fre", 50, 40, 60, 45)]
EDITED = (Box("mel", 11, 7, 42, 30), Box("fre", 49, 39, 60, 45))
REVIEWED = (Box("caf", 2, 2, 20, 15),)


def reviewed(ws, rel: str) -> int:
    vid = ws.store.labels.add_label_version(LabelVersion(rel, Source.REVIEWED, REVIEWED, reviewer="dr", round=1))
    assert vid is not None
    return vid


def test_an_edited_xml_becomes_a_new_manual_version_and_is_reported(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg")
    run_ingest()
    folder.xml("x.jpg", EDITED_BOXES)
    result = run_ingest()
    history = result.ws.store.labels.history("x.jpg")
    assert [(v.source, v.boxes) for v in history] == [(Source.MANUAL, (GOOD,)), (Source.MANUAL, EDITED)]
    assert history[0].meta["xml_sha256"] != history[1].meta["xml_sha256"]
    assert result.boxes("x.jpg") == EDITED
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("edited-xml", "updated")
    assert "x.xml changed since it was ingested (1 box -> 2 boxes)" in line.message
    assert result.report.updated == 1
    assert [o.name for o in read_voc(result.ws.voc_path("x.jpg")).objects] == ["mel", "fre"]  # the mirror follows
    result.assert_controls_intact()


def test_an_edit_is_stored_once(folder, run_ingest):
    folder.pair("x.jpg")
    run_ingest()
    folder.xml("x.jpg", EDITED_BOXES)
    run_ingest()
    again = run_ingest()
    assert len(again.ws.store.labels.history("x.jpg")) == 2
    assert again.lines() == [] and again.report.updated == 0


def test_an_xml_saved_again_without_a_change_adds_nothing(folder, run_ingest):
    folder.pair("x.jpg")
    run_ingest()
    folder.xml("x.jpg", declaration=True, verified=True)  # other bytes, same boxes
    result = run_ingest()
    assert len(result.ws.store.labels.history("x.jpg")) == 1
    assert result.lines() == []


def test_an_edit_back_to_an_earlier_content_is_a_new_version_too(folder, run_ingest):
    folder.pair("x.jpg")
    run_ingest()
    folder.xml("x.jpg", EDITED_BOXES)
    run_ingest()
    folder.xml("x.jpg")  # undone in labelImg
    result = run_ingest()
    assert [v.boxes for v in result.ws.store.labels.history("x.jpg")] == [(GOOD,), EDITED, (GOOD,)]
    assert result.boxes("x.jpg") == (GOOD,)


def test_an_edited_xml_never_replaces_a_reviewed_label_silently(folder, run_ingest):
    folder.controls()
    folder.pair("x.jpg")
    first = run_ingest()
    review_id = reviewed(first.ws, "x.jpg")
    folder.xml("x.jpg", EDITED_BOXES)
    result = run_ingest()
    store = result.ws.store
    current = store.labels.current_label("x.jpg")
    assert (current.id, current.source, current.boxes) == (review_id, Source.REVIEWED, REVIEWED)
    waiting = store.labels.history("x.jpg")[-1]
    assert (waiting.source, waiting.boxes, waiting.meta["xml"].endswith("x.xml")) == (Source.MANUAL, EDITED, True)
    (conflict,) = store.labels.conflicts()
    assert (conflict.path, conflict.kind, conflict.version_id) == ("x.jpg", "xml-after-review", waiting.id)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("xml-after-review", "needs review")
    assert "the reviewed label (1 box) stays current" in line.message and "--xml-wins" in line.message
    assert result.report.updated == 0 and result.report.conflicts == 1
    result.assert_controls_intact()


def test_the_waiting_edit_is_reported_on_every_run_until_decided_and_stored_once(folder, run_ingest):
    folder.pair("x.jpg")
    reviewed(run_ingest().ws, "x.jpg")
    folder.xml("x.jpg", EDITED_BOXES)
    history = run_ingest().ws.store.labels.history("x.jpg")
    again = run_ingest()
    assert again.ws.store.labels.history("x.jpg") == history
    assert again.only_line("x.jpg").reason == "xml-after-review"


def test_a_new_review_decides_the_conflict(folder, run_ingest):
    folder.pair("x.jpg")
    reviewed(run_ingest().ws, "x.jpg")
    folder.xml("x.jpg", EDITED_BOXES)
    result = run_ingest()
    reviewed(result.ws, "x.jpg")
    assert result.ws.store.labels.conflicts() == []
    assert run_ingest().lines() == []


def test_xml_wins_makes_the_waiting_edit_current_and_keeps_the_review(folder, run_ingest):
    folder.pair("x.jpg")
    review_id = reviewed(run_ingest().ws, "x.jpg")
    folder.xml("x.jpg", EDITED_BOXES)
    ws = run_ingest().ws
    report = ingest(ws, images=folder.images, labels=folder.labels, workers=1, xml_wins=True)
    current = ws.store.labels.current_label("x.jpg")
    assert (current.source, current.boxes, current.meta["replaces_reviewed"]) == (Source.MANUAL, EDITED, review_id)
    assert ws.store.labels.version(review_id).boxes == REVIEWED
    assert ws.store.labels.conflicts() == []
    (line,) = report.lines
    assert (line.path, line.reason, line.action) == ("x.jpg", "xml-over-review", "updated")


def test_xml_wins_at_the_first_sight_of_the_edit(folder, run_ingest):
    folder.pair("x.jpg")
    ws = run_ingest().ws
    review_id = reviewed(ws, "x.jpg")
    folder.xml("x.jpg", EDITED_BOXES)
    report = ingest(ws, images=folder.images, labels=folder.labels, workers=1, xml_wins=True)
    assert [v.source for v in ws.store.labels.history("x.jpg")] == [Source.MANUAL, Source.REVIEWED, Source.MANUAL]
    assert ws.store.labels.current_label("x.jpg").boxes == EDITED
    assert ws.store.labels.version(review_id).boxes == REVIEWED
    assert "reviewed label (version" in report.lines[0].message and ws.store.labels.conflicts() == []


def test_an_edit_that_breaks_the_xml_keeps_the_label_and_says_so(folder, run_ingest):
    folder.pair("x.jpg")
    run_ingest()
    folder.xml("x.jpg", raw="<annotation><object>")
    result = run_ingest()
    assert result.boxes("x.jpg") == (GOOD,)
    line = result.only_line("x.jpg")
    assert (line.reason, line.action) == ("malformed-xml", "ignored")
    assert line.message.endswith("the photo keeps its current label")


def test_a_workspace_from_before_content_hashes_notices_edits_but_not_unchanged_files(folder, run_ingest):
    folder.pair("x.jpg", [GOOD_BOX])
    ws = run_ingest().ws
    ws.store.conn.execute("UPDATE label_versions SET meta=json_remove(meta, '$.xml_sha256')")
    assert run_ingest().lines() == []
    folder.xml("x.jpg", EDITED_BOXES)
    result = run_ingest()
    assert [v.boxes for v in result.ws.store.labels.history("x.jpg")] == [(GOOD,), EDITED]
    assert result.only_line("x.jpg").reason == "edited-xml"
