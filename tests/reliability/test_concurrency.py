"""Two commands on one workspace, and many reviewers at once.

A second writing command while one runs is refused with "workspace busy" (exit code 3) and
changes nothing; reading commands still work. Pulls running while several reviewers keep
submitting through the API lose nothing: after a final pull every annotation in Label Studio is
in the store exactly once, and each photo's current label is its newest review.

No outcome depends on how fast the machine is: the running command is held still (SIGSTOP) while
the others try, and the reviewers wait for pulls at fixed points of their work.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import Box, LabelVersion, Source
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from tests.reliability import reliability_kit as kit

_cases = itertools.count()
HANG_GUARD_S = 300  # only ever a guard against a hang: nothing here is timed


@pytest.mark.slow
def test_a_second_writer_is_refused_while_bootstrap_runs(tmp_path):
    data = tmp_path / "data"
    generate(data, images=30, labelled_fraction=0.5, seed=3)
    ws_root = tmp_path / "ws"
    with Workspace.create(ws_root, Config(images=data / "images", labels=data / "labels", test_size=4)) as ws:
        ingest(ws, images=ws.config.images, labels=ws.config.labels)
    env = kit.cli_env()
    bootstrap = subprocess.Popen(
        kit.CLI
        + [
            "bootstrap",
            "-w",
            str(ws_root),
            "--model",
            "yolo11n.yaml",
            "--epochs",
            "2",
            "--imgsz",
            "128",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own process group, to hold it still with its data-loader workers
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while kit.round_stage(ws_root, 0) is None and bootstrap.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # round 0 recorded: bootstrap holds the workspace
        assert kit.round_stage(ws_root, 0) is not None and bootstrap.poll() is None, bootstrap.communicate()
        # Held still while the others try, bootstrap cannot finish first and let one of them in.
        os.killpg(bootstrap.pid, signal.SIGSTOP)
        try:
            before = kit.db_query(ws_root, "SELECT COUNT(*), MAX(id) FROM images")
            writers = [
                ["init", str(ws_root), "--images", str(data / "images"), "--labels", str(data / "labels")],
                ["review", "pull", "-w", str(ws_root), "--url", "http://127.0.0.1:9"],
                ["retrain", "--round", "1", "-w", str(ws_root), "--no-queue"],
                ["finalize", "-w", str(ws_root)],
            ]
            started = [
                subprocess.Popen(
                    kit.CLI + args,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    stdin=subprocess.DEVNULL,
                )
                for args in writers
            ]
            reader = kit.run_cli(["status", "-w", str(ws_root), "--json"], env)  # readers are not locked out
            assert reader.returncode == 0, reader.stderr
            for args, proc in zip(writers, started, strict=True):
                out, err = proc.communicate(timeout=HANG_GUARD_S)
                assert proc.returncode == 3, (args, out, err)
                lines = [line for line in err.splitlines() if line.strip()]
                assert len(lines) == 1 and "workspace busy" in lines[0], err
            assert kit.db_query(ws_root, "SELECT COUNT(*), MAX(id) FROM images") == before
        finally:
            os.killpg(bootstrap.pid, signal.SIGCONT)
    finally:
        out, err = bootstrap.communicate(timeout=300)
    assert bootstrap.returncode == 0, out + err
    assert kit.check_after_rerun(ws_root) == []
    sources = kit.current_sources(ws_root)
    assert {s for s, _ in sources.values()} == {"manual", "model"} and len(sources) == 30


@pytest.mark.server
def test_pulls_during_a_stream_of_reviews_lose_nothing(live_server):
    n = next(_cases)
    data = live_server.document_root / f"reviewers-{n}"
    generate(data, images=48, labelled_fraction=0.0, seed=21)
    ws = Workspace.create(data / "ws", Config(images=data / "images", project_title=f"PSL reviewers test {n}"))
    try:
        ingest(ws, images=data / "images")
        with ws.store.transaction():
            for rec in ws.store.labels.images():
                ws.store.labels.add_label_version(
                    LabelVersion(
                        rec.path,
                        Source.MODEL,
                        (Box("mel", 10, 10, 40, 40, 0.4),),
                        round=0,
                        model_version="round-000",
                        uncertainty=0.5,
                    )
                )
        client = connect(
            ws, url=live_server.url, api_key=live_server.credentials.token, document_root=live_server.document_root
        )
        pid = push(ws, client).project_id
        records = {r.path: r for r in ws.store.labels.images()}
        tasks = [t for page in client.task_pages(pid, include="id,data") for t in page]
        reviewers = [_reviewer(client, f"reviewer-{n}-{i}@annotator.test") for i in range(3)]

        # each reviewer works through its share of the queue; a few photos get a second opinion
        rng = random.Random(n)
        rng.shuffle(tasks)
        shares = [tasks[i::3] for i in range(3)]
        for i, share in enumerate(shares):
            share.extend(shares[(i + 1) % 3][:3])
        posted: list[int] = []
        lock = threading.Lock()
        errors: list[BaseException] = []
        pulls = threading.Condition(lock)
        posted_when_pulled: list[int] = []  # annotations posted when each pull started

        def wait_for_a_pull() -> None:
            """Reviewers pause here until a pull starts: so pulls run while they still have work, however
            fast or slow each side is on this machine."""
            with pulls:
                seen = len(posted_when_pulled)
                if not pulls.wait_for(lambda: len(posted_when_pulled) > seen, timeout=HANG_GUARD_S):
                    raise TimeoutError("no pull started")

        def review(user_id: int, share: list) -> None:
            try:
                for i, task in enumerate(share):
                    if i in (len(share) // 3, 2 * len(share) // 3):
                        wait_for_a_pull()
                    rec = records[task.data["photo"]]
                    x = rng.uniform(0, rec.width / 2)
                    box = Box("sl", x, 5, x + 20, 30)
                    ann = client.sdk.annotations.create(
                        task.id,
                        result=[box_to_result(box, rec.width, rec.height, f"r{user_id}")],
                        completed_by=user_id,
                        lead_time=5.0,
                        was_cancelled=False,
                    )
                    with lock:
                        posted.append(int(ann.id))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=review, args=(u, s)) for u, s in zip(reviewers, shares, strict=True)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            with pulls:
                posted_when_pulled.append(len(posted))
                pulls.notify_all()
            pull(ws, client)
        for t in threads:
            t.join()
        assert not errors, errors
        total = 48 + 9
        during = [n for n in posted_when_pulled if 0 < n < total]
        assert len(during) >= 2, posted_when_pulled  # pulls really ran with reviews behind and ahead of them
        pull(ws, client)

        view = kit.server_view(client, pid)
        assert view.annotation_ids == set(posted) and len(posted) == total
        assert kit.check_label_studio(ws.root, view, pulled=True) == []
        assert kit.check_after_rerun(ws.root) == []
        newest = {}  # photo -> its newest annotation
        annotations_of = {}  # photo -> every annotation on its task
        for task in view.tasks:
            anns = sorted(task.annotations, key=lambda a: (kit.get(a, "updated_at") or "", kit.get(a, "id")))
            newest[task.data["photo"]] = int(kit.get(anns[-1], "id"))
            annotations_of[task.data["photo"]] = {int(kit.get(a, "id")) for a in anns}
        current = ws.store.labels.current_labels()
        # Two reviewers who agree on a photo give it their merged label (double review): it names both
        # annotations. Every other photo's current label is its newest annotation.
        merged = {p: v for p, v in current.items() if v.meta.get("double_review") == "merged"}
        merged_from = {
            p: {ws.store.labels.version(vid).meta["annotation_id"] for vid in v.meta["reviews"]}
            for p, v in merged.items()
        }
        assert all(merged_from[p] == annotations_of[p] for p in merged), (merged_from, annotations_of)
        assert {p: v.meta.get("annotation_id") for p, v in current.items() if p not in merged} == {
            p: a for p, a in newest.items() if p not in merged
        }
    finally:
        ws.close()


def _reviewer(client, email: str) -> int:
    user = client.sdk.users.create(username=email.split("@")[0], email=email, first_name="Reviewer")
    return int(user.id)
