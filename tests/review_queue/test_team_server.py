"""The team server (`review serve --team`): Label Studio on a local PostgreSQL cluster behind gunicorn, started
once for the session (tests/conftest.py; migrations take about 90 s), and the incremental pull's watermark under a
transaction that commits late, on that PostgreSQL."""

from __future__ import annotations

import itertools
import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from annotator.config import Config
from annotator.store import Workspace
from annotator.types import Box, ImageRecord
from review_queue.labelstudio import postgres as pg
from review_queue.labelstudio import server as ls
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from tests.conftest import LiveServer
from tests.review_queue.conftest import SCENARIO, add_model_round, write_photo_set

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not pg.available(), reason="no PostgreSQL 14+ installed (see docs/team-server.md)"),
]
_cases = itertools.count()


def _setup(team_server: LiveServer):
    n = next(_cases)
    folder = team_server.document_root / f"case-{n:03d}"
    write_photo_set(folder, SCENARIO)
    ws = Workspace.create(folder / "ws", Config(images=folder / "images", project_title=f"PSL team test {n}"))
    for photo in SCENARIO:
        ws.store.labels.add_image(
            ImageRecord(path=photo.name, sha256=f"team-{n}-{photo.name}", width=photo.width, height=photo.height)
        )
    add_model_round(ws, SCENARIO, 0)
    client = connect(
        ws, url=team_server.url, api_key=team_server.credentials.token, document_root=team_server.document_root
    )
    return ws, client


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_team_server_runs_on_postgresql_with_several_workers_and_keeps_secrets_out_of_sight(team_server):
    info = team_server.info
    assert (info.database, info.workers) == ("postgresql", 3)
    assert len(_children(info.pid)) == 3, "gunicorn's master and its three workers"
    creds_file = ls.credentials_path(team_server.ws_root)
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = team_server.credentials
    assert creds.db_password and creds.db_password not in repr(creds)
    secrets = (creds.db_password, creds.token, creds.password)
    for pid in [info.pid, *_children(info.pid)]:
        cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        assert not any(s in cmdline for s in secrets), "secrets go by environment, never the command line"
    log = Path(info.log).read_text(errors="replace") + (
        ls.server_dir(team_server.ws_root) / "postgres" / "server.log"
    ).read_text(errors="replace")
    assert not any(s in log for s in secrets)
    import psycopg

    with pytest.raises(psycopg.OperationalError):  # the cluster asks for the password
        psycopg.connect(host="127.0.0.1", port=info.db_port, user=pg.DB_USER, password="wrong", dbname=pg.DB_NAME)


def test_an_annotation_committed_late_with_an_old_updated_at_is_still_pulled(team_server):
    """A Label Studio request stamps `updated_at` when it saves and commits later. Here a psycopg transaction
    stamps an annotation's and its task's `updated_at` with its start time (now()), is held open across a
    pull (which lists and exports after that stamp), and commits: the next pull must still take the edit."""
    import psycopg

    ws, client = _setup(team_server)
    push(ws, client)
    task = ws.store.review.task_map()["p0.jpg"]
    result = [box_to_result(Box("mel", 10, 10, 60, 60), 320, 240, "r1")]
    ann = client.sdk.annotations.create(task, result=result, lead_time=2.0, was_cancelled=False)
    assert pull(ws, client).current == 1
    edited = [box_to_result(Box("fre", 5, 5, 40, 40), 320, 240, "r1")]
    conninfo = dict(host="127.0.0.1", port=team_server.info.db_port, user=pg.DB_USER, dbname=pg.DB_NAME)
    with psycopg.connect(**conninfo, password=team_server.credentials.db_password) as conn:  # type: ignore[arg-type]
        conn.execute(
            "UPDATE task_completion SET result = %s, updated_at = now() WHERE id = %s", (json.dumps(edited), ann.id)
        )
        conn.execute("UPDATE task SET updated_at = now() WHERE id = %s", (task,))
        time.sleep(1.5)
        during = pull(ws, client)  # its listing and export run after the stamp and cannot see the uncommitted edit
        assert ws.store.labels.current_label("p0.jpg").boxes == (Box("mel", 10, 10, 60, 60),)
        conn.commit()
    after = pull(ws, client)
    assert (after.full, after.reason) == (False, "incremental"), during
    assert ws.store.labels.current_label("p0.jpg").boxes == (Box("fre", 5, 5, 40, 40),)


def test_a_transaction_held_past_the_old_overlap_is_still_pulled(team_server):
    """The same late write, held 12 s across a whole pull: the former rule (tasks changed after the last export less
    a 10 s overlap) lost a write held longer than its overlap (shown with the overlap at 1 s and a 3 s hold: the
    edit never arrived); comparing every task's `updated_at` with the value the last pull listed cannot."""
    import psycopg

    ws, client = _setup(team_server)
    push(ws, client)
    task = ws.store.review.task_map()["p1.jpg"]
    result = [box_to_result(Box("sl", 20, 20, 60, 60), 240, 320, "r1")]  # p1 is 240 x 320
    ann = client.sdk.annotations.create(task, result=result, lead_time=2.0, was_cancelled=False)
    pull(ws, client)
    edited = [box_to_result(Box("caf", 100, 100, 200, 180), 240, 320, "r1")]
    conninfo = dict(host="127.0.0.1", port=team_server.info.db_port, user=pg.DB_USER, dbname=pg.DB_NAME)
    with psycopg.connect(**conninfo, password=team_server.credentials.db_password) as conn:  # type: ignore[arg-type]
        conn.execute(
            "UPDATE task_completion SET result = %s, updated_at = now() WHERE id = %s", (json.dumps(edited), ann.id)
        )
        conn.execute("UPDATE task SET updated_at = now() WHERE id = %s", (task,))
        time.sleep(12.0)  # longer than the former OVERLAP_S
        pull(ws, client)
        assert ws.store.labels.current_label("p1.jpg").boxes == (Box("sl", 20, 20, 60, 60),)
        conn.commit()
    after = pull(ws, client)
    assert after.full is False
    assert ws.store.labels.current_label("p1.jpg").boxes == (Box("caf", 100, 100, 200, 180),)


def test_the_team_server_restarts_on_its_database_without_migrating_again(team_server):
    """Last in this file: it restarts the session's team server (same port, a new database port)."""
    ws_root, info = team_server.ws_root, team_server.info
    assert (Path(info.data_dir) / "annotator-team-migrated.json").exists()
    with Workspace.open(ws_root) as ws:
        assert ls.stop_server(ws)
        assert not pg.running(pg.locate(ls.server_dir(ws_root) / "postgres")), "stop stops PostgreSQL too"
        t0 = time.monotonic()
        again = ls.start_server(ws, team=True, workers=2, port=info.port, document_root=team_server.document_root)
    restart_s = time.monotonic() - t0
    assert (again.url, again.database) == (info.url, "postgresql")
    projects = httpx.get(
        again.url + "/api/projects/", headers={"Authorization": f"Token {team_server.credentials.token}"}
    )
    assert projects.status_code == 200 and projects.json()["count"] >= 2, "the projects are still there"
    assert restart_s < 120, restart_s
