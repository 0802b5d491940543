"""Crash safety under many kills: the loop typed as a user would (`init`, `bootstrap`, `review push`,
`review pull`, `retrain --round 1`) on a real local Label Studio, each command SIGKILLed --kills
times at seeded random moments (chosen from what it is doing: photos ingested, VOC files written,
predictions stored, tasks recorded, annotations pulled, round stage; or a random delay), then run
to completion. Prints, per command: kills injected, kills that landed mid-run, runs recovered,
labels lost and duplicates (the goal for the last two is 0), and every problem found.

    python -m benchmarks.crash_safety [--kills 20] [--photos 100] [--seed 7] [--out DIR]

run from the repository root: the flow and its checks are the test suite's own
(tests/reliability/crash_flow.py and reliability_kit.py, which the tests run with a few kills per
command), imported as the package `tests`, which `-m` finds in the current folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from annotator.config import Config
from annotator.store import Workspace
from review_queue.labelstudio import server as ls

try:
    from tests.reliability.crash_flow import CrashFlow
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] != "tests":
        raise
    raise SystemExit(
        "error: run this from the repository root as `python -m benchmarks.crash_safety` "
        "(it imports the test suite's crash flow)"
    ) from None

REPO = Path(__file__).resolve().parents[1]

STAGES = ("init", "bootstrap", "push", "pull", "retrain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per command")
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    args = parser.parse_args()

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-crash-"))
    document_root = work / "root"
    images = document_root / "server-photos" / "images"
    images.mkdir(parents=True, exist_ok=True)
    server_ws = Workspace.create(work / "server-ws", Config(images=images))
    started = time.perf_counter()
    try:
        info = ls.start_server(
            server_ws, template=ls.build_template(REPO / ".cache" / "ls-template"), document_root=document_root
        )
        creds = ls.read_credentials(server_ws.root)
        assert creds is not None
        flow = CrashFlow(
            document_root / "crash",
            url=info.url,
            token=creds.token,
            document_root=document_root,
            photos=args.photos,
            seed=args.seed,
            title=f"PSL crash benchmark {args.seed}",
        )
        print(
            f"crash safety: {args.kills} kills per command, {args.photos} photos, seed {args.seed}, "
            f"Label Studio at {info.url}",
            flush=True,
        )
        results = []
        for stage in STAGES:
            t = time.perf_counter()
            result = getattr(flow, stage)(args.kills)
            results.append(result)
            print(
                f"  {stage:<10} {result.landed}/{len(result.kills)} kills landed, "
                f"{'recovered' if result.recovered else 'NOT RECOVERED'}, lost {result.lost}, "
                f"duplicates {result.duplicates}, {len(result.problems)} problems ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    finally:
        ls.stop_server(server_ws)
        server_ws.close()

    print(f"\n{'command':<12}{'kills':>7}{'landed':>8}{'recovered':>11}{'lost':>6}{'dups':>6}{'problems':>10}")
    for r in results:
        print(
            f"{r.stage:<12}{len(r.kills):>7}{r.landed:>8}{'yes' if r.recovered else 'NO':>11}{r.lost:>6}"
            f"{r.duplicates:>6}{len(r.problems):>10}"
        )
    total = sum(len(r.kills) for r in results)
    print(
        f"{'total':<12}{total:>7}{sum(r.landed for r in results):>8}"
        f"{sum(r.recovered for r in results):>8}/{len(results)}{sum(r.lost for r in results):>6}"
        f"{sum(r.duplicates for r in results):>6}{sum(len(r.problems) for r in results):>10}"
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    for r in results:
        print(f"\n{r.describe()}")
        for problem in r.problems:
            print(f"  PROBLEM {problem}")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    if any(r.problems or r.lost or r.duplicates or not r.recovered for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
