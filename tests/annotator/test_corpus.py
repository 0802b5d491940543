"""The whole hostile corpus (tests/corpus/make_corpus.py) through one `ingest` run: nothing
crashes, nothing is dropped silently, each input gets the reason it deserves, and the local
file that hostile XML reaches for never shows up anywhere."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from tests.corpus.make_corpus import OK, SECRET, build, input_files

UNEXPECTED = "unreadable-photo"  # what ingest says when a decoder raised something it did not foresee


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    expected = build(root)
    crashes = 0
    report = None
    with Workspace.create(root / "ws", Config(images=root / "images", labels=root / "labels")) as ws:
        try:
            report = ingest(ws, images=root / "images", labels=root / "labels", workers=2)  # worker processes too
        except Exception:  # noqa: BLE001 - counted, then shown by the test below
            crashes = 1
            raise
        images = {r.path: ws.store.labels.current_label(r.path) for r in ws.store.labels.images()}
    lines_by_path = defaultdict(list)
    for line in report.lines:
        lines_by_path[line.path].append(line)
    expected = {_shown(k): v for k, v in expected.items()}
    return root, expected, report, images, lines_by_path, crashes


def _photo_of(xml_rel: str, expected: dict[str, str]) -> str | None:
    """labels/a/b.xml -> the photo a/b.<any suffix> of the corpus, if there is one."""
    stem = PurePosixPath(xml_rel).relative_to("labels").with_suffix("").as_posix()
    for key in expected:
        if key.startswith("images/") and PurePosixPath(key[7:]).with_suffix("").as_posix() == stem:
            return key[7:]
    return None


def _shown(rel: str) -> str:
    """How a report names a file: a name that is not UTF-8 comes out with \\x escapes."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _objects_in(path: Path) -> int:
    return len(re.findall(rb"<object>", path.read_bytes()))


def test_every_input_is_in_the_manifest(corpus):
    root, expected, *_ = corpus
    assert [_shown(f) for f in input_files(root)] == sorted(expected)


def test_no_input_crashes_or_is_dropped_silently(corpus, capsys):
    root, expected, report, images, lines_by_path, crashes = corpus
    silent = []
    for key in expected:
        top, rel = key.split("/", 1)
        if top == "images":
            accounted = rel in images or rel in lines_by_path
        else:
            photo = _photo_of(key, expected)
            accounted = rel in lines_by_path or (
                photo is not None and (images.get(photo) is not None or photo in lines_by_path)
            )
        if not accounted:
            silent.append(key)
    unexpected = [ln for ln in report.lines if ln.reason == UNEXPECTED]
    crashes += len(unexpected)
    with capsys.disabled():
        print(f"\ncorpus: {len(expected)} inputs, {crashes} crashes, {len(silent)} silent drops")
    assert silent == []
    assert unexpected == []
    assert crashes == 0


def test_each_bad_input_gets_its_reason(corpus):
    _, expected, _, images, lines_by_path, _ = corpus
    wrong = {}
    for key, reason in expected.items():
        if reason == OK:
            continue
        top, rel = key.split("/", 1)
        got = [ln.reason for ln in lines_by_path.get(rel, [])]
        if top == "labels" and (photo := _photo_of(key, expected)) is not None:
            got += [ln.reason for ln in lines_by_path.get(photo, [])]  # a bad XML is reported on its photo
        if reason not in got:
            wrong[key] = (reason, got)
    assert wrong == {}


def test_quarantined_photos_are_not_in_the_workspace_and_the_rest_are(corpus):
    _, expected, _, images, lines_by_path, _ = corpus
    for key, reason in expected.items():
        if not key.startswith("images/") or reason in ("linked-folder", "not-a-file"):  # never were photos
            continue
        rel = key[7:]
        quarantined = any(ln.action == "quarantined" for ln in lines_by_path.get(rel, []))
        assert (rel in images) != quarantined, (rel, reason, lines_by_path.get(rel))


def test_good_photos_have_every_box_and_no_report_line(corpus):
    root, expected, _, images, lines_by_path, _ = corpus
    for key, reason in expected.items():
        if not key.startswith("images/") or reason != OK:
            continue
        rel = key[7:]
        assert rel not in lines_by_path, lines_by_path[rel]
        xml = root / "labels" / PurePosixPath(rel).with_suffix(".xml")
        if xml.exists():
            assert len(images[rel].boxes) == _objects_in(xml), rel
        else:
            assert images[rel] is None, rel


def test_fixed_photos_keep_every_box_not_reported_as_dropped(corpus):
    root, expected, _, images, lines_by_path, _ = corpus
    for key, reason in expected.items():
        rel = key[7:]
        if not key.startswith("images/") or rel not in images or reason == OK:
            continue
        dropped = sum(ln.action == "box dropped" for ln in lines_by_path[rel])
        xml = root / "labels" / PurePosixPath(rel).with_suffix(".xml")
        assert len(images[rel].boxes) + dropped == _objects_in(xml), rel


def test_the_secret_never_appears_anywhere(corpus):
    root, _, report, *_ = corpus
    assert SECRET not in str(report.to_dict())
    for path in (root / "ws").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
