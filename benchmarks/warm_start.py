"""Does warm-starting round N from round N-1's weights pay off? Train round N's exact data set
(its manifest) from scratch for the same epochs and compare test-split mAP50 and train time.

Run after `benchmarks/loop.py` (or on any workspace with a finished round N >= 1):
  python benchmarks/warm_start.py --workspace /tmp/annotator-loop-bench/ws [--round 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/annotator-loop-bench/ws"))
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--model", default="yolo11n.yaml", help="architecture for the from-scratch run")
    args = parser.parse_args()

    from annotator.store import Workspace
    from training.dataset import build_training_view
    from training.detectors import make_detector
    from training.detectors.base import TrainSettings

    with Workspace.open(args.workspace) as ws:
        record = ws.store.rounds.round_record(args.round)
        warm = record.trained if record else None
        if record is None or warm is None or warm.test is None or warm.epochs is None or warm.imgsz is None:
            raise SystemExit(f"round {args.round} is not trained in {args.workspace}")
        epochs, imgsz = warm.epochs, warm.imgsz
        manifest = ws.store.rounds.manifest(args.round, record.attempt)
        out = ws.root / "warm-start-check"
        view = build_training_view(
            ws, out / "view", {p: s for p, _, s in manifest}, {p: ws.store.labels.version(v) for p, v, _ in manifest}
        )
        cold = make_detector(args.model, ws.config.classes)
        started = time.perf_counter()
        cold.train(view, TrainSettings(epochs=epochs, imgsz=imgsz, batch=ws.config.batch), out / "work")
        cold_seconds = time.perf_counter() - started
        cold_test = cold.validate(view, "test", imgsz=imgsz, batch=ws.config.batch, workdir=out / "work")
    print(f"round {args.round}: {len(manifest)} photos, {epochs} epochs at {imgsz} px")
    print(
        f"  warm start from round {args.round - 1}: test mAP50 {warm.test['map50']:.3f}  "
        f"(train {(warm.train_seconds or 0.0) / 60:.1f} min)"
    )
    print(f"  from scratch ({args.model}):  test mAP50 {cold_test['map50']:.3f}  (train {cold_seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
