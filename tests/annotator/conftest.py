"""Fixtures for the core: a folder of real photo and labelImg files in tmp_path, and ingest over it
(helpers in tests/corpus/psl_testkit.py, file writers in tests/corpus/make_corpus.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from tests.corpus.psl_testkit import Ingested, PhotoFolder


@pytest.fixture
def folder(tmp_path) -> PhotoFolder:
    return PhotoFolder(tmp_path / "data")


@pytest.fixture
def run_ingest(tmp_path, folder) -> Iterator[Callable[..., Ingested]]:
    """run_ingest(**config) -> Ingested over `folder` (same workspace on every call, like re-running init).
    One process unless `workers` says otherwise: most tests are about what is reported, not how fast."""
    opened: list[Workspace] = []

    def run(
        images: Path | None = None, labels: Path | None | bool = True, workers: int | None = 1, **config
    ) -> Ingested:
        images = images or folder.images
        images.mkdir(parents=True, exist_ok=True)
        label_dir = folder.labels if labels is True else (labels or None)
        if label_dir is not None:
            label_dir.mkdir(parents=True, exist_ok=True)
        for ws in opened:
            ws.close()
        opened.clear()
        ws = Workspace.create(tmp_path / "ws", Config(images=images, labels=label_dir, **config))
        opened.append(ws)
        return Ingested(ws, ingest(ws, images=images, labels=label_dir, workers=workers), folder)

    yield run
    for ws in opened:
        ws.close()
