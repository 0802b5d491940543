"""Scale: the full study size (12,836 small synthetic photos, 38% hand-labelled) through `init`,
pre-annotation, push, bulk review and pull, with the wall time and peak memory of every step.

    python benchmarks/scale.py [--photos 12836] [--small 2000] [--imgsz 320] [--out DIR] [--keep]

Every step runs in its own process. Peak RSS is the step's own maximum resident set (from
`wait4`, i.e. its largest process, worker processes included) and the sampled sum over its
process tree; the local Label Studio's tree is sampled separately. Pre-annotation (CPU, an
untrained yolo11n built from YAML: no training needed to measure the engine) runs twice, on
`--small` photos and on all of them, to show memory does not grow with the number of photos.
The review: the simulated reviewer (`annotator review simulate`) on a sample, more tasks
annotated with their true boxes through the API by parallel calls, the rest of the queue
accepted as predicted by Label Studio's bulk action (one request per 2,000 tasks; one call per
annotation would take ~15 min on two cores), then one `annotator review pull` of everything.
Ends with consistency checks (one task per photo, every annotation stored once).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "annotator")]


@dataclass
class Step:
    name: str
    photos: int
    wall_s: float
    maxrss_mb: float  # the step's largest process (wait4)
    tree_mb: float  # sampled peak of the whole process tree
    server_mb: float  # sampled peak of the local Label Studio's tree during the step (0: none)
    note: str = ""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class _Sampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 0.2 s."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid) if pid else None
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while self.proc is not None and not self.stop.is_set():
            self.peak = max(self.peak, _tree_rss(self.proc))
            self.stop.wait(0.2)

    def finish(self) -> float:
        self.stop.set()
        self.join()
        return self.peak / 2**20


def run_step(
    name: str, cmd: list[str], *, photos: int, server_pid: int | None = None, env: dict | None = None, log: Path
) -> tuple[Step, str]:
    """Run one step as a child process; (its figures, its stdout). Fails loudly on a non-zero exit."""
    started = time.perf_counter()
    with open(log, "ab") as err:
        proc = subprocess.Popen(["nice", "-n", "5", *cmd], stdout=subprocess.PIPE, stderr=err, env=env or os.environ)
        own = _Sampler(proc.pid)
        server = _Sampler(server_pid)
        own.start()
        server.start()
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    step = Step(name, photos, time.perf_counter() - started, usage.ru_maxrss / 1024, own.finish(), server.finish())
    if proc.returncode != 0:
        raise SystemExit(f"step {name!r} failed with exit code {proc.returncode}; see {log}")
    print(
        f"  {name}: {step.wall_s:.1f} s, peak RSS {step.maxrss_mb:.0f} MB (tree {step.tree_mb:.0f} MB)"
        + (f", Label Studio {step.server_mb:.0f} MB" if server_pid else ""),
        flush=True,
    )
    return step, out.decode()


# ---- steps run in their own process (`scale.py _preannotate ...`, `scale.py _annotate ...`) -------------


def _preannotate(ws_root: Path, limit: int, version: str, imgsz: int) -> None:
    from annotator.store import Workspace
    from bootstrap.preannotate import preannotate
    from bootstrap.rounds import unreviewed_targets
    from training.detectors import make_detector

    with Workspace.open(ws_root, write=True) as ws:
        records = unreviewed_targets(ws, version)  # what a round predicts: photos without a human label
        if limit:
            records = records[:limit]
        detector = make_detector("yolo11n", ws.config.classes)  # untrained, from the package YAML
        stats = preannotate(
            ws, detector, records, round_no=0, model_version=version, imgsz=imgsz, workers=2, device="cpu"
        )
    print(json.dumps(stats.to_dict() | {"failed": len(stats.failed)}))


def _accept_rest(ws_root: Path) -> None:
    """Every task still unannotated: its prediction accepted as it is, by Label Studio's bulk action."""
    from annotator.store import Workspace
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.project import require_project_id

    with Workspace.open(ws_root) as ws:
        client = connect(ws)
        pid = require_project_id(ws)
        todo = [
            int(t.id)
            for page in client.task_pages(pid, include="id,total_annotations")
            for t in page
            if not t.total_annotations
        ]
        t = time.perf_counter()
        for start in range(0, len(todo), 2000):
            client.call(
                "accepting predictions",
                client.sdk.actions.create,
                id="predictions_to_annotations",
                project=pid,
                selected_items={"all": False, "included": todo[start : start + 2000]},
                idempotent=False,
            )
        seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "annotated": len(todo),
                "seconds": round(seconds, 1),
                "per_second": round(len(todo) / seconds, 1) if seconds else None,
            }
        )
    )


def _annotate(ws_root: Path, threads: int, limit: int) -> None:
    """Annotate `limit` unannotated tasks through the API (truth boxes), `threads` calls at a time."""
    from annotator.store import Workspace
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.convert import box_to_result
    from review_queue.labelstudio.project import require_project_id
    from review_queue.simulate import read_truth

    with Workspace.open(ws_root) as ws:
        client = connect(ws)
        pid = require_project_id(ws)
        records = {r.path: r for r in ws.store.labels.images()}
        truth_dir = Path(ws.image_root).parent / "truth"
        todo = [
            t
            for page in client.task_pages(pid, include="id,data,total_annotations")
            for t in page
            if not t.total_annotations
        ][:limit]
        classes = ws.config.class_table

        def annotate(task) -> None:
            record = records[task.data["photo"]]
            boxes = read_truth(truth_dir, record.path, classes) or []
            result = [box_to_result(b, record.width, record.height, f"t{task.id}-{i}") for i, b in enumerate(boxes)]
            client.call(
                f"annotating task {task.id}",
                client.sdk.annotations.create,
                task.id,
                idempotent=False,
                result=result,
                lead_time=10.0,
                was_cancelled=False,
                ground_truth=False,
            )

        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(annotate, todo))
        seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "annotated": len(todo),
                "seconds": round(seconds, 1),
                "per_second": round(len(todo) / seconds, 1) if seconds else None,
            }
        )
    )


# ---- the benchmark ----------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_preannotate":
        _preannotate(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_annotate":
        _annotate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_accept_rest":
        _accept_rest(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12836)
    parser.add_argument("--small", type=int, default=2000, help="photos in the smaller pre-annotation run")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--simulate", type=int, default=300, help="tasks reviewed by `annotator review simulate`")
    parser.add_argument("--api", type=int, default=1000, help="tasks annotated by parallel API calls (truth boxes)")
    parser.add_argument("--threads", type=int, default=4, help="parallel annotation calls")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    from annotator.store import Workspace
    from review_queue.labelstudio import server as ls
    from review_queue.queue import PullResult, PushResult

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    data, ws_root, log = work / "data", work / "ws", work / "steps.log"
    me = [sys.executable, str(Path(__file__).resolve())]
    steps: list[Step] = []
    n = args.photos
    print(f"scale benchmark: {n} photos in {work} (log {log}); {os.cpu_count()} CPUs", flush=True)

    step, _ = run_step(
        "synth (2 workers)",
        CLI + ["synth", str(data), "-n", str(n), "--labelled", "0.38", "--workers", "2", "--json"],
        photos=n,
        log=log,
    )
    steps.append(step)
    step, out = run_step(
        "init (ingest)",
        CLI + ["init", str(ws_root), "--images", str(data / "images"), "--labels", str(data / "labels"), "--json"],
        photos=n,
        log=log,
    )
    report = json.loads(out)
    step.note = f"{report['added']} added, {report['labelled']} hand-labelled"
    steps.append(step)
    step, _ = run_step(
        "init again (nothing new)",
        CLI + ["init", str(ws_root), "--images", str(data / "images"), "--labels", str(data / "labels"), "--json"],
        photos=n,
        log=log,
    )
    steps.append(step)

    small = min(args.small, n)
    for count, version in ((small, "scale-small"), (0, "scale-all")):
        step, out = run_step(
            f"pre-annotate {count or 'all'} (imgsz {args.imgsz}, CPU)",
            me + ["_preannotate", str(ws_root), str(count), version, str(args.imgsz)],
            photos=count,
            log=log,
        )
        stats = json.loads(out)
        step.photos = stats["photos"]
        step.name = f"pre-annotate {stats['photos']} (imgsz {args.imgsz}, CPU)"
        step.note = (
            f"{stats['predicted']} stored, {stats['skipped_human']} human-labelled kept, "
            f"{stats['images_per_second']} img/s"
        )
        steps.append(step)

    with Workspace.open(ws_root) as ws:
        t = time.perf_counter()
        info = ls.start_server(ws, template=ls.build_template(REPO / ".cache" / "ls-template"), document_root=data)
        print(f"  Label Studio started in {time.perf_counter() - t:.1f} s at {info.url}", flush=True)
    try:
        step, out = run_step(
            "review push (all model-labelled)",
            CLI + ["review", "push", "-w", str(ws_root), "--json"],
            photos=n,
            server_pid=info.pid,
            log=log,
        )
        pushed = PushResult.from_dict(json.loads(out))
        step.photos = pushed.created
        step.note = f"{pushed.created} tasks created"
        steps.append(step)
        step, out = run_step(
            f"review simulate --count {args.simulate}",
            CLI + ["review", "simulate", "-w", str(ws_root), "--count", str(args.simulate), "--json"],
            photos=args.simulate,
            server_pid=info.pid,
            log=log,
        )
        step.note = f"{step.photos / step.wall_s:.1f} tasks/s incl. start-up"
        steps.append(step)
        step, out = run_step(
            f"annotate {args.api} via API ({args.threads} threads)",
            me + ["_annotate", str(ws_root), str(args.threads), str(args.api)],
            photos=0,
            server_pid=info.pid,
            log=log,
        )
        annotated = json.loads(out)
        step.photos = annotated["annotated"]
        step.note = f"{annotated['per_second']} annotations/s"
        steps.append(step)
        step, out = run_step(
            "accept the rest (bulk action)", me + ["_accept_rest", str(ws_root)], photos=0, server_pid=info.pid, log=log
        )
        accepted = json.loads(out)
        step.photos = accepted["annotated"]
        step.note = f"{accepted['per_second']} annotations/s (one Label Studio action)"
        steps.append(step)
        step, out = run_step(
            "review pull (everything)",
            CLI + ["review", "pull", "-w", str(ws_root), "--json"],
            photos=0,
            server_pid=info.pid,
            log=log,
        )
        pulled = PullResult.from_dict(json.loads(out))
        step.photos = pulled.stored
        step.note = f"{pulled.stored} stored, {len(pulled.issues)} issues"
        steps.append(step)
        step, out = run_step(
            "review pull again (nothing new)",
            CLI + ["review", "pull", "-w", str(ws_root), "--json"],
            photos=0,
            server_pid=info.pid,
            log=log,
        )
        step.photos = PullResult.from_dict(json.loads(out)).already_pulled
        steps.append(step)
        step, _ = run_step("status", CLI + ["status", "-w", str(ws_root), "--json"], photos=n, log=log)
        steps.append(step)
        problems = _check(ws_root)
    finally:
        with Workspace.open(ws_root) as ws:
            ls.stop_server(ws)

    db_mb = (ws_root / "annotator.db").stat().st_size / 2**20
    print(f"\n{'step':<44}{'items':>8}{'wall s':>9}{'peak RSS MB':>13}{'tree MB':>9}{'LS MB':>7}  note")
    for s in steps:
        print(
            f"{s.name:<44}{s.photos:>8}{s.wall_s:>9.1f}{s.maxrss_mb:>13.0f}{s.tree_mb:>9.0f}"
            f"{(f'{s.server_mb:.0f}' if s.server_mb else '-'):>7}  {s.note}"
        )
    pre = [s for s in steps if s.name.startswith("pre-annotate")]
    if len(pre) == 2:
        print(
            f"\npre-annotation peak RSS: {pre[0].maxrss_mb:.0f} MB for {pre[0].photos} photos vs "
            f"{pre[1].maxrss_mb:.0f} MB for {pre[1].photos} photos ({pre[1].photos / pre[0].photos:.1f}x the "
            f"photos, {pre[1].maxrss_mb / pre[0].maxrss_mb:.2f}x the memory); store {db_mb:.0f} MB"
        )
    print(
        "consistency: "
        + (
            "OK (one task per photo, every annotation stored once, store intact)"
            if not problems
            else "; ".join(problems)
        )
    )
    if not args.keep and args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        raise SystemExit(1)


def _check(ws_root: Path) -> list[str]:
    """One task per photo; every submitted annotation in Label Studio stored exactly once."""
    import sqlite3

    from annotator.store import Workspace
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.project import require_project_id

    problems = []
    db = sqlite3.connect(ws_root / "annotator.db")
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        problems.append("integrity_check failed")
    stored = {
        r[0]: r[1]
        for r in db.execute(
            "SELECT json_extract(meta, '$.annotation_id'), COUNT(*) FROM label_versions WHERE source='reviewed' "
            "GROUP BY 1"
        )
    }
    db.close()
    with Workspace.open(ws_root) as ws:
        client = connect(ws)
        pid = require_project_id(ws)
        tasks = [t for page in client.task_pages(pid, include="id,data,total_annotations") for t in page]
        photos = [t.data["photo"] for t in tasks]
        if len(photos) != len(set(photos)):
            problems.append(f"{len(photos) - len(set(photos))} duplicated tasks")
        in_label_studio = sum(t.total_annotations or 0 for t in tasks)
    if in_label_studio != len(stored):
        problems.append(f"{in_label_studio} annotations in Label Studio, {len(stored)} stored")
    twice = [a for a, c in stored.items() if c != 1]
    if twice:
        problems.append(f"{len(twice)} annotations stored more than once")
    return problems


if __name__ == "__main__":
    main()
