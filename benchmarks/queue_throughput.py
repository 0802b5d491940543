"""Throughput of the review queue against a real local Label Studio: bulk push, the first full pull, and
incremental pulls (nothing new; NEW new reviews) versus the full-export way, measured in the same run.

    python -m benchmarks.queue_throughput [--n 8000] [--new 300] [--sample 50] [--team [--workers W]]

push: `review_queue.labelstudio.push.push` of N photos with predictions (bulk import, 1,000 per request), vs
one `import_tasks` call per task on a sample. First full pull: N - 2*NEW annotated tasks (imported in bulk
with their annotations, as if reviewed earlier) pulled by
`review_queue.labelstudio.pull.pull` (snapshot exports of 1,000-task chunks, each stored while the next is
exported: checks, diff, one transaction per annotation, VOC mirror). Then NEW reviews are posted one by one
(as reviewers do) and pulled incrementally, then NEW more pulled with `full=True` (the old way: a full
export every time); a pull with nothing new is timed both ways. Goals (issue 14): push and first full
pull at most 10 s each, nothing new at most 1 s over the command's start-up (`connect`, timed too), NEW=300
new reviews under 3 s. The load average is printed: other work on the machine slows Label Studio.
The server starts from the migrated template (.cache/ls-template, built when absent).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image  # noqa: E402

from annotator.config import Config  # noqa: E402
from annotator.store import Workspace  # noqa: E402
from annotator.types import Box, ImageRecord, LabelVersion, Source  # noqa: E402
from review_queue.labelstudio import server as ls  # noqa: E402
from review_queue.labelstudio.client import connect  # noqa: E402
from review_queue.labelstudio.convert import box_to_result, task_payload  # noqa: E402
from review_queue.labelstudio.project import PROJECT_KEY, document_prefix, ensure_photo_storage  # noqa: E402
from review_queue.labelstudio.pull import TASK_FILTER, _export, pull  # noqa: E402
from review_queue.labelstudio.push import push  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
W, H = 640, 480


def _photos(root: Path, n: int) -> Path:
    """n photo files (hard links to one small JPEG: Label Studio never opens them during push/pull)."""
    images = root / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (W, H), (180, 140, 120)).save(root / "photo.jpg", quality=70)
    for i in range(n):
        os.link(root / "photo.jpg", images / f"face_{i:05d}.jpg")
    return images


def _workspace(root: Path, images: Path, n: int, title: str, seed: int) -> Workspace:
    rng = random.Random(seed)
    ws = Workspace.create(root, Config(images=images, project_title=title))
    with ws.store.transaction():
        for i in range(n):
            path = f"face_{i:05d}.jpg"
            ws.store.labels.add_image(ImageRecord(path=path, sha256=f"{seed}-{i}", width=W, height=H))
            boxes = tuple(
                Box(
                    rng.choice(("sl", "fre", "mel")),
                    x,
                    y,
                    x + rng.uniform(10, 80),
                    y + rng.uniform(10, 80),
                    score=rng.random(),
                )
                for x, y in ((rng.uniform(0, 500), rng.uniform(0, 380)) for _ in range(rng.randint(1, 4)))
            )
            ws.store.labels.add_label_version(
                LabelVersion(path, Source.MODEL, boxes, round=0, model_version="round-000", uncertainty=rng.random())
            )
    return ws


def _rate(count: int, seconds: float) -> str:
    return f"{count} in {seconds:.2f} s = {count / seconds:,.1f}/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--new", type=int, default=300)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--team", action="store_true", help="the team server: PostgreSQL behind gunicorn workers")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers with --team")
    args = parser.parse_args()
    n, sample, new = args.n, args.sample, args.new
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        base = Path(tmp)
        images = _photos(base / "photos", n)
        server_ws = Workspace.create(base / "server-ws", Config(images=images))
        t0 = time.perf_counter()
        if args.team:
            info = ls.start_server(server_ws, team=True, workers=args.workers, timeout=600)
            print(
                f"team server start (PostgreSQL, migrations): {time.perf_counter() - t0:.1f} s, {info.workers} workers"
            )
        else:
            template = ls.build_template(Path(os.environ.get(ls.TEMPLATE_ENV) or REPO / ".cache" / "ls-template"))
            info = ls.start_server(server_ws, template=template)
            print(f"server start from template: {time.perf_counter() - t0:.1f} s ({info.url})")
        try:
            # ---- push ------------------------------------------------------------------
            ws = _workspace(base / "ws-push", images, n, "bench push", seed=1)
            client = connect(
                ws,
                url=info.url,
                api_key=ls.read_credentials(server_ws.root).token,
                document_root=Path(info.document_root),
            )
            t0 = time.perf_counter()
            result = push(ws, client)
            bulk_push = time.perf_counter() - t0
            assert result.created == n

            naive_project = client.sdk.projects.create(
                title="bench naive push", label_config=client.sdk.projects.get(result.project_id).label_config
            )
            ensure_photo_storage(ws, client, naive_project.id)
            prefix = document_prefix(ws, client)
            labels = ws.store.labels.current_labels()
            records = {r.path: r for r in ws.store.labels.images()[:sample]}
            t0 = time.perf_counter()
            for path, rec in records.items():
                client.sdk.projects.import_tasks(
                    naive_project.id, request=[task_payload(rec, labels[path], str(prefix / path))]
                )
            naive_push = time.perf_counter() - t0
            ws.close()

            # ---- pull ------------------------------------------------------------------
            ws = _workspace(base / "ws-pull", images, n, "bench pull", seed=2)
            project = client.sdk.projects.create(title="bench pull", label_config=naive_project.label_config)
            ws.store.set_meta(PROJECT_KEY, str(project.id))
            ensure_photo_storage(ws, client, project.id)
            labels = ws.store.labels.current_labels()
            records = {r.path: r for r in ws.store.labels.images()}
            rng = random.Random(3)
            t0 = time.perf_counter()
            paths = list(records)
            reviewed_now = n - 2 * new
            for start in range(0, n, 500):
                chunk = paths[start : start + 500]
                payload = []
                for i, path in enumerate(chunk, start):
                    task = task_payload(records[path], labels[path], str(prefix / path))
                    if i < reviewed_now:  # ground_truth False: a reviewer's annotation, not an imported answer
                        task["annotations"] = [
                            {
                                "result": _reviewed(labels[path], rng),
                                "lead_time": 12.0,
                                "was_cancelled": False,
                                "ground_truth": False,
                            }
                        ]
                    payload.append(task)
                ids = client.sdk.projects.import_tasks(project.id, request=payload, return_task_ids=True).task_ids
                ws.store.review.record_tasks(
                    project.id, [(p, t, labels[p].id) for p, t in zip(chunk, ids, strict=True)]
                )
            print(f"setup: {n} tasks imported, {reviewed_now} of them annotated, in {time.perf_counter() - t0:.1f} s")
            tasks = ws.store.review.task_map(project.id)

            t0 = time.perf_counter()
            connect(ws, url=info.url, api_key=ls.read_credentials(server_ws.root).token)
            connect_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            first = pull(ws, client)
            first_pull = time.perf_counter() - t0
            assert first.full and first.current == reviewed_now and not first.issues, first.issues[:3]
            t0 = time.perf_counter()  # the floor: Label Studio's own export of the same tasks, nothing stored
            exported = len(_export(client, project.id, timeout=600.0, task_filter=TASK_FILTER).tasks)
            export_only = time.perf_counter() - t0

            def post_reviews(batch: list[str]) -> None:
                for path in batch:
                    client.sdk.annotations.create(
                        tasks[path], result=_reviewed(labels[path], rng), lead_time=9.0, was_cancelled=False
                    )

            t0 = time.perf_counter()
            post_reviews(paths[reviewed_now : reviewed_now + new])
            print(f"setup: {new} reviews posted one by one in {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            incr = pull(ws, client)
            incr_new = time.perf_counter() - t0
            assert not incr.full and incr.current == new, (incr.reason, incr.current)
            t0 = time.perf_counter()
            nothing = pull(ws, client)
            incr_nothing = time.perf_counter() - t0
            assert not nothing.full and nothing.stored == 0
            post_reviews(paths[reviewed_now + new :])
            t0 = time.perf_counter()
            old_way = pull(ws, client, full=True)
            full_new = time.perf_counter() - t0
            assert old_way.full and old_way.current == new
            t0 = time.perf_counter()
            old_nothing = pull(ws, client, full=True)
            full_nothing = time.perf_counter() - t0
            assert old_nothing.stored == 0
            ws.close()
        finally:
            ls.stop_server(server_ws)
            server_ws.close()
            cluster = ls.server_dir(server_ws.root) / "postgres"
            if cluster.is_symlink():  # --team run as root: the cluster lives outside the temporary folder
                shutil.rmtree(cluster.resolve(), ignore_errors=True)

    push_rate, naive_push_rate = n / bulk_push, sample / naive_push
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"push, bulk (1,000 per request): {_rate(n, bulk_push)}   goal <= 10 s: {_met(bulk_push <= 10)}")
    print(f"push, one task per call:      {_rate(sample, naive_push)}   -> bulk is {push_rate / naive_push_rate:.0f}x")
    print(f"first full pull: {_rate(n - 2 * new, first_pull)}   goal <= 10 s: {_met(first_pull <= 10)}")
    print(
        f"  Label Studio's snapshot export of the same tasks alone (one export, nothing stored): {exported} in "
        f"{export_only:.2f} s"
    )
    print(f"command start-up (connect: SDK client + token check): {connect_s:.2f} s")
    print(
        f"pull, nothing new: incremental {incr_nothing:.2f} s vs full export {full_nothing:.2f} s -> "
        f"{full_nothing / incr_nothing:.1f}x   goal <= start-up + 1 s: {_met(incr_nothing <= 1.0)}"
    )
    print(
        f"pull, {new} new reviews: incremental {incr_new:.2f} s vs full export {full_new:.2f} s -> "
        f"{full_new / incr_new:.1f}x   goal < 3 s: {_met(incr_new < 3.0)}"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _reviewed(label: LabelVersion, rng: random.Random) -> list[dict]:
    """A reviewer's result: the predicted boxes, nudged by up to 3 px."""
    moved = [Box(b.label, max(0.0, b.x1 + rng.uniform(-3, 3)), b.y1, b.x2, b.y2) for b in label.boxes]
    return [box_to_result(b, W, H, f"r{i}") for i, b in enumerate(moved)]


if __name__ == "__main__":
    main()
