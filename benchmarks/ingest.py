"""Ingest throughput: `annotator.ingest` against the naive way, on the study's 12,836 photos.

The data set is synthetic (small photos, 38 % with labelImg XML, like the 4,868/12,836 seed set),
generated once into CACHE_DIR and reused. Both ways read the same warm files:

    naive   one process; per photo: read, sha256, PIL open + full decode, EXIF; lxml parse of its XML
    ingest  `ingest(ws, images=, labels=)`: hash, size, EXIF, 1/8-scale verify decode, safe VOC parse,
            box checks, SQLite commit and the VOC mirror (worker processes for the photo part)

Usage: python benchmarks/ingest.py [CACHE_DIR] [--images N] [--size small|phone|dslr] [--workers W] [--repeat R]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree
from PIL import Image

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate

STUDY_PHOTOS = 12_836
LABELLED_FRACTION = 0.38


def ensure_data(cache: Path, images: int, size: str, workers: int) -> Path:
    photos = cache / "images"
    if photos.is_dir() and sum(1 for _ in photos.glob("*.jpg")) == images:
        print(f"reusing {images:,} photos in {cache}")
        return cache
    if cache.exists():
        shutil.rmtree(cache)
    start = time.perf_counter()
    generate(cache, images=images, labelled_fraction=LABELLED_FRACTION, seed=0, size=size, workers=workers)
    print(f"generated {images:,} synthetic {size} photos in {time.perf_counter() - start:.1f} s into {cache}")
    return cache


def runs(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times)


def warm(paths: list[Path]) -> int:
    """Read every file once, so both ways start from the same (warm) page cache."""
    return sum(len(p.read_bytes()) for p in paths)


def naive(photos: list[Path], labels: Path) -> int:
    boxes = 0
    for photo in photos:
        data = photo.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(photo) as img:
            img.getexif()
            img.load()
        xml = labels / (photo.stem + ".xml")
        if xml.exists():
            boxes += len(etree.parse(str(xml)).getroot().findall("object"))
    return boxes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", nargs="?", type=Path, default=Path(tempfile.gettempdir()) / "annotator-bench-ingest")
    parser.add_argument("--images", type=int, default=STUDY_PHOTOS)
    parser.add_argument(
        "--size",
        default="small",
        help="synthetic photo size: small (384x288), phone, dslr (18 MP); use a separate CACHE_DIR per size",
    )
    parser.add_argument("--workers", type=int, default=None, help="ingest worker processes (default: its own choice)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way, interleaved; the best counts")
    args = parser.parse_args()

    data = ensure_data(args.cache, args.images, args.size, os.cpu_count() or 1)
    photos = sorted((data / "images").glob("*.jpg"))
    xmls = sorted((data / "labels").glob("*.xml"))
    size = warm(photos + xmls)
    print(f"{len(photos):,} photos ({size / 1e6:.0f} MB), {len(xmls):,} with XML; {os.cpu_count()} CPUs")

    naive_times, ingest_times = [], []
    for _ in range(args.repeat):  # interleaved, so a busy moment on a shared machine hits both ways alike
        start = time.perf_counter()
        naive_boxes = naive(photos, data / "labels")
        naive_times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Config(images=data / "images", labels=data / "labels")
            with Workspace.create(Path(tmp) / "ws", cfg) as ws:
                start = time.perf_counter()
                report = ingest(ws, images=cfg.images, labels=cfg.labels, workers=args.workers)
                ingest_times.append(time.perf_counter() - start)
        if report.added != len(photos) or report.boxes != naive_boxes:
            print(
                f"MISMATCH: ingest added {report.added} photos / {report.boxes} boxes, naive saw {len(photos)} / "
                f"{naive_boxes}",
                file=sys.stderr,
            )
            return 1
    naive_s, ingest_s = min(naive_times), min(ingest_times)

    n = len(photos)
    print(
        f"naive  (1 process, full decode): {naive_s:7.1f} s  {n / naive_s:8.0f} files/s   (runs: {runs(naive_times)} s)"
    )
    print(
        f"ingest (annotator.ingest)      : {ingest_s:7.1f} s  {n / ingest_s:8.0f} files/s   "
        f"(runs: {runs(ingest_times)} s)"
    )
    print(
        f"ratio: ingest is {naive_s / ingest_s:.2f}x the naive way ({report.labelled:,} labelled, "
        f"{report.boxes:,} boxes, {len(report.lines)} report lines)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
