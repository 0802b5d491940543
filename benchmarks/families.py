"""Every detector family on one workspace under one protocol: Table 1, the ranking and what each model costs.

The study's Table 1 layout, the ranking with McNemar p-values, and each model's parameters, training minutes, ms per
photo, stop reason and learning curve.

    python -m benchmarks.families --profile cpu-small --preset hard --images 200 --out DIR      SIMULATED photos
    python -m benchmarks.families --profile cpu-small --real ACNE_DIR --labelled 300 --out DIR  real face photos
    python -m benchmarks.families --images 80 --epochs 2 --imgsz 256                           a smoke run

--profile (training.protocol.PROFILES: cpu-small, gpu-full) fixes the models, the photos, the image size, early
stopping and the time budget per family (docs/benchmark-protocol.md); a flag given overrides its value. Without a
profile the run is a smoke run (2 epochs, the tool's recipe), not a result. --real DIR: the face-photo set of
benchmarks/real_photos.py (its valid split is the test split; --labelled photos of its train split, 80 % train and
20 % val). Otherwise a synthetic set of --images photos of --preset, all labelled, --test-fraction held out.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate, preset_world
from bootstrap.rounds import ensure_splits
from training.benchmark import BenchmarkSettings, default_models, parse_models, parse_pretrained, run_benchmark
from training.protocol import PROFILES
from training.report import render_markdown

SMOKE = {"epochs": 2, "imgsz": 256, "batch": 8, "device": "cpu", "workers": 0}  # without a profile


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default=None)
    parser.add_argument("--real", type=Path, default=None, help="the real face-photo set's folder")
    parser.add_argument("--labelled", type=int, default=300, help="--real: photos drawn from its train split")
    parser.add_argument("--images", type=int, default=80, help="synthetic photos (all labelled)")
    parser.add_argument("--preset", default="default", help="synthetic world: default | hard")
    parser.add_argument("--size", default="small", help="synthetic photo size: small | phone | dslr")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="synthetic: photos held out as test")
    for flag, kind in (("--epochs", int), ("--imgsz", int), ("--batch", int), ("--patience", int)):
        parser.add_argument(flag, type=kind, default=None, help="default: the profile's")
    parser.add_argument("--budget-minutes", type=float, default=None, help="default: the profile's")
    parser.add_argument("--max-photos", type=int, default=None, help="default: the profile's")
    parser.add_argument("--device", default=None, help="default: the profile's, else cpu")
    parser.add_argument("--workers", type=int, default=None, help="default: the profile's, else 0")
    parser.add_argument("--models", default=None, help="default: the profile's, else every registered model")
    parser.add_argument("--pretrained", action="append", default=[], help="MODEL=PATH; repeat per model")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None, help="keep the workspace and report here")
    return parser.parse_args()


def _settings(args: argparse.Namespace) -> tuple[list[str], BenchmarkSettings]:
    """The models and the protocol: the profile's (or a smoke run's), each overridden by a flag given."""
    from training.benchmark import benchmark_models

    if args.models is not None:
        models = parse_models(args.models)
    else:
        models = default_models(args.profile) if args.profile else list(benchmark_models())
    given: dict[str, Any] = {k: getattr(args, k) for k in ("epochs", "imgsz", "batch", "patience", "device", "workers")}
    given |= {"budget_minutes": args.budget_minutes, "max_photos": args.max_photos, "n_resamples": args.resamples}
    if args.profile is None:
        given |= {k: v for k, v in SMOKE.items() if given.get(k) is None}
    starts = parse_pretrained(args.pretrained, models)
    return models, BenchmarkSettings.for_profile(args.profile, pretrained=starts, **given)


def _synthetic_workspace(root: Path, args: argparse.Namespace) -> Workspace:
    """A synthetic set of the preset, all labelled; the workspace draws its fixed splits."""
    if not (root / "data" / "labels").exists():
        world = preset_world(args.preset)
        generate(root / "data", images=args.images, labelled_fraction=1.0, seed=args.seed, size=args.size, world=world)
    config = Config(images=root / "data" / "images", labels=root / "data" / "labels", test_fraction=args.test_fraction)
    ws = Workspace.create(root / "ws", config)
    ingest(ws, images=config.images, labels=config.labels)
    ensure_splits(ws)
    return ws


def _real_workspace(root: Path, args: argparse.Namespace) -> Workspace:
    """The real set: its valid split the test split, --labelled photos of its train split 80 % train, 20 % val."""
    from benchmarks.real_photos import prepare
    from bootstrap.rounds import fix_splits

    real = prepare(args.real, root / "data", labelled=args.labelled, pool=0, seed=args.seed)
    train = sorted(set(real.labelled) - set(real.test))
    val = set(random.Random(args.seed).sample(train, round(0.2 * len(train))))
    splits = {p: ("val" if p in val else "train") for p in train} | {p: "test" for p in real.test}
    config = Config(images=real.images, labels=real.root / "labels", classes=real.classes, seed=args.seed)
    ws = Workspace.create(root / "ws", config)
    ingest(ws, images=config.images, labels=config.labels)
    fix_splits(ws, splits)  # fixed here, so ensure_splits (and the benchmark) keep them
    return ws


def main() -> None:
    args = _args()
    models, settings = _settings(args)
    root = args.out or Path(tempfile.mkdtemp(prefix="families-"))
    started = time.perf_counter()
    ws = _real_workspace(root, args) if args.real is not None else _synthetic_workspace(root, args)
    print(f"workspace ready in {time.perf_counter() - started:.1f} s: {root / 'ws'}; profile {settings.profile}")

    finished: set[tuple[str, str]] = set()

    def progress(stage: str, name: str, done: int, total: int) -> None:
        if done == total and (stage, name) not in finished:
            finished.add((stage, name))
            what = f"trained ({total} epochs)" if stage == "train" else f"predicted ({total} photos)"
            print(f"  {name}: {what} at {time.perf_counter() - started:.0f} s", flush=True)

    try:
        result = run_benchmark(ws, models, root / "report", settings=settings, progress=progress)
    finally:
        ws.close()
    print()
    print(render_markdown(result))
    print(f"total wall time {time.perf_counter() - started:.0f} s; report: {result.files['html']}")


if __name__ == "__main__":
    main()
