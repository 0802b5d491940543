"""Pipeline capacity: how many photos a second the decode -> map back -> store + VOC side of pre-annotation can feed a
model, and how much of a core each costs. The model is taken out of the question, so what is left is the engine's own.

The whole engine (`bootstrap.preannotate`) runs with a zero-cost stand-in model (a Predictor whose predict_arrays
returns two fixed boxes per photo at once), on the same synthetic photos (18 MP by default), once per decoder:
  pil      PIL's reduced decode (JPEG DCT scaling) in threads, one pipeline per core (up to 4) on the CPU
  device   annotator.device_decode: batched torchvision decode_jpeg where the model runs (nvJPEG on a GPU; without
           one, torchvision's CPU decoder at full size, which only shows the code path works: on the CPU `auto`
           picks PIL)
Every photo is read once before timing (warm file cache) and each decoder is warmed up on two other photos. "cores
busy" is the process's CPU time over the wall time; img/s per busy core is what each further core is worth if the
work spreads. The machine's load average is printed: other work on the cores slows every figure.

  python -m benchmarks.pipeline_capacity [--photos 64] [--size dslr] [--decoders pil,device] [--device cpu|0]
                                         [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from annotator.types import Box
from training.constants import PREDICT_FLOOR
from training.detectors.base import Predictor

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


class InstantPredictor(Predictor):
    """A stand-in model that costs nothing: two fixed boxes per photo (a quarter and a sixteenth of it), so mapping
    back, scoring and writing VOC do their real work."""

    family = "stand-in"

    def predict_arrays(
        self, images: Sequence[np.ndarray], *, conf: float = PREDICT_FLOOR, imgsz: int = 640, device: str | None = None
    ) -> list[list[Box]]:
        out = []
        for a in images:
            h, w = a.shape[:2]
            out.append(
                [
                    Box(CLASSES[0], 0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h, score=0.9),
                    Box(CLASSES[2], 0.1 * w, 0.1 * h, 0.35 * w, 0.35 * h, score=0.4),
                ]
            )
        return out


@dataclass(frozen=True)
class Row:
    decoder: str
    device: str
    pipelines: int
    batch: int
    photos: int
    seconds: float
    cpu_seconds: float
    decoded_by: dict[str, int]  # decoder -> photos it decoded (a device run counts PIL fallbacks here)

    @property
    def rate(self) -> float:
        return self.photos / self.seconds

    @property
    def cores_busy(self) -> float:
        return self.cpu_seconds / self.seconds

    @property
    def rate_per_busy_core(self) -> float:
        return self.rate / max(self.cores_busy, 1e-9)


def ensure_photos(data: Path, count: int, size: str, workers: int) -> list[Path]:
    """`count` synthetic photos in data/images, generated once and reused."""
    from annotator.synthetic import generate

    images = data / "images"
    if not images.is_dir() or len(list(images.glob("*.jpg"))) < count:
        shutil.rmtree(images, ignore_errors=True)
        started = time.perf_counter()
        generate(data, images=count, labelled_fraction=0.0, seed=7, size=size, workers=workers)
        print(f"generated {count} {size} photos in {time.perf_counter() - started:.1f} s")
    return sorted(images.glob("*.jpg"))[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=64, help="photos each decoder is timed on")
    parser.add_argument("--size", default="dslr", help="synthetic photo size: small, phone (1600x1200), dslr (18 MP)")
    parser.add_argument("--decoders", default="pil,device", help="comma-separated: pil, device, auto")
    parser.add_argument("--device", default=None, help="cpu, 0, ... (default: the first GPU, else the CPU)")
    parser.add_argument("--imgsz", type=int, default=640, help="the model input size photos are decoded for")
    parser.add_argument("--batch", type=int, default=0, help="engine batch (0: auto, 32 on a GPU, 4 on the CPU)")
    parser.add_argument("--data", type=Path, default=None, help="reuse/keep the synthetic photos here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from bootstrap.preannotate import _devices, auto_batch, preannotate

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    data = args.data or tmp / "data"
    every = ensure_photos(data, args.photos + 2, args.size, cores)
    spare, photos = every[:2], every[2:]
    started, size = time.perf_counter(), sum(len(p.read_bytes()) for p in every)
    print(
        f"file cache warmed: {size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s; {len(photos)} photos x "
        f"{args.size} ({size / 1e6 / len(every):.2f} MB each), imgsz {args.imgsz}, {cores} cores"
    )

    ws = Workspace.create(tmp / "ws", Config(images=data / "images", classes=CLASSES))
    ingest(ws, images=data / "images")
    by_name = {r.path: r for r in ws.store.labels.images()}
    records, warmup = [by_name[p.name] for p in photos], [by_name[p.name] for p in spare]
    devices = _devices(args.device)
    batch = args.batch or auto_batch(devices[0])
    detector = InstantPredictor(CLASSES)

    rows: list[Row] = []
    for decoder in [d.strip() for d in args.decoders.split(",") if d.strip()]:
        preannotate(
            ws,
            detector,
            warmup,
            round_no=0,
            model_version=f"warm-{decoder}",
            imgsz=args.imgsz,
            batch=batch,
            device=args.device,
            decode=decoder,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        stats = preannotate(
            ws,
            detector,
            records,
            round_no=0,
            model_version=f"bench-{decoder}",
            imgsz=args.imgsz,
            batch=batch,
            device=args.device,
            decode=decoder,
        )
        rows.append(
            Row(
                decoder,
                args.device or ("0" if devices[0] is None else str(devices[0])),
                len(devices),
                batch,
                stats.predicted,
                time.perf_counter() - wall,
                time.process_time() - cpu,
                dict(stats.decoders),
            )
        )
        if stats.failed:
            print(f"{decoder}: {len(stats.failed)} photos failed, the first: {stats.failed[0]}")
    ws.close()
    load_after = os.getloadavg()

    print(
        f"\n{'decoder':<9}{'device':<8}{'pipelines':>10}{'batch':>6}{'photos':>7}{'s':>7}{'img/s':>8}"
        f"{'cores busy':>11}{'img/s/busy core':>16}  decoded by"
    )
    for r in rows:
        by = ", ".join(f"{k} {v}" for k, v in sorted(r.decoded_by.items()))
        print(
            f"{r.decoder:<9}{r.device:<8}{r.pipelines:>10}{r.batch:>6}{r.photos:>7}{r.seconds:>7.1f}{r.rate:>8.1f}"
            f"{r.cores_busy:>11.2f}{r.rate_per_busy_core:>16.1f}  {by}"
        )
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.1f}' for v in load_before)}; after "
        f"{', '.join(f'{v:.1f}' for v in load_after)} ({cores} cores)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cores": cores,
                    "size": args.size,
                    "imgsz": args.imgsz,
                    "mb_per_photo": size / 1e6 / len(every),
                    "load_before": load_before,
                    "load_after": load_after,
                    "rows": [
                        {
                            **asdict(r),
                            "rate": r.rate,
                            "cores_busy": r.cores_busy,
                            "rate_per_busy_core": r.rate_per_busy_core,
                        }
                        for r in rows
                    ],
                },
                indent=1,
            )
        )
    shutil.rmtree(tmp, ignore_errors=True)  # the photos stay when --data names their folder


if __name__ == "__main__":
    main()
