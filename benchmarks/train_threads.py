"""CPU training threads: Ultralytics' default against every core, on the same photos in the same run.

Ultralytics sets torch's thread count to min(8, cores - 1) when it trains on the CPU, to leave a core for
its data loader: one thread on a 2-core machine, half the compute. The tool sets every core the process
may use once Ultralytics has chosen its device (`TrainSettings.threads`, `cpu_threads`). This script trains
the same yolo11n from the same YAML on the same view (the loop's recipe, `workers=2`, 320 px, batch 8) for
EPOCHS epochs, taking turns (Ultralytics' count, every core, Ultralytics' count, ...), and prints seconds per
epoch and the ratio. The load average is printed: other work on the machine narrows the gap.

    python -m benchmarks.train_threads [--dir /tmp/train-threads] [--photos 160] [--epochs 2] [--turns 2]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import TrainingView, TrainSettings
from training.detectors.ultralytics import cpu_threads


def prepare(root: Path, photos: int) -> TrainingView:
    data, ws_root = root / "data", root / "ws"
    if not (data / "truth").exists():
        generate(data, images=photos, labelled_fraction=1.0, seed=3, size="small")
    ws = (
        Workspace.create(ws_root, Config(images=data / "images", labels=data / "truth"))
        if not ws_root.exists()
        else Workspace.open(ws_root, write=True)
    )
    with ws:
        ingest(ws, images=data / "images", labels=data / "truth")
        labels = ws.store.labels.current_labels()
        paths = sorted(labels)
        random.Random(0).shuffle(paths)
        splits = {p: ("val" if i % 5 == 0 else "train") for i, p in enumerate(paths)}
        return build_training_view(ws, root / "view", splits, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/train-threads"))
    parser.add_argument("--photos", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()
    root = args.dir.resolve()
    view = prepare(root, args.photos)
    cores = cpu_threads(None)
    ultralytics_default = min(8, max(1, (os.cpu_count() or 1) - 1))
    if cores == ultralytics_default:
        print(f"{cores} cores: Ultralytics' default already uses them all; nothing to compare")
        return
    print(f"load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({cores} cores)")
    seconds: dict[int, list[float]] = {ultralytics_default: [], cores: []}
    for turn in range(args.turns):
        for threads in (ultralytics_default, cores):
            detector = make_detector("yolo11n.yaml", view.classes)
            started = time.perf_counter()
            detector.train(
                view,
                TrainSettings(epochs=args.epochs, imgsz=320, batch=8, device="cpu", workers=2, seed=0, threads=threads),
                root / "runs" / f"t{threads}-{turn}",
            )
            seconds[threads].append((time.perf_counter() - started) / args.epochs)
            print(f"turn {turn}: {threads} thread(s): {seconds[threads][-1]:.1f} s per epoch")
    base = sum(seconds[ultralytics_default]) / len(seconds[ultralytics_default])
    ours = sum(seconds[cores]) / len(seconds[cores])
    print(
        f"{len(view.images['train'])} train + {len(view.images['val'])} val photos, {args.epochs} epochs a turn: "
        f"Ultralytics' {ultralytics_default} thread(s) {base:.1f} s/epoch, every core ({cores}) {ours:.1f} s/epoch: "
        f"{base / ours:.2f}x"
    )
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
