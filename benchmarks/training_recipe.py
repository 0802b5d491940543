"""One trial of the small-seed-set training recipe (docs/training-recipe.md): train, then score on a fixed test set.

The data: 400 synthetic "small" photos (seed 7), shuffled with seed 0 into a round-0 seed set of 90 (72 train,
18 val), 110 more that join for round 1 (88 train, 22 val), and 200 test photos no round trains on.

    python -m benchmarks.training_recipe --dir /tmp/recipe --name f2 --view round0 --epochs 40 --extra '{"nbs": 8}'
    python -m benchmarks.training_recipe --dir /tmp/recipe --name f7 --view round1 --model /tmp/recipe/models/f2.pt \
        --epochs 5

Prints one JSON line (test mAP50 and on the training photos, both rounds' when round 1) and appends it to
DIR/results.jsonl. `--extra` overrides the recipe's Ultralytics arguments.
"""

from __future__ import annotations

import argparse
import json
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


def prepare(root: Path) -> dict[str, TrainingView]:
    """The two rounds' views over one workspace (made once, reused by later trials)."""
    data, ws_root = root / "data", root / "ws"
    if not (data / "truth").exists():
        generate(data, images=400, labelled_fraction=1.0, seed=7, size="small")
    if not ws_root.exists():
        ws = Workspace.create(ws_root, Config(images=data / "images", labels=data / "truth"))
        ingest(ws, images=data / "images", labels=data / "truth")
    else:
        ws = Workspace.open(ws_root, write=True)
    with ws:
        labels = ws.store.labels.current_labels()
        photos = sorted(labels)
        random.Random(0).shuffle(photos)
        seed, extra, test = photos[:90], photos[90:200], photos[200:]
        round0 = {p: ("train" if i < 72 else "val") for i, p in enumerate(seed)} | dict.fromkeys(test, "test")
        round1 = round0 | {p: ("train" if i < 88 else "val") for i, p in enumerate(extra)}
        return {
            name: build_training_view(ws, root / name, splits, labels)
            for name, splits in (("round0", round0), ("round1", round1))
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--view", choices=("round0", "round1"), default="round0")
    parser.add_argument("--model", default="yolo11n.yaml", help="a YAML (fresh start) or weights (warm start)")
    parser.add_argument("--pretrained", default=None, help="a local checkpoint for a fresh start")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--extra", default="{}", help="JSON: Ultralytics arguments over the recipe's")
    args = parser.parse_args()
    root = args.dir.resolve()
    views = prepare(root)
    view = views[args.view]
    build = {"pretrained": args.pretrained} if args.pretrained else {}
    detector = make_detector(args.model, view.classes, **build)
    started = time.perf_counter()
    detector.train(
        view,
        TrainSettings(
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device="cpu",
            workers=2,
            extra=json.loads(args.extra),
        ),
        root / "runs" / args.name,
    )
    seconds = time.perf_counter() - started
    detector.save(root / "models" / f"{args.name}.pt")
    row = {
        "name": args.name,
        "view": args.view,
        "model": args.model,
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "train_args": getattr(detector, "train_args", None),
        "train_s": round(seconds),
    }
    scored = [("test", view, "test"), ("own_train", view, "train")]
    if args.view == "round1":
        scored.append(("round0_train", views["round0"], "train"))
    for label, on, split in scored:
        quality = detector.validate(on, split, imgsz=args.imgsz, batch=16, workdir=root / "runs" / args.name)
        row[label] = {k: round(quality[k], 3) for k in ("map50", "precision", "recall")}
    print(json.dumps(row))
    with open(root / "results.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
