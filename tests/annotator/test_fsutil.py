"""Atomic writes: each file is the old one or the new one, whole; nothing half-written is left behind."""

from __future__ import annotations

import os

import pytest

import annotator.fsutil
from annotator.fsutil import atomic_write_many, remove_temp_files


@pytest.mark.parametrize("sync_threads", [1, 8])
def test_a_batch_writes_every_file_whole_into_new_and_existing_folders(tmp_path, sync_threads):
    (tmp_path / "old.xml").write_bytes(b"old")
    files = [(tmp_path / "old.xml", b"new")] + [(tmp_path / "a" / f"{i}.xml", bytes([i]) * 3000) for i in range(20)]
    atomic_write_many(files, sync_threads=sync_threads)
    assert all(path.read_bytes() == data for path, data in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "old.xml"]  # no temp file left


def test_every_file_is_fsynced_before_any_is_renamed(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(annotator.fsutil.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(annotator.fsutil.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    atomic_write_many([(tmp_path / f"{i}.xml", b"x") for i in range(5)], sync_threads=4)
    assert events == ["fsync"] * 5 + ["rename"] * 5


def test_a_failed_fsync_leaves_the_old_files_and_no_temp_file(tmp_path, monkeypatch):
    (tmp_path / "0.xml").write_bytes(b"old")

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(annotator.fsutil.os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write_many([(tmp_path / f"{i}.xml", b"new") for i in range(3)], sync_threads=2)
    assert [p.name for p in tmp_path.iterdir()] == ["0.xml"]
    assert (tmp_path / "0.xml").read_bytes() == b"old"


def test_a_kill_between_writing_and_renaming_leaves_temp_files_that_the_next_writer_removes(tmp_path, monkeypatch):
    def killed(*args):
        raise KeyboardInterrupt  # as if the process died after the fsyncs, before the first rename

    monkeypatch.setattr(annotator.fsutil.os, "replace", killed)
    monkeypatch.setattr(annotator.fsutil.os, "unlink", lambda path: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        atomic_write_many([(tmp_path / f"{i}.xml", b"new") for i in range(3)])
    monkeypatch.undo()
    assert len(list(tmp_path.iterdir())) == 3 and not list(tmp_path.glob("*.xml"))
    assert remove_temp_files(tmp_path, "*.xml") == 3
    assert not list(tmp_path.iterdir())
