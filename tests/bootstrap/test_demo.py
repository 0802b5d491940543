"""`annotator demo` runs both rounds through the loop's one sequence and, rerun on the same folder,
continues where it stopped instead of training or reviewing again."""

from __future__ import annotations

import pytest

from annotator.rounds import Stage
from annotator.store import Workspace
from annotator.types import Source
from bootstrap.demo import DemoSettings, run_demo
from review_queue.labelstudio import server as ls

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_the_demo_finishes_two_rounds_and_a_rerun_resumes_without_redoing_work(tmp_path, ls_template, monkeypatch):
    monkeypatch.setenv(ls.TEMPLATE_ENV, str(ls_template))
    settings = DemoSettings(folder=tmp_path / "demo", images=40, epochs=1, retrain_epochs=1, imgsz=64)
    ws_root = settings.folder / "workspace"
    try:
        first = run_demo(settings)
        assert len(first["curve"]) == 2, "the learning curve has a row per round"
        with Workspace.open(ws_root) as ws:
            rounds = [(r.round_no, r.stage) for r in ws.store.rounds.rounds()]
            reviewed = {p: v.id for p, v in ws.store.labels.current_labels([Source.REVIEWED]).items()}
            pushed = {r.round_no: r.push for r in ws.store.rounds.rounds()}
        assert rounds == [(0, Stage.DONE), (1, Stage.DONE)]
        assert reviewed, "the simulated dermatologist's reviews were pulled in round 1"
        assert all(pushed[r] is not None for r in (0, 1)), "both rounds pushed their predictions"
        models = {p: p.stat().st_mtime_ns for p in ws_root.glob("rounds/*/model.pt")}

        import training.detectors.ultralytics as ultra

        monkeypatch.setattr(
            ultra.UltralyticsDetector,
            "train",
            lambda *a, **k: pytest.fail("a resumed demo must not train a finished round again"),
        )
        run_demo(settings)
        with Workspace.open(ws_root) as ws:
            assert [(r.round_no, r.stage) for r in ws.store.rounds.rounds()] == rounds
            assert {p: v.id for p, v in ws.store.labels.current_labels([Source.REVIEWED]).items()} == reviewed
        assert {p: p.stat().st_mtime_ns for p in ws_root.glob("rounds/*/model.pt")} == models
    finally:
        ls.stop_server(ws_root)
