"""Secrets and exposure: the main commands run with a known Label Studio token (LABEL_STUDIO_API_KEY)
and it shows up in no output and no file the tool wrote; the local Label Studio listens on
127.0.0.1 only; its photo serving reaches nothing outside the image root; and push refuses the two
layouts in which Label Studio would serve more than photos (it serves every file under the image
root and follows links): a workspace inside the image folder, a link leading out of it."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from annotator.config import Config
from annotator.errors import LabelStudioError
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import LabelVersion, Source
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.push import push
from review_queue.labelstudio.server import credentials_path, server_dir
from tests.reliability import reliability_kit as kit

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def loop_outputs(live_server):
    """The loop run through the CLI with the live server's token in the environment: (workspace, outputs)."""
    root = live_server.document_root / "secrets"
    generate(root / "data", images=24, labelled_fraction=0.5, seed=13)
    ws = root / "ws"
    env = kit.cli_env(live_server.credentials.token, live_server.document_root)
    url = ["--url", live_server.url]
    train = ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--device", "cpu"]
    started = time.time()
    outputs = []

    def run(*args: str, ok: bool = True) -> None:
        result = kit.run_cli(list(args), env)
        outputs.append((args, result.stdout + result.stderr))
        assert (result.returncode == 0) == ok, (args, result.stdout, result.stderr)

    run("init", str(ws), "--images", str(root / "data" / "images"), "--labels", str(root / "data" / "labels"))
    toml = ws / "annotator.toml"
    toml.write_text(
        toml.read_text()
        .replace("test_size = 300", "test_size = 3")
        .replace('project_title = "PSL review"', 'project_title = "PSL secrets test"')
    )
    run("bootstrap", "-w", str(ws), "--model", "yolo11n.yaml", "--workers", "2", *train)
    run("review", "push", "-w", str(ws), *url)
    run("review", "simulate", "-w", str(ws), *url, "--count", "5")
    run("review", "pull", "-w", str(ws), *url)
    run("review", "status", "-w", str(ws), "--server", *url, "--json")
    run("status", "-w", str(ws))
    run("retrain", "--round", "1", "-w", str(ws), *url, *train)
    run("export", str(ws / "export" / "coco"), "-w", str(ws), "--format", "coco")
    run("review", "push", "-w", str(ws), "--url", "http://127.0.0.1:9", ok=False)  # an error message too
    return ws, outputs, started


@pytest.mark.slow
def test_the_token_is_in_no_output_and_no_file_the_tool_wrote(loop_outputs, live_server):
    ws, outputs, started = loop_outputs
    token = live_server.credentials.token
    assert len(outputs) == 10
    for args, text in outputs:
        assert token not in text, args
    written = [p for p in ws.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".xml" for p in written) and (ws / "annotator.db").exists()
    assert _holding(written, token) == []
    cache = Path(os.environ.get("ANNOTATOR_CACHE", Path.home() / ".cache" / "annotator"))
    touched = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_mtime >= started] if cache.exists() else []
    assert _holding(touched, token) == []


def test_the_server_keeps_its_secrets_behind_owner_only_permissions(live_server):
    creds = credentials_path(live_server.ws_root)
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(server_dir(live_server.ws_root).stat().st_mode) == 0o700
    own = {creds, *(server_dir(live_server.ws_root) / "data").rglob("*")}  # Label Studio's own database
    others = [p for p in live_server.ws_root.rglob("*") if p.is_file() and p not in own]
    assert others  # server.log, server.json, annotator.toml
    secrets = (live_server.credentials.token, live_server.credentials.password)
    for secret in secrets:
        assert _holding(others, secret) == []


def _holding(files: list[Path], secret: str) -> list[str]:
    return [str(p) for p in files if secret.encode() in p.read_bytes()]


def test_label_studio_listens_on_loopback_only(live_server):
    server = psutil.Process(live_server.info.pid)
    listening = [
        c
        for p in [server, *server.children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "the server listens on no socket"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    assert live_server.info.port in {c.laddr.port for c in listening}


@pytest.mark.slow
def test_photo_serving_reaches_nothing_outside_the_image_root(loop_outputs, live_server):
    ws, _, _ = loop_outputs
    root = live_server.document_root
    images = ws.parent / "data" / "images"
    prefix = images.relative_to(root).as_posix()  # secrets/data/images
    photo = sorted(images.iterdir())[0].name
    truth = sorted((images.parent / "truth").iterdir())[0].name
    auth = {"Authorization": f"Token {live_server.credentials.token}"}

    def status(d: str, headers: dict | None = auth) -> int:
        return httpx.get(
            f"{live_server.url}/data/local-files/", params={"d": d}, headers=headers, follow_redirects=False, timeout=10
        ).status_code

    assert status(f"{prefix}/{photo}") == 200  # the control: a photo is served to a logged-in user
    assert status(f"{prefix}/{photo}", headers=None) != 200  # and to nobody else
    creds = credentials_path(live_server.ws_root).relative_to(root).as_posix()
    crafted = [
        f"{prefix}/../truth/{truth}",  # the ground truth beside the photos
        f"{prefix}/../../ws/annotator.db",  # the workspace database
        f"{prefix}/../../../{creds}",  # the server's own credentials
        f"{prefix}/../../../../../../../../etc/passwd",
        f"{prefix}/%2e%2e/%2e%2e/ws/annotator.db",
        f"{prefix}/..%2f..%2fws%2fannotator.db",
        f"{prefix}/./../../ws/annotator.toml",
        "../" * 12 + "etc/passwd",
        str(ws / "annotator.db"),  # absolute paths
        str(images / photo),
        "/etc/passwd",
        f"{images.parent.relative_to(root).as_posix()}/truth/{truth}",  # inside the document root, outside storage
        f"{ws.relative_to(root).as_posix()}/annotator.db",
        f"{prefix}\\..\\..\\ws\\annotator.db",
        f"{prefix}/{photo}\x00.db",
    ]
    served = {d: code for d in crafted if (code := status(d)) == 200}
    assert served == {}


def _queued_workspace(images: Path, ws_root: Path, title: str) -> Workspace:
    """Three photos whose current labels are a model's, in a workspace at ws_root."""
    images.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.new("RGB", (64, 48), (30 * i, 90, 120)).save(images / f"p{i}.jpg")
    ws = Workspace.create(ws_root, Config(images=images, project_title=title))
    ingest(ws, images=images)
    for rec in ws.store.labels.images():
        ws.store.labels.add_label_version(
            LabelVersion(rec.path, Source.MODEL, (), round=0, model_version="round-000", uncertainty=0.5)
        )
    return ws


def _projects_titled(client, title: str) -> list:
    return list(client.sdk.projects.list(title=title))


def test_push_refuses_to_serve_a_workspace_inside_the_image_folder(live_server):
    images = live_server.document_root / "ws-inside" / "images"
    ws = _queued_workspace(images, images / "ws", "PSL workspace inside")  # ingest skips it; serving would not
    try:
        client = connect(
            ws, url=live_server.url, api_key=live_server.credentials.token, document_root=live_server.document_root
        )
        with pytest.raises(LabelStudioError, match="inside the image folder.*move the workspace out"):
            push(ws, client)
        assert _projects_titled(client, "PSL workspace inside") == []  # refused before anything was made
    finally:
        ws.close()


def test_push_refuses_a_link_that_leads_out_of_the_image_folder(live_server, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "notes.txt").write_text("not a photo")
    images = live_server.document_root / "linked" / "images"
    ws = _queued_workspace(images, images.parent / "ws", "PSL linked folder")
    try:
        (images / "old-visits").symlink_to(outside, target_is_directory=True)
        client = connect(
            ws, url=live_server.url, api_key=live_server.credentials.token, document_root=live_server.document_root
        )
        with pytest.raises(LabelStudioError, match="old-visits is a link to .*outside the image folder"):
            push(ws, client)
        (images / "old-visits").unlink()  # the fix the message names
        assert push(ws, client).created == 3
    finally:
        ws.close()
