"""A team on one Label Studio under load: N reviewers (distinct Label Studio users) annotate, re-edit their own
annotations and skip tasks concurrently for M minutes while `annotator review pull` runs again and again;
Label Studio is restarted halfway and one pull is SIGKILLed mid-run; then a last pull.

    python -m benchmarks.team_load [--team] [--reviewers 8] [--minutes 2] [--photos 400] [--seed 0]
                                   [--no-restart] [--no-kill]

--team: Label Studio on PostgreSQL behind gunicorn (`review serve --team`), else the SQLite development server.
Each reviewer is a SIMULATED Label Studio user (review_queue.people.client_as) who asks `/next` for a task and
boxes it (65%), skips it (10%), or re-edits one of their own annotations (25%), as fast as the server answers.
Pulls are the CLI command, in a subprocess, one after another. The restart stops and starts the server on the
same port (the team server: gunicorn and PostgreSQL); reviewers retry what fails meanwhile. Reported: annotations
written, re-edits, skips, failed calls (during the restart), pulls (and the one killed), then after the last pull,
checked against Label Studio's own state: tasks whose newest annotation is not the photo's current label in the
workspace (lost or stale), duplicated label versions (one annotation version stored twice), and annotations whose
text in Label Studio is not what its reviewer last wrote (lost by the server). Goal: 0, 0, 0.
Run from the repository root (it imports the test suite's photo helpers as the package `tests`).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.config import Config
from annotator.errors import AnnotatorError
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, Source
from review_queue.labelstudio import server as ls
from review_queue.labelstudio.client import ReviewClient, connect
from review_queue.labelstudio.convert import box_to_result
from review_queue.labelstudio.project import require_project_id
from review_queue.labelstudio.push import push
from review_queue.people import client_as, simulated_reviewer
from tests.review_queue.conftest import Photo, add_model_round, write_photo_set

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("mel", "sl", "caf", "fre", "ota", "hori")


@dataclass
class Tally:
    """What the load did (shared by the threads; every update under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    last_written: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # annotation id -> last result
    unsure: set[int] = field(default_factory=set)  # an update whose call failed: its text is not known

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


def _photos(n: int, rng: random.Random) -> list[Photo]:
    photos = []
    for i in range(n):
        w, h = rng.choice(((320, 240), (240, 320), (300, 200)))
        box = Box(rng.choice(CLASSES), 10, 10, 10 + rng.randint(20, 80), 10 + rng.randint(20, 80), score=0.5)
        photos.append(Photo(f"p{i:04d}.jpg", w, h, truth=(), predicted=(box,), uncertainty=rng.random()))
    return photos


def _random_result(photo: Photo, rng: random.Random) -> list[dict[str, Any]]:
    x1, y1 = rng.randint(0, photo.width // 2), rng.randint(0, photo.height // 2)
    box = Box(
        rng.choice(CLASSES), x1, y1, x1 + rng.randint(10, photo.width // 2), y1 + rng.randint(10, photo.height // 2)
    )
    return [box_to_result(box, photo.width, photo.height, f"r{rng.randint(0, 10**6)}")]


def _reviewer(
    number: int, admin: ReviewClient, pid: int, photos: dict[str, Photo], deadline: float, tally: Tally, seed: int
) -> None:
    """One simulated reviewer's loop until `deadline`: annotate what /next serves, skip, or re-edit their own."""
    rng = random.Random(seed * 100 + number)
    acting = _retry(lambda: client_as(admin, simulated_reviewer(number)), deadline)
    own: list[tuple[int, Photo]] = []
    while acting is not None and time.monotonic() < deadline:
        try:
            if own and rng.random() < 0.25:
                ann_id, photo = rng.choice(own)
                result = _random_result(photo, rng)
                with tally.lock:
                    tally.unsure.add(ann_id)
                acting.sdk.annotations.update(ann_id, result=result)
                with tally.lock:
                    tally.last_written[ann_id] = result
                    tally.unsure.discard(ann_id)
                tally.add("re-edits")
                continue
            task = acting.next_task(pid)
            if task is None:
                time.sleep(0.2)
                continue
            photo = photos[task["data"]["photo"]]
            skip = rng.random() < 0.10 / 0.75
            result = [] if skip else _random_result(photo, rng)
            ann = acting.sdk.annotations.create(int(task["id"]), result=result, lead_time=3.0, was_cancelled=skip)
            tally.add("skips" if skip else "annotations")
            if not skip:
                with tally.lock:
                    tally.last_written[int(ann.id)] = result
                own.append((int(ann.id), photo))
        except Exception:  # noqa: BLE001 - the server is restarting, or a call timed out: count and go on
            tally.add("failed calls")
            time.sleep(0.5)


def _retry(fn: Any, deadline: float) -> Any:
    while time.monotonic() < deadline:
        try:
            return fn()
        except Exception:  # noqa: BLE001
            time.sleep(0.5)
    return None


def _pull_cmd(ws: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from annotator.cli import main; main()",
        "review",
        "pull",
        "-w",
        str(ws),
        "--url",
        url,
    ]


def _puller(ws: Path, url: str, token: str, deadline: float, kill_at: float | None, tally: Tally) -> None:
    """`review pull` again and again until `deadline`; the first pull started after `kill_at` is SIGKILLed mid-run."""
    env = {**os.environ, "LABEL_STUDIO_API_KEY": token, "PYTHONPATH": str(REPO)}
    while time.monotonic() < deadline:
        proc = subprocess.Popen(_pull_cmd(ws, url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_at is not None and time.monotonic() >= kill_at:
            kill_at = None
            time.sleep(random.uniform(2.0, 4.0))  # past start-up: into the listing, export or storing
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            tally.add("pulls killed")
            continue
        tally.add("pulls" if proc.wait() == 0 else "pulls failed")


def _restart(server_ws: Workspace, info: ls.ServerInfo, args: argparse.Namespace, at: float, tally: Tally) -> None:
    """Stop Label Studio at `at` and start it again on the same port; the downtime is reported."""
    time.sleep(max(0.0, at - time.monotonic()))
    t0 = time.monotonic()
    ls.stop_server(server_ws)
    while ls._port_in_use(info.port) and time.monotonic() - t0 < 60:  # the old listener may linger a moment
        time.sleep(0.5)
    _start(server_ws, args, Path(info.document_root), port=info.port)
    tally.add("restart downtime s", round(time.monotonic() - t0))


def _start(server_ws: Workspace, args: argparse.Namespace, doc_root: Path, port: int | None = None) -> ls.ServerInfo:
    if args.team:
        return ls.start_server(
            server_ws, team=True, workers=args.workers, document_root=doc_root, port=port, timeout=600
        )
    template = ls.build_template(REPO / ".cache" / "ls-template")
    return ls.start_server(server_ws, template=template, document_root=doc_root, port=port)


def _check(ws: Workspace, admin: ReviewClient, pid: int, tally: Tally) -> dict[str, int]:
    """Label Studio's state against the workspace's after the last pull (see the module docstring)."""
    photo_of = {t: p for p, t in ws.store.review.task_map(pid).items()}
    lost = server_lost = 0
    for task in admin.tasks_with_annotations(pid):
        submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        for ann in submitted:
            wrote = tally.last_written.get(int(ann["id"]))
            if int(ann["id"]) not in tally.unsure and wrote is not None and _regions(ann["result"]) != _regions(wrote):
                server_lost += 1
        if not submitted:
            continue
        newest = max(submitted, key=lambda a: (_instant(a["updated_at"]) or "", int(a["id"])))
        current = ws.store.labels.current_label(photo_of[int(task["id"])])
        meta = current.meta if current is not None else {}
        same = current is not None and current.source is Source.REVIEWED and meta.get("annotation_id") == newest["id"]
        if not same or _instant(meta.get("updated_at")) != _instant(newest["updated_at"]):
            lost += 1
            seen = [(a["id"], a["updated_at"], a.get("completed_by")) for a in task.get("annotations") or []]
            print(
                f"  task {task['id']}: Label Studio {seen}; workspace {meta.get('annotation_id')} "
                f"{meta.get('updated_at')}",
                file=sys.stderr,
            )
    duplicated = 0
    for photo in photo_of.values():
        seen = Counter(
            (v.meta.get("annotation_id"), _instant(v.meta.get("updated_at")))
            for v in ws.store.labels.history(photo)
            if v.source is Source.REVIEWED
        )
        duplicated += sum(n - 1 for n in seen.values())
    return {"lost or stale": lost, "duplicated versions": duplicated, "changed by the server": server_lost}


def _regions(result: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(r["value"]["rectanglelabels"]), *(round(float(r["value"][k]), 4) for k in ("x", "y", "width", "height")))
        for r in result
    )


def _instant(value: Any) -> str | None:
    import datetime as dt

    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC).isoformat()


def _setup(work: Path, args: argparse.Namespace) -> tuple[Workspace, Workspace, ls.ServerInfo, dict[str, Photo]]:
    """The server's workspace (started), and the review workspace with round-0 predictions on `--photos` photos."""
    doc_root = work / "root"
    server_images = doc_root / "server-photos" / "images"
    server_images.mkdir(parents=True)
    server_ws = Workspace.create(work / "server-ws", Config(images=server_images))
    info = _start(server_ws, args, doc_root)
    photos = _photos(args.photos, random.Random(args.seed))
    folder = doc_root / "load"
    write_photo_set(folder, photos)
    ws = Workspace.create(folder / "ws", Config(images=folder / "images", project_title="PSL team load"))
    for p in photos:
        ws.store.labels.add_image(ImageRecord(path=p.name, sha256=f"load-{p.name}", width=p.width, height=p.height))
    add_model_round(ws, photos, 0)
    return server_ws, ws, info, {p.name: p for p in photos}


def _load(
    args: argparse.Namespace,
    server_ws: Workspace,
    ws_root: Path,
    info: ls.ServerInfo,
    photos: dict[str, Photo],
    admin: ReviewClient,
    pid: int,
    token: str,
) -> Tally:
    """The reviewers, the puller and the restart, all at once, for `--minutes`."""
    tally = Tally()
    start = time.monotonic()
    deadline = start + args.minutes * 60
    threads = [
        threading.Thread(target=_reviewer, args=(i + 1, admin, pid, photos, deadline, tally, args.seed))
        for i in range(args.reviewers)
    ]
    kill_at = None if args.no_kill else start + args.minutes * 60 * 0.25
    threads.append(threading.Thread(target=_puller, args=(ws_root, info.url, token, deadline, kill_at, tally)))
    if not args.no_restart:
        threads.append(
            threading.Thread(target=_restart, args=(server_ws, info, args, start + args.minutes * 30, tally))
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--team", action="store_true", help="PostgreSQL behind gunicorn (else SQLite, dev server)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers with --team")
    parser.add_argument("--reviewers", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-team-load-"))
    server_ws, ws, info, photos = _setup(work, args)
    try:
        token = ls.read_credentials(server_ws.root).token  # type: ignore[union-attr]
        admin = connect(ws, url=info.url, api_key=token, document_root=work / "root")
        push(ws, admin)
        pid = require_project_id(ws)
        ws_root = ws.root
        ws.close()  # the pulls are subprocesses
        tally = _load(args, server_ws, ws_root, info, photos, admin, pid, token)
        last = subprocess.run(
            _pull_cmd(ws_root, info.url),
            env={**os.environ, "LABEL_STUDIO_API_KEY": token, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        if last.returncode != 0:
            raise AnnotatorError(f"the last pull failed: {last.stderr[-2000:]}")
        with Workspace.open(ws_root) as done:
            found = _check(done, admin, pid, tally)
        _report(args, tally, found)
    finally:
        ls.stop_server(server_ws)
        server_ws.close()
        cluster = ls.server_dir(server_ws.root) / "postgres"
        if cluster.is_symlink():  # run as root: the cluster lives outside the work folder
            shutil.rmtree(cluster.resolve(), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _report(args: argparse.Namespace, tally: Tally, found: dict[str, int]) -> None:
    server = (
        f"PostgreSQL + gunicorn ({args.workers or ls.default_workers()} workers)" if args.team else "SQLite dev server"
    )
    c = tally.counts
    print(f"{server}, {args.reviewers} reviewers, {args.minutes:g} min, {args.photos} photos")
    for key in (
        "annotations",
        "re-edits",
        "skips",
        "failed calls",
        "pulls",
        "pulls failed",
        "pulls killed",
        "restart downtime s",
    ):
        print(f"  {key}: {c[key]}")
    for key, value in found.items():
        print(f"  {key}: {value}")
    load = os.getloadavg()[0]
    print(f"  load average at the end: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
