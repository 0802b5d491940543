"""Shared fixtures: small synthetic workspaces built with the project's own generator."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from review_queue.labelstudio import postgres as pg
from review_queue.labelstudio import server as ls

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def ls_template() -> Path:
    target = Path(os.environ.get(ls.TEMPLATE_ENV) or REPO / ".cache" / "ls-template")
    return ls.build_template(target)


@pytest.fixture(scope="session")
def ls_root(tmp_path_factory) -> Path:
    """The session server's document root: every test's photo folder lives under it."""
    return tmp_path_factory.mktemp("label-studio-root")


@dataclass(frozen=True)
class LiveServer:
    ws_root: Path
    info: ls.ServerInfo
    credentials: ls.Credentials
    document_root: Path

    @property
    def url(self) -> str:
        return self.info.url


@pytest.fixture(scope="session")
def live_server(ls_root: Path, ls_template: Path) -> Iterator[LiveServer]:
    images = ls_root / "server-photos" / "images"
    images.mkdir(parents=True)
    ws = Workspace.create(ls_root / "server-ws", Config(images=images))
    try:
        info = ls.start_server(ws, template=ls_template, document_root=ls_root)
        creds = ls.read_credentials(ws.root)
        assert creds is not None
        yield LiveServer(ws.root, info, creds, ls_root)
    finally:
        ls.stop_server(ws)
        ws.close()


@pytest.fixture(scope="session")
def team_server(tmp_path_factory) -> Iterator[LiveServer]:
    """The team server (`review serve --team`: PostgreSQL behind 3 gunicorn workers), started once: its
    migrations take about 90 s. Tests that use it skip where no PostgreSQL is installed."""
    if not pg.available():
        pytest.skip("no PostgreSQL 14+ installed (see docs/team-server.md)")
    root = tmp_path_factory.mktemp("team-root")
    # run as root, the cluster lives outside the workspace (PostgreSQL runs as nobody): a throw-away folder
    clusters = Path(tempfile.mkdtemp(prefix="annotator-pg-test-"))
    os.environ[pg.ROOT_CLUSTERS_ENV] = str(clusters)
    images = root / "server-photos" / "images"
    images.mkdir(parents=True)
    ws = Workspace.create(root / "server-ws", Config(images=images))
    try:
        info = ls.start_server(ws, team=True, workers=3, document_root=root, timeout=400)
        creds = ls.read_credentials(ws.root)
        assert creds is not None
        yield LiveServer(ws.root, info, creds, root)
    finally:
        ls.stop_server(ws)
        ws.close()
        os.environ.pop(pg.ROOT_CLUSTERS_ENV, None)
        shutil.rmtree(clusters, ignore_errors=True)
