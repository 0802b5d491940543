"""`bootstrap` trains a real (tiny) detector offline, predicts every unlabelled photo, and resumes."""

from __future__ import annotations

import json
import socket

import pytest

from annotator.rounds import Stage
from annotator.types import Source
from bootstrap.rounds import RoundSettings, ensure_splits, run_round
from training.dataset import build_training_view

TINY = RoundSettings(model="yolo11n.yaml", epochs=2, imgsz=128, batch=8, workers=2)


def run_bootstrap(ws, settings):
    return run_round(ws, 0, settings)


@pytest.fixture
def no_network(monkeypatch):
    """Every outgoing connection fails, as on a hospital machine with no internet."""
    attempts: list[object] = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"network disabled in this test (tried {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


@pytest.mark.slow
def test_bootstrap_completes_offline_and_predicts_every_unlabelled_photo(make_workspace, no_network):
    ws = make_workspace(images=40, labelled=0.5)
    unlabelled = set(ws.store.labels.unlabelled_paths())
    assert len(unlabelled) == 20

    result = run_bootstrap(ws, TINY)

    assert result.trained_now
    current = ws.store.labels.current_labels()
    predicted = {p for p, v in current.items() if v.source is Source.MODEL}
    assert predicted == unlabelled
    assert all(
        v.model_version == "round-000" and v.round == 0 and v.uncertainty is not None
        for p, v in current.items()
        if p in predicted
    )
    assert all(v.source is Source.MANUAL for p, v in current.items() if p not in predicted)
    round_dir = ws.round_dir(0)
    for name in ("model.pt", "manifest.json", "train_args.json", "metrics.json", "report.html"):
        assert (round_dir / name).exists(), name
    assert "map50" in json.loads((round_dir / "metrics.json").read_text())["test"]
    assert all(ws.voc_path(p).exists() for p in predicted)
    assert not no_network, f"tried to reach the network: {no_network}"
    ws.close()


@pytest.mark.slow
def test_a_bootstrap_interrupted_after_training_resumes_without_retraining(make_workspace, monkeypatch):
    ws = make_workspace(images=30, labelled=0.5, seed=2)
    import bootstrap.rounds as run_module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(run_module, "predict_round", killed)
        with pytest.raises(KeyboardInterrupt):
            run_bootstrap(ws, TINY)
    assert ws.store.rounds.round_record(0).stage is Stage.TRAINED
    model_mtime = (ws.round_dir(0) / "model.pt").stat().st_mtime_ns

    import training.detectors.ultralytics as ultra

    monkeypatch.setattr(
        ultra.UltralyticsDetector, "train", lambda *a, **k: pytest.fail("a finished round must not be trained again")
    )
    result = run_bootstrap(ws, TINY)

    assert not result.trained_now
    assert (ws.round_dir(0) / "model.pt").stat().st_mtime_ns == model_mtime
    assert result.preannotate.predicted == 15
    assert ws.store.rounds.round_record(0).stage is Stage.DONE
    ws.close()


@pytest.mark.slow
def test_splits_are_fixed_once_and_the_test_split_is_never_trained_on(make_workspace):
    ws = make_workspace(images=40, labelled=0.5, seed=3)
    run_bootstrap(ws, TINY)
    splits = ws.store.labels.splits()
    manifest = ws.store.rounds.manifest(0, 0)
    test_photos = {p for p, s in splits.items() if s == "test"}
    assert test_photos and all(s == "test" for p, _, s in manifest if p in test_photos)
    view = build_training_view(
        ws,
        ws.root / "tmp-view",
        {p: s for p, _, s in manifest},
        {p: ws.store.labels.version(v) for p, v, _ in manifest},
    )
    trained_on = {rel for _, rel in view.images["train"] + view.images["val"]}
    assert trained_on and not (trained_on & test_photos)

    assert ensure_splits(ws) == splits
    ws.close()
