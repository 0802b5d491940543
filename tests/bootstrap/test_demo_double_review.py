"""`annotator demo --reviewers 2`: two simulated reviewers review the same photos, round 1's pull merges or
sends to adjudication, the simulated adjudicator settles, and every double-reviewed photo ends settled."""

from __future__ import annotations

import pytest

from annotator.store import Workspace
from bootstrap.demo import DemoSettings, run_demo
from review_queue.adjudication import double_reviews
from review_queue.labelstudio import server as ls
from review_queue.people import simulated_reviewer

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_a_double_review_demo_ends_with_every_double_reviewed_photo_merged_or_adjudicated(
    tmp_path, ls_template, monkeypatch
):
    monkeypatch.setenv(ls.TEMPLATE_ENV, str(ls_template))
    settings = DemoSettings(folder=tmp_path / "demo", images=40, epochs=1, retrain_epochs=1, imgsz=64, reviewers=2)
    ws_root = settings.folder / "workspace"
    try:
        run_demo(settings)
        with Workspace.open(ws_root) as ws:
            reviews = double_reviews(ws)
            current = {r.photo: ws.store.labels.current_label(r.photo) for r in reviews}
        assert reviews, "both simulated reviewers reviewed the same photos"
        assert all({r.a.reviewer, r.b.reviewer} == {simulated_reviewer(1), simulated_reviewer(2)} for r in reviews)
        kinds = {p: (v.meta.get("double_review") if v else None) for p, v in current.items()}
        assert set(kinds.values()) <= {"merged", "adjudicated"}, kinds
    finally:
        ls.stop_server(ws_root)
