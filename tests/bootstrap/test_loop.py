"""Two full rounds of the loop against the real Label Studio server, on tiny synthetic data:
bootstrap, push, simulated review, pull, `annotator retrain --round 1`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import Source
from bootstrap.rounds import RoundSettings, run_round
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.project import require_project_id
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from review_queue.simulate import simulate

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _tasks(client, project_id):
    return [t for page in client.task_pages(project_id, fields="all") for t in page]


def test_two_rounds_keep_provenance_manifests_and_reviews(live_server, monkeypatch):
    data = live_server.document_root / "loop-data"
    generate(data, images=36, labelled_fraction=0.5, seed=11)
    cfg = Config(
        images=data / "images",
        labels=data / "labels",
        imgsz=128,
        epochs=2,
        retrain_epochs=1,
        batch=8,
        test_size=4,
        project_title="PSL loop test",
    )
    ws = Workspace.create(data / "ws", cfg)
    ingest(ws, images=cfg.images, labels=cfg.labels)
    manual = {p for p, v in ws.store.labels.current_labels().items() if v.source is Source.MANUAL}

    # round 0
    run_round(ws, 0, RoundSettings(model="yolo11n.yaml", epochs=2, imgsz=128, batch=8, workers=2))
    client = connect(
        ws, url=live_server.url, api_key=live_server.credentials.token, document_root=live_server.document_root
    )
    pushed = push(ws, client)
    assert pushed.created == 18
    simulated = simulate(ws, client, count=6)
    assert simulated.annotated == 6
    pull(ws, client)
    reviewed_before = {p: v for p, v in ws.store.labels.current_labels().items() if v.source is Source.REVIEWED}
    assert len(reviewed_before) == 6
    manifest0 = ws.store.rounds.manifest(0, 0)
    project_id = require_project_id(ws)
    assert simulate(ws, client, count=2).annotated == 2  # reviewed after the pull: not in the store yet
    annotated_tasks = {t.id for t in _tasks(client, project_id) if t.total_annotations}
    ws.close()

    # round 1, through the command a user types
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", live_server.credentials.token)
    retrain = ["retrain", "--round", "1", "-w", str(data / "ws"), "--url", live_server.url]
    refused = CliRunner().invoke(app, retrain + ["--refuse-unpulled"])
    assert refused.exit_code != 0 and "2 reviewed photos in Label Studio are not pulled yet" in refused.stderr
    result = CliRunner().invoke(app, retrain + ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["round"] == 1

    ws = Workspace.open(data / "ws", write=True)
    current = ws.store.labels.current_labels()
    reviewed_after = {p for p, v in current.items() if v.source is Source.REVIEWED}
    assert len(reviewed_after) == 8 and set(reviewed_before) < reviewed_after
    # provenance of every photo
    for path, version in current.items():
        if path in manual:
            assert version.source is Source.MANUAL
        elif path in reviewed_after:
            assert version.source is Source.REVIEWED and version.round == 0
            assert version.reviewer and version.meta.get("lead_time") and version.meta.get("annotation_id")
            if path in reviewed_before:
                assert version.id == reviewed_before[path].id
        else:
            assert version.source is Source.MODEL and version.model_version == "round-001" and version.round == 1
    assert len(current) == 36
    # manifests: round 0's is unchanged; round 1 trains on the manual and the reviewed labels
    assert ws.store.rounds.manifest(0, 0) == manifest0
    manifest1 = {p: (vid, split) for p, vid, split in ws.store.rounds.manifest(1, 0)}
    assert {p for p, (_, s) in manifest1.items()} == manual | reviewed_after
    assert all(manifest1[p][0] == current[p].id for p in reviewed_after)
    assert all(manifest1[p][1] != "test" for p in reviewed_after)
    assert {p: s for p, (_, s) in manifest1.items() if p in manual} == {p: s for p, _, s in manifest0}
    for rd in (ws.round_dir(0), ws.round_dir(1)):
        assert (rd / "manifest.json").exists() and (rd / "model.pt").exists()
    assert (ws.round_dir(1) / "report.html").exists()
    # Label Studio: one task per photo; round 1 replaced round 0 only on untouched tasks
    tasks = _tasks(client, project_id)
    assert len(tasks) == 18 and len({t.data["photo"] for t in tasks}) == 18
    for task in tasks:
        versions = {p.model_version for p in task.predictions}
        if task.id in annotated_tasks:
            assert versions == {"round-000"}, task.data["photo"]
        else:
            assert versions == {"round-001"}, task.data["photo"]
    ws.close()
