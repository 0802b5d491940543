"""Label Studio failing under the tool: killed in the middle of a push and of a pull, a server that
accepts and never answers, a server that answers 500. Each time the command gives up (bounded
retries: it ends well inside the tests' hang guard) with exit code 4 and one clear line, and once
the server is back a rerun finishes with nothing lost and nothing duplicated.

The server dies at one chosen request (kit.FaultProxy), never at whatever moment a poll catches, so
each test runs the case it names on every run; no test measures wall-clock time."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import LabelVersion, Source
from review_queue.labelstudio.client import CHECK_TIMEOUT_S, connect
from review_queue.labelstudio.push import push
from review_queue.queue import PushResult
from review_queue.simulate import simulate
from tests.reliability import reliability_kit as kit

PHOTOS = 40
LABEL_STUDIO_DOWN = ("is not reachable", "stopped answering", "did not answer in time")
HANG_GUARD_S = 120  # a command still running after this is hung: the test fails (it is no time limit to meet)
IMPORT = r"^/api/projects/\d+/import(\?|$)"  # a batch of new tasks, not predictions
EXPORT_DOWNLOAD = r"^/api/projects/\d+/exports/\d+/download"


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
            for i, rec in enumerate(ws.store.labels.images()):
                ws.store.labels.add_label_version(
                    LabelVersion(
                        rec.path, Source.MODEL, (), round=0, model_version="round-000", uncertainty=(i % 10) / 10
                    )
                )
    return root


def _client(server, root: Path):
    with Workspace.open(root) as ws:
        return connect(ws, url=server.url, api_key=server.token, document_root=server.document_root)


def _one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.server
def test_push_survives_label_studio_dying_half_way(server, queued):
    """The server dies right after it imported the 4th batch, before push hears back: 8 tasks on the
    server, 6 recorded. The push stops; the rerun adopts the 2 and creates the rest, once each."""
    env = kit.cli_env(server.token, server.document_root)
    with kit.FaultProxy(server.url, method="POST", path=IMPORT, nth=4, action=server.kill, after_upstream=True) as hop:
        result = kit.run_cli(
            ["review", "push", "-w", str(queued), "--url", hop.url, "--batch", "2"], env, timeout=HANG_GUARD_S
        )
    assert hop.fired.is_set(), hop.requests  # the 4th import really happened, and the server died after it
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert hop.url in line and any(m in line for m in LABEL_STUDIO_DOWN), line
    assert kit.check_after_kill(queued) == []
    assert kit.db_count(queued, "SELECT COUNT(*) FROM tasks") == 6  # the 4th batch's record was never written

    server.start()
    rerun = kit.run_cli(["review", "push", "-w", str(queued), "--url", server.url, "--batch", "2", "--json"], env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    pushed = PushResult.from_dict(json.loads(rerun.stdout))
    assert (pushed.adopted, pushed.created) == (2, PHOTOS - 8)  # the unrecorded batch, adopted, not made again
    view = kit.server_view(_client(server, queued), kit.project_id(queued))
    assert kit.check_label_studio(queued, view, pulled=False) == []
    assert len(view.tasks) == PHOTOS  # one task per photo, none lost, none twice


@pytest.mark.server
def test_pull_survives_label_studio_dying_during_the_export(server, queued):
    """The server dies when the pull asks for the export it has just had made: the pull stops with
    nothing stored, and the rerun stores all 20 annotations once."""
    client = _client(server, queued)
    with Workspace.open(queued) as ws:
        push(ws, client)  # whatever the push test left undone
        assert simulate(ws, client, count=20).annotated == 20
    env = kit.cli_env(server.token, server.document_root)
    with kit.FaultProxy(server.url, method="GET", path=EXPORT_DOWNLOAD, action=server.kill) as hop:
        result = kit.run_cli(["review", "pull", "-w", str(queued), "--url", hop.url], env, timeout=HANG_GUARD_S)
    assert hop.fired.is_set(), hop.requests  # the export was made, and the server died before handing it over
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert hop.url in line and any(m in line for m in LABEL_STUDIO_DOWN), line
    assert kit.check_after_kill(queued) == []
    assert kit.db_count(queued, "SELECT COUNT(*) FROM pulled_annotations") == 0

    server.start()
    args = ["review", "pull", "-w", str(queued), "--url", server.url]
    rerun = kit.run_cli(args, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    view = kit.server_view(_client(server, queued), kit.project_id(queued))
    assert kit.check_label_studio(queued, view, pulled=True) == []
    assert len(view.annotation_ids) == 20
    assert kit.check_after_rerun(queued) == []


@pytest.fixture
def bare_ws(tmp_path) -> Path:
    (tmp_path / "images").mkdir()
    Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images")).close()
    return tmp_path / "ws"


def test_a_server_that_never_answers_is_given_up_on_after_one_short_try(bare_ws):
    """One connection, and the command gives up: had it waited the SDK's 300 s timeout, or retried,
    run_cli's hang guard (HANG_GUARD_S, far below that) would fail the test."""
    assert CHECK_TIMEOUT_S < HANG_GUARD_S  # the guard leaves room for the one short try
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
        result = kit.run_cli(
            ["review", "push", "-w", str(bare_ws), "--url", f"http://127.0.0.1:{port}"],
            kit.cli_env("a-token-for-a-black-hole"),
            timeout=HANG_GUARD_S,
        )
        for conn in held:
            conn.close()
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert "did not answer in time" in line and f"127.0.0.1:{port}" in line, line
    assert len(held) == 1  # one try (a timeout is never retried)


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
        result = kit.run_cli(
            ["review", "pull", "-w", str(bare_ws), "--url", f"http://127.0.0.1:{httpd.server_port}"],
            kit.cli_env("a-token-for-a-broken-server"),
            timeout=HANG_GUARD_S,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_clear_line(result.stderr)
    assert "failed with HTTP 500" in line and "run the command again" in line, line
    assert "a-token-for-a-broken-server" not in result.stdout + result.stderr
    assert _Always500.requests == 4  # bounded: ReviewClient.tries
