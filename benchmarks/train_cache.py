"""What keeping the seed set decoded in RAM (`cache="ram"` in the round recipe) buys on the CPU: the same photos,
the same epochs, trained twice in one run, once decoding every photo each time mosaic reads it (Ultralytics'
default, `cache=False`) and once from the RAM cache; prints seconds per epoch and the ratio.

    python -m benchmarks.train_cache --real DIR [--photos 120 --epochs 3 --imgsz 320]
    python -m benchmarks.train_cache [--photos 120]          # synthetic photos of the hard preset

DIR: the real face-photo set (benchmarks/real_photos.py); its train split only. Large clinical JPEGs are where
decoding costs most: the synthetic photos are small.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=None)
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=320)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images, truth, classes = _photos(Path(tmp), args)
        rows = {cache: _train(Path(tmp), images, truth, classes, args, cache) for cache in ("none", "ram")}
    for cache, seconds in rows.items():
        print(f"cache={cache:>4}: {seconds / args.epochs:6.1f} s an epoch ({args.photos} photos, {args.imgsz} px)")
    print(f"ratio (decode every epoch / RAM cache): {rows['none'] / rows['ram']:.2f}x")


def _photos(tmp: Path, args: argparse.Namespace) -> tuple[Path, Path, tuple[str, ...]]:
    """A folder of photos with one truth VOC each: the real set's train photos, or hard-preset synthetic ones."""
    if args.real is None:
        from annotator.classes import CLASS_NAMES
        from annotator.synthetic import PRESETS, generate

        generate(tmp / "data", images=args.photos, labelled_fraction=1.0, seed=3, workers=2, world=PRESETS["hard"])
        return tmp / "data" / "images", tmp / "data" / "truth", CLASS_NAMES
    from benchmarks.real_photos import prepare

    real = prepare(args.real, tmp / "data", labelled=args.photos, pool=0, seed=0)
    chosen = tmp / "train"
    chosen.mkdir()
    for name in set(real.labelled) - set(real.test):  # the train-split photos only
        os.link(real.images / name, chosen / name)
    return chosen, real.root / "truth", real.classes


def _train(
    tmp: Path, images: Path, truth: Path, classes: tuple[str, ...], args: argparse.Namespace, cache: str
) -> float:
    """Seconds to train yolo11n from its YAML for the epochs on these photos, with or without the RAM cache."""
    from training.detectors import make_detector
    from training.detectors.base import TrainSettings
    from training.pretraining.synthetic import folder_view

    view = folder_view(images, truth, classes, tmp / f"view-{cache}", 0.2, 0)
    detector = make_detector("yolo11n.yaml", classes)
    extra = {"cache": False} if cache == "none" else {}
    settings = TrainSettings(epochs=args.epochs, imgsz=args.imgsz, batch=16, device="cpu", patience=args.epochs,
                             extra=extra)  # fmt: skip
    result = detector.train(view, settings, tmp / f"train-{cache}")
    shutil.rmtree(tmp / f"train-{cache}", ignore_errors=True)
    return result.train_seconds


if __name__ == "__main__":
    main()
