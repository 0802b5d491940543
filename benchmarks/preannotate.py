"""Pre-annotation throughput: our engine vs the naive loop vs Ultralytics' folder predict.

All three run in this one process on the same photos with the same model and settings:
  naive     one `model.predict(path)` per photo (what a per-task ML backend does)
  folder    Ultralytics `predict(folder, batch=32, stream=True)`
  engine    bootstrap.preannotate: reduced-size DCT decode in threads, batched arrays,
            boxes mapped back to full resolution, results stored off the hot path
Prints img/s and the ratios. Usage:
  python benchmarks/preannotate.py [--photos 200] [--size phone|dslr|small] [--model yolo11n.yaml] [--device cpu]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from training.offline import prepare_ultralytics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--size", default="phone", help="synthetic photo size: small, phone (1600x1200), dslr (18 MP)")
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32, help="batch for Ultralytics' folder predict")
    parser.add_argument("--engine-batch", type=int, default=0, help="engine batch (0: auto, 4 on CPU, 32 on GPU)")
    parser.add_argument("--workers", type=int, default=0, help="decode threads (0: one per core)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--naive-sample", type=int, default=40, help="photos timed for the naive loop")
    parser.add_argument("--data", type=Path, default=None, help="reuse/keep the synthetic photos here")
    args = parser.parse_args()

    import os

    prepare_ultralytics()
    import torch

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.synth import generate
    from bootstrap.preannotate import CONF_FLOOR, preannotate
    from training.detectors.ultralytics import UltralyticsDetector, default_device

    device = args.device or default_device()
    workers = args.workers or os.cpu_count() or 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-preannotate-"))
    data = args.data or tmp / "data"
    if not (data / "images").exists() or len(list((data / "images").glob("*.jpg"))) < args.photos:
        t = time.perf_counter()
        generate(data, images=args.photos, labelled_fraction=0.0, seed=7, size=args.size, workers=workers)
        print(f"generated {args.photos} {args.size} photos in {time.perf_counter() - t:.1f} s")
    photos = sorted((data / "images").glob("*.jpg"))[: args.photos]
    mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
    print(f"photos: {len(photos)} x {args.size} ({mb:.2f} MB each), model {args.model}, imgsz {args.imgsz}, "
          f"device {device}, torch threads {torch.get_num_threads()}, decode threads {workers}")

    detector = UltralyticsDetector(["sl", "fre", "mel", "caf", "ota", "hori"], args.model)
    model = detector.model
    half = device != "cpu"
    model.predict(str(photos[0]), imgsz=args.imgsz, device=device, verbose=False, conf=CONF_FLOOR)  # warm-up

    sample = photos[: args.naive_sample]
    t = time.perf_counter()
    for p in sample:
        model.predict(str(p), imgsz=args.imgsz, device=device, half=half, verbose=False, conf=CONF_FLOOR)
    naive = len(sample) / (time.perf_counter() - t)

    folder = tmp / "folder"
    folder.mkdir()
    for p in photos:
        os.symlink(p.resolve(), folder / p.name)
    t = time.perf_counter()
    n = sum(1 for _ in model.predict(str(folder), batch=args.batch, stream=True, imgsz=args.imgsz, device=device,
                                    half=half, verbose=False, conf=CONF_FLOOR))
    folder_rate = n / (time.perf_counter() - t)

    ws = Workspace.create(tmp / "ws", Config(images=data / "images"))
    ingest(ws, images=data / "images")
    records = [r for r in ws.store.images() if (data / "images" / r.path) in set(photos)]
    t = time.perf_counter()
    stats = preannotate(ws, detector, records, round_no=0, model_version="bench", imgsz=args.imgsz,
                        batch=args.engine_batch, workers=workers, device=device)
    engine = stats.predicted / (time.perf_counter() - t)
    ws.close()

    print(f"{'method':<42}{'img/s':>10}{'vs naive':>10}{'vs folder':>11}")
    for name, rate in (("naive: model.predict(path) per photo", naive),
                       (f"ultralytics predict(folder, batch={args.batch})", folder_rate),
                       ("annotator engine (bootstrap.preannotate)", engine)):
        print(f"{name:<42}{rate:>10.1f}{rate / naive:>9.1f}x{rate / folder_rate:>10.1f}x")
    print(f"engine end to end incl. store + VOC writes: {stats.predicted} photos in {stats.seconds:.1f} s")
    if args.data is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
