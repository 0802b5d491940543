"""The local server keeps its secrets to itself, and every Label Studio failure is one clear message."""

from __future__ import annotations

import socket
import stat

import pytest

from annotator.config import Config
from annotator.errors import LabelStudioError
from annotator.store import Workspace
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.project import PROJECT_KEY
from review_queue.labelstudio.push import push
from review_queue.labelstudio.server import credentials_path, server_dir

pytestmark = pytest.mark.server


@pytest.fixture
def bare_ws(tmp_path):
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    yield ws
    ws.close()


def test_credentials_are_private_and_never_logged(live_server):
    creds_file = credentials_path(live_server.ws_root)
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server_dir(live_server.ws_root).stat().st_mode) == 0o700
    secrets = (live_server.credentials.token, live_server.credentials.password)
    log = (server_dir(live_server.ws_root) / "server.log").read_text(errors="replace")
    server_json = (server_dir(live_server.ws_root) / "server.json").read_text()
    cmdline = open(f"/proc/{live_server.info.pid}/cmdline", "rb").read().decode(errors="replace")
    toml = (live_server.ws_root / "annotator.toml").read_text()
    assert "Starting development server" in log
    for text in (log, server_json, cmdline, toml):
        assert not any(s in text for s in secrets)


def test_server_down_gives_one_clear_message(bare_ws):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(LabelStudioError, match=rf"127.0.0.1:{port} is not reachable.*annotator review serve"):
        connect(bare_ws, url=f"http://127.0.0.1:{port}", api_key="0" * 40)


def test_bad_token_gives_one_clear_message_without_the_token(bare_ws, live_server):
    bad = "f00d" * 10
    with pytest.raises(LabelStudioError, match="refused the token.*LABEL_STUDIO_API_KEY") as err:
        connect(bare_ws, url=live_server.url, api_key=bad)
    assert bad not in str(err.value)


def test_a_vanished_project_says_how_to_start_a_new_one(review_setup):
    s = review_setup()
    s.ws.store.set_meta(PROJECT_KEY, "987654")
    with pytest.raises(LabelStudioError, match="project 987654 is not on Label Studio.*--new-project"):
        push(s.ws, s.client)
    assert push(s.ws, s.client, new_project=True).created == len(s.photos)
