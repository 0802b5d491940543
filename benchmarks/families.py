"""Every detector family on one synthetic workspace, CPU-sized: the study's Table 1 layout plus
each model's parameters, training time and inference speed.

    .venv/bin/python benchmarks/families.py --images 80 --epochs 2 --imgsz 256

SIMULATED data and a few epochs: the numbers compare cost, not clinical accuracy. A real
comparison needs the real photos, a GPU and the study's epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from bootstrap.rounds import ensure_splits
from training.benchmark import benchmark_models, parse_models, run_benchmark
from training.report import render_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=80, help="synthetic photos (all labelled)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default=",".join(benchmark_models()))
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="keep the workspace and report here")
    args = parser.parse_args()

    models = parse_models(args.models)
    root = args.out or Path(tempfile.mkdtemp(prefix="families-"))
    started = time.perf_counter()
    generate(root / "data", images=args.images, labelled_fraction=1.0, seed=11)
    ws = Workspace.create(
        root / "ws",
        Config(images=root / "data" / "images", labels=root / "data" / "labels", test_fraction=args.test_fraction),
    )
    ingest(ws, images=ws.config.images, labels=ws.config.labels)
    ensure_splits(ws)
    print(f"synthetic workspace ready in {time.perf_counter() - started:.1f} s: {root / 'ws'}", flush=True)

    def progress(stage: str, name: str, done: int, total: int) -> None:
        if done == total:
            print(
                f"  {name}: {'trained' if stage == 'train' else 'predicted'} ({total} "
                f"{'epochs' if stage == 'train' else 'photos'}) at {time.perf_counter() - started:.0f} s",
                flush=True,
            )

    try:
        result = run_benchmark(
            ws,
            models,
            root / "report",
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device="cpu",
            workers=0,
            n_resamples=args.resamples,
            progress=progress,
        )
    finally:
        ws.close()
    print()
    print(render_markdown(result))
    print(f"total wall time {time.perf_counter() - started:.0f} s; report: {result.files['html']}")


if __name__ == "__main__":
    main()
