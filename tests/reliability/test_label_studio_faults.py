"""Label Studio failing under the tool: killed in the middle of a push and of a pull, a server that
accepts and never answers, a server that answers 500. Each time the command ends in bounded time
with exit code 4 and one clear line (or, for a crash it did not need the server for, completes),
and once the server is back a rerun finishes with nothing lost and nothing duplicated."""

from __future__ import annotations

import http.server
import json
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synth import generate
from annotator.types import LabelVersion, Source
from review_queue.labelstudio.client import CHECK_TIMEOUT_S, connect
from review_queue.labelstudio.push import push
from review_queue.simulate import simulate

from tests.reliability import reliability_kit as kit

PHOTOS = 40
LABEL_STUDIO_DOWN = ("is not reachable", "stopped answering", "did not answer in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory, ls_template):
    s = kit.DedicatedServer(tmp_path_factory.mktemp("ls-faults"), ls_template)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def queued(server) -> Path:
    """A workspace of PHOTOS photos whose current labels are a model's (no training needed)."""
    data = server.document_root / "set"
    generate(data, images=PHOTOS, labelled_fraction=0.0, seed=5)
    root = data / "ws"
    with Workspace.create(root, Config(images=data / "images", project_title="PSL faults test")) as ws:
        ingest(ws, images=data / "images")
        with ws.store.transaction():
            for i, rec in enumerate(ws.store.images()):
                ws.store.add_label_version(LabelVersion(rec.path, Source.MODEL, (), round=0,
                                                        model_version="round-000", uncertainty=(i % 10) / 10))
    return root


def _client(server, root: Path):
    with Workspace.open(root) as ws:
        return connect(ws, url=server.url, api_key=server.token, document_root=server.document_root)


def _one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(kit.CLI + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.server
def test_push_survives_label_studio_dying_half_way(server, queued):
    env = kit.cli_env(server.token, server.document_root)
    args = ["review", "push", "-w", str(queued), "--url", server.url, "--batch", "2"]
    proc = _start(args, env)
    assert _wait_for(lambda: kit.db_count(queued, "SELECT COUNT(*) FROM tasks") >= 6, proc), proc.communicate()
    server.kill()
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - killed_at < 15  # bounded retries, not a hang
    assert proc.returncode == 4, out + err
    line = _one_clear_line(err)
    assert server.url in line and any(m in line for m in LABEL_STUDIO_DOWN), line
    assert kit.check_after_kill(queued) == []

    server.start()
    rerun = kit.run_cli(args, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    view = kit.server_view(_client(server, queued), kit.project_id(queued))
    assert kit.check_label_studio(queued, view, pulled=False) == []
    assert len(view.tasks) == PHOTOS  # one task per photo, none lost, none twice


@pytest.mark.server
def test_pull_survives_label_studio_dying_during_the_export(server, queued):
    client = _client(server, queued)
    with Workspace.open(queued) as ws:
        push(ws, client)  # whatever the push test left undone
        assert simulate(ws, client, count=20).annotated == 20
    exports_before = _exports(server)
    env = kit.cli_env(server.token, server.document_root)
    args = ["review", "pull", "-w", str(queued), "--url", server.url]
    proc = _start(args, env)
    caught = _wait_for(lambda: _exports(server) > exports_before, proc)
    server.kill()
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - killed_at < 15
    if caught:  # killed while Label Studio wrote the export: the pull had to stop
        assert proc.returncode == 4, out + err
        line = _one_clear_line(err)
        assert any(m in line for m in LABEL_STUDIO_DOWN), line
    else:  # the export was already downloaded: the pull needs the server no more and completes
        assert proc.returncode == 0, out + err
    assert kit.check_after_kill(queued) == []

    server.start()
    rerun = kit.run_cli(args, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    view = kit.server_view(_client(server, queued), kit.project_id(queued))
    assert kit.check_label_studio(queued, view, pulled=True) == []
    assert len(view.annotation_ids) == 20
    assert kit.check_after_rerun(queued) == []


def _exports(server) -> int:
    try:
        conn = sqlite3.connect(server.database, timeout=0.2)
        try:
            return conn.execute("SELECT COUNT(*) FROM data_export_export").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.fixture
def bare_ws(tmp_path) -> Path:
    (tmp_path / "images").mkdir()
    Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images")).close()
    return tmp_path / "ws"


def test_a_server_that_never_answers_is_given_up_on_quickly(bare_ws):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        held: list[socket.socket] = []

        def accept_and_say_nothing() -> None:
            try:
                while True:
                    held.append(listener.accept()[0])
            except OSError:
                pass

        threading.Thread(target=accept_and_say_nothing, daemon=True).start()
        started = time.monotonic()
        result = kit.run_cli(["review", "push", "-w", str(bare_ws), "--url", f"http://127.0.0.1:{port}"],
                             kit.cli_env("a-token-for-a-black-hole"), timeout=120)
        elapsed = time.monotonic() - started
        for conn in held:
            conn.close()
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert "did not answer in time" in line and f"127.0.0.1:{port}" in line, line
    assert elapsed < CHECK_TIMEOUT_S + 20, elapsed  # one try of the short first-contact timeout, no retries
    assert len(held) == 1


class _Always500(http.server.BaseHTTPRequestHandler):
    requests = 0

    def _fail(self) -> None:
        type(self).requests += 1
        body = json.dumps({"detail": "internal error"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _fail

    def log_message(self, *args) -> None:
        pass


def test_a_server_answering_500_gets_a_few_retries_and_one_clear_message(bare_ws):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always500)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        result = kit.run_cli(["review", "pull", "-w", str(bare_ws), "--url", f"http://127.0.0.1:{httpd.server_port}"],
                             kit.cli_env("a-token-for-a-broken-server"), timeout=120)
        elapsed = time.monotonic() - started
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert "failed with HTTP 500" in line and "run the command again" in line, line
    assert "a-token-for-a-broken-server" not in result.stdout + result.stderr
    assert _Always500.requests == 4  # bounded: ReviewClient.tries
    assert elapsed < 30, elapsed
