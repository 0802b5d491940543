"""Shared fixtures: small synthetic workspaces built with the project's own generator."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synth import generate


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Callable[..., Path]:
    """synth_set(images=40, labelled=0.5, seed=0) -> folder with images/, labels/, truth/ (cached per args)."""
    cache: dict[tuple, Path] = {}

    def make(images: int = 40, labelled: float = 0.5, seed: int = 0) -> Path:
        key = (images, labelled, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth-{images}-{seed}")
            generate(out, images=images, labelled_fraction=labelled, seed=seed)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture
def make_workspace(tmp_path, synth_set) -> Callable[..., Workspace]:
    """A fresh, ingested workspace over a synthetic set; the caller closes it."""

    def make(images: int = 40, labelled: float = 0.5, seed: int = 0, **config) -> Workspace:
        data = synth_set(images, labelled, seed)
        cfg = Config(images=data / "images", labels=data / "labels", **config)
        ws = Workspace.create(tmp_path / f"ws-{images}-{seed}", cfg)
        ingest(ws, images=cfg.images, labels=cfg.labels)
        return ws

    return make
