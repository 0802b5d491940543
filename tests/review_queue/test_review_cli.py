"""`annotator review ...` end to end: serve a workspace's own server, then push, simulate, pull, status."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from annotator.cli.review import review_app
from annotator.config import Config
from annotator.store import Workspace
from review_queue.labelstudio.server import TEMPLATE_ENV, credentials_path, read_credentials, read_server_info

pytestmark = pytest.mark.server
runner = CliRunner()


def _files_holding(root, secret: str, *, skip=()) -> list[str]:
    """Every file under root whose bytes contain the secret (skip: paths not to scan)."""
    return [
        str(f)
        for f in root.rglob("*")
        if f.is_file() and not any(f == s or s in f.parents for s in skip) and secret.encode() in f.read_bytes()
    ]


def test_serve_starts_the_workspace_server_and_keeps_the_token_out_of_stdout(tmp_path, ls_template, monkeypatch):
    (tmp_path / "photos").mkdir()
    Workspace.create(tmp_path / "ws", Config(images=tmp_path / "photos")).close()
    monkeypatch.setenv(TEMPLATE_ENV, str(ls_template))
    ws = str(tmp_path / "ws")
    try:
        started = runner.invoke(review_app, ["serve", "-w", ws])
        assert started.exit_code == 0, started.output
        info = read_server_info(tmp_path / "ws")
        creds = read_credentials(tmp_path / "ws")
        assert info is not None and creds is not None
        assert info.url in started.output and str(credentials_path(tmp_path / "ws")) in started.output
        assert "readable only by you" in started.output
        assert stat.S_IMODE(credentials_path(tmp_path / "ws").stat().st_mode) == 0o600
        # a second serve finds the running server
        again = runner.invoke(review_app, ["serve", "-w", ws, "--json"])
        assert json.loads(again.stdout)["pid"] == info.pid
        status = runner.invoke(review_app, ["status", "-w", ws, "--server", "--json"])
        assert status.exit_code == 0, status.output
        for text in (started.output, again.output, status.output):
            assert creds.token not in text and creds.password not in text
        # Label Studio's own database holds the token, behind the 0700 folder; nothing else may
        own_files = (credentials_path(tmp_path / "ws"), tmp_path / "ws" / "label-studio" / "data")
        for secret in (creds.token, creds.password):
            assert _files_holding(tmp_path, secret, skip=own_files) == []
    finally:
        stopped = runner.invoke(review_app, ["serve", "-w", ws, "--stop"])
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert read_server_info(tmp_path / "ws") is None


def test_push_simulate_pull_status_from_the_command_line(review_setup, live_server, monkeypatch):
    s = review_setup()
    s.ws.close()  # the commands take the workspace lock themselves
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", live_server.credentials.token)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(live_server.document_root))
    common = ["-w", str(s.ws.root), "--url", live_server.url]
    pushed = runner.invoke(review_app, ["push", *common, "--json"])
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["created"] == len(s.photos)
    sim = runner.invoke(review_app, ["simulate", *common, "--count", "3", "--json"])
    assert sim.exit_code == 0 and json.loads(sim.stdout)["annotated"] == 3
    pulled = runner.invoke(review_app, ["pull", *common])
    assert pulled.exit_code == 0 and "3 annotations stored" in pulled.stdout
    status = json.loads(runner.invoke(review_app, ["status", "-w", str(s.ws.root), "--json"]).stdout)
    assert (status["pushed"], status["reviewed"], status["remaining"]) == (6, 3, 3)
    assert status["simulated_reviews"] == 3
    for result in (pushed, sim, pulled):
        assert live_server.credentials.token not in result.output
    assert _files_holding(s.folder, live_server.credentials.token) == []


def test_serve_url_adopts_a_running_server(review_setup, live_server, monkeypatch):
    s = review_setup()
    s.ws.close()
    ws = str(s.ws.root)
    down = runner.invoke(review_app, ["serve", "-w", ws, "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 4 and "not reachable" in down.output
    adopted = runner.invoke(review_app, ["serve", "-w", ws, "--url", live_server.url + "/"])
    assert adopted.exit_code == 0, adopted.output
    assert f'url = "{live_server.url}"' in (s.ws.root / "annotator.toml").read_text()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", live_server.credentials.token)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(live_server.document_root))
    pushed = runner.invoke(review_app, ["push", "-w", ws, "--json"])  # no --url: annotator.toml's
    assert pushed.exit_code == 0 and json.loads(pushed.stdout)["created"] == len(s.photos)


def test_errors_are_one_line_with_an_exit_code(review_setup, monkeypatch):
    s = review_setup()
    s.ws.close()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "bad-token-123456")
    result = runner.invoke(review_app, ["push", "-w", str(s.ws.root), "--url", s.client.url])
    assert result.exit_code == 4
    assert "refused the token" in result.output and "bad-token-123456" not in result.output
    assert "Traceback" not in result.output
