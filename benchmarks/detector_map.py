"""How well round 0's detector learns the synthetic lesions: test-split mAP50 on N small photos.

Generates N small synthetic photos, all hand-labelled, runs `bootstrap` (fixed splits, training
from the package YAML, evaluation on the held-out test split) and prints mAP50 overall and per
class with the training time. CPU-sized by default.

  python benchmarks/detector_map.py [--photos 600] [--epochs 40] [--imgsz 384] [--model yolo11n.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/annotator-map-bench"))
    args = parser.parse_args()

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.synthetic import generate
    from bootstrap.rounds import RoundSettings, run_round

    data = args.dir / "data"
    if not (data / "truth").exists():
        generate(data, images=args.photos, labelled_fraction=1.0, seed=3, workers=2)
    cfg = Config(images=data / "images", labels=data / "labels", test_size=60, test_fraction=0.10)
    root = args.dir / f"ws-{Path(args.model).stem}-{args.epochs}e-{args.imgsz}"
    ws = Workspace.create(root, cfg) if not (root / "annotator.toml").exists() else Workspace.open(root, write=True)
    ingest(ws, images=cfg.images, labels=cfg.labels)
    started = time.perf_counter()
    result = run_round(ws, 0, RoundSettings(model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch))
    minutes = (time.perf_counter() - started) / 60
    test = result.metrics["test"]
    images = result.metrics.get("images", {})
    print(
        f"{args.photos} photos ({images}), {args.model}, {args.epochs} epochs at {args.imgsz} px, CPU: "
        f"{minutes:.1f} min"
    )
    print(
        f"test split: mAP50 {test['map50']:.3f}  mAP50-95 {test['map50_95']:.3f}  precision {test['precision']:.3f}"
        f"  recall {test['recall']:.3f}  ({test['images']} photos)"
    )
    for cls, m in test["per_class"].items():
        print(f"  {cls:<5} mAP50 {m['map50']:.3f}  precision {m['precision']:.3f}  sensitivity {m['recall']:.3f}")
    ws.close()


if __name__ == "__main__":
    main()
