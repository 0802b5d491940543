"""SIGKILL the real CLI at seeded random moments of `init`, `bootstrap` (above all while it
pre-annotates), `review push`, `review pull` and `retrain --round 1`, then run it again: the store
stays intact, no VOC file is half-written, nothing is lost or stored twice, Label Studio keeps one
task per photo, and every photo ends with the label source it should have.

Whatever the machine's speed, each test sees the case it names: kills aimed at a known point (the
Nth VOC file about to appear, the Nth task import carried out but unheard) cannot miss, and each
test checks that a kill really caught its command half-way (tests/reliability/crash_flow.py).

The tests share one workspace, in loop order; each brings the flow to its own starting point
when run alone. RELIABILITY_SEED changes the kill moments (the failure message names the seed).
"""

from __future__ import annotations

import os

import pytest

from tests.reliability.crash_flow import CrashFlow

pytestmark = [pytest.mark.server, pytest.mark.slow]

SEED = int(os.environ.get("RELIABILITY_SEED", "7"))


@pytest.fixture(scope="module")
def flow(live_server):
    root = live_server.document_root / f"crash-{SEED}"
    return CrashFlow(
        root,
        url=live_server.url,
        token=live_server.credentials.token,
        document_root=live_server.document_root,
        photos=100,
        labelled=0.2,
        seed=SEED,
        title=f"PSL crash test {SEED}",
    )


def _assert_whole(result) -> None:
    """Recovered, nothing lost or doubled, every check clean; every kill aimed at a known point of the
    work landed there, and at least one kill caught the command with its work half-done."""
    explain = f"seed {SEED}; {result.describe()}; problems: {result.problems[:10]}"
    assert result.recovered and result.problems == [], explain
    assert (result.lost, result.duplicates) == (0, 0), explain
    assert result.aimed_missed == [], explain
    assert result.half_done, explain


def _aimed(result) -> list[str]:
    return [k.trigger for k in result.kills if k.aimed and k.killed]


def test_init_killed_and_rerun_ingests_every_photo_once(flow):
    result = flow.init(kills=4)
    _assert_whole(result)
    assert any("VOC file" in t for t in _aimed(result)), result.describe()  # killed while writing the mirror


def test_bootstrap_killed_while_preannotating_resumes_without_redoing_photos(flow):
    result = flow.bootstrap(kills=4)
    _assert_whole(result)
    assert any(t.startswith("predictions: VOC file") for t in _aimed(result)), result.describe()
    assert any(t.startswith("predictions") for t in result.half_done), result.describe()


def test_push_killed_never_duplicates_a_task(flow):
    result = flow.push(kills=3)
    _assert_whole(result)
    assert any("answer unheard" in t for t in _aimed(result)), result.describe()  # server ahead of the store


def test_pull_killed_stores_every_annotation_exactly_once(flow):
    result = flow.pull(kills=3)
    _assert_whole(result)
    assert any(t.startswith("pulled: annotation") for t in _aimed(result)), result.describe()  # mid-store


def test_retrain_killed_at_any_stage_finishes_the_round(flow):
    result = flow.retrain(kills=4)
    _assert_whole(result)
    assert any(t.startswith("predictions: VOC file") for t in _aimed(result)), result.describe()
