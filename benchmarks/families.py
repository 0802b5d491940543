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

Readers: --readers N (default 2) SIMULATED dermatologists read the same test photos blinded, as the reader-study
commands do (`review readers push`, `simulate --profile`, `pull` through a Label Studio started for the run), each
the `--reader-profile` reviewer (default realistic: its misses and confusions, docs/reviewer-profiles.md) boxing
the photo without predictions; their reads are the reader rows of the report. --add-readers: only that, beside the
models of the benchmark already in --out (no training).
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
    parser.add_argument("--readers", type=int, default=2, help="simulated readers of the test photos (0: none)")
    parser.add_argument("--reader-profile", default="realistic", help="the simulated readers' reviewer profile")
    parser.add_argument(
        "--add-readers", action="store_true", help="only the readers, beside the finished benchmark in --out"
    )
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


def reader_study(ws: Workspace, readers: int, profile: str, seed: int) -> list[Path]:
    """SIMULATION: `readers` simulated dermatologists of `profile` read the test photos blinded in Label Studio
    (push, simulate, pull: the reader-study commands); the reader CSV, or nothing for 0 readers."""
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.server import start_server, stop_server
    from review_queue.readers import pull_readers, push_readers, simulate_readers
    from review_queue.reviewer import profile_named
    from training.readers import READER_READS_FILE

    if readers == 0:
        return []
    reviewer = profile_named(profile)
    start_server(ws)
    try:
        client = connect(ws)
        push_readers(ws, client, readers=readers)
        done = simulate_readers(ws, client, readers=readers, seed=seed, profile=reviewer)
        pulled = pull_readers(ws, client, out=ws.reports_dir / READER_READS_FILE)
    finally:
        stop_server(ws)
    print(f"readers ({profile} profile, blinded): " + ", ".join(f"{r} {n}" for r, n in done.items()), flush=True)
    return [Path(pulled.reads_file)]


def _add_readers_only(args: argparse.Namespace) -> None:
    """--add-readers: the reader study on the workspace in --out, scored beside its finished benchmark."""
    from training.benchmark import add_readers

    if args.out is None:
        raise SystemExit("--add-readers needs --out: the folder of a finished run")
    with Workspace.open(args.out / "ws", write=True) as ws:
        reads = reader_study(ws, args.readers, args.reader_profile, args.seed)
        result = add_readers(ws, args.out / "report", reads)
    print()
    print(render_markdown(result))
    print(f"report: {result.files['html']}")


def main() -> None:
    args = _args()
    if args.add_readers:
        _add_readers_only(args)
        return
    models, settings = _settings(args)
    root = args.out or Path(tempfile.mkdtemp(prefix="families-"))
    started = time.perf_counter()
    ws = _real_workspace(root, args) if args.real is not None else _synthetic_workspace(root, args)
    print(f"workspace ready in {time.perf_counter() - started:.1f} s: {root / 'ws'}; profile {settings.profile}")
    reads = reader_study(ws, args.readers, args.reader_profile, args.seed)

    finished: set[tuple[str, str]] = set()

    def progress(stage: str, name: str, done: int, total: int) -> None:
        if done == total and (stage, name) not in finished:
            finished.add((stage, name))
            what = f"trained ({total} epochs)" if stage == "train" else f"predicted ({total} photos)"
            print(f"  {name}: {what} at {time.perf_counter() - started:.0f} s", flush=True)

    try:
        result = run_benchmark(ws, models, root / "report", settings=settings, readers=reads, progress=progress)
    finally:
        ws.close()
    print()
    print(render_markdown(result))
    print(f"total wall time {time.perf_counter() - started:.0f} s; report: {result.files['html']}")


if __name__ == "__main__":
    main()
