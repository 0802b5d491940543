"""Queue order measured: which order of the pool needs the fewest reviewer seconds until the whole set
is finished (reviewed, or auto-accepted by `finalize` by its own rule) with box F1 >= 0.95?

    python -m benchmarks.queue_order [--workspace WS --truth DIR] [--round 0] [--batch 300] [--random-seeds 5]

Reads one round's pre-annotations of the pool (photos not hand-labelled, test split left out) from a
workspace whose photos have ground truth: by default the loop benchmark's (/tmp/annotator-loop-bench,
run `python benchmarks/loop.py` first), or `--build` makes a small one (synthetic photos, round 0
trained on the CPU, no Label Studio). Then `bootstrap.queue_order` serves the pool in each order
(uncertainty-first, random over several seeds, most-confident-first, class-balanced) to the simulated
careful reviewer in batches, prices every review with the one effort model, and lets finalize's rule
decide after each batch. The model is held fixed (no retraining between batches): see the module.

Printed per order: photos reviewed and auto-accepted, reviewer minutes and scratch minutes on the same
reviewed photos, how it finished, the finished pool's box F1 (IoU 0.5, with class), and the oracle
stop (the fewest reviews in that order after which accepting the rest would already give F1 0.95).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from annotator.store import Workspace
from annotator.types import Source
from bootstrap.queue_order import ORDERS, RANDOM, TARGET_F1, OrderOutcome, PoolPhoto, simulate_order, winner
from review_queue.effort import scratch_seconds
from review_queue.simulate import read_truth

LOOP_DIR = Path("/tmp/annotator-loop-bench")


def build(folder: Path, photos: int, epochs: int) -> tuple[Path, Path]:
    """A small workspace with round 0 trained and the pool pre-annotated (no review queue)."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.synth import generate
    from bootstrap.rounds import RoundSettings, run_round

    data = folder / "data"
    if not (data / "truth").exists():
        generate(data, images=photos, labelled_fraction=0.38, seed=5, size="small")
    root = folder / "ws"
    cfg = Config(images=data / "images", labels=data / "labels", imgsz=320, epochs=epochs, batch=8, test_size=60)
    ws = Workspace.create(root, cfg) if not (root / "annotator.toml").exists() else Workspace.open(root, write=True)
    with ws:
        ingest(ws, images=cfg.images, labels=cfg.labels)
        row = ws.store.round_row(0)
        if row is None or row["stage"] != "done":
            run_round(ws, 0, RoundSettings(model="auto", epochs=epochs, imgsz=320, batch=8))
    return root, data / "truth"


def read_pool(root: Path, truth_dir: Path, round_no: int) -> tuple[list[PoolPhoto], int, int]:
    """(pool photos with their round-`round_no` prediction and truth, boxes labelled by hand, photos skipped)."""
    ws = Workspace.open(root)
    try:
        records = {r.path: r for r in ws.store.images()}
        classes = ws.config.class_table
        pool: list[PoolPhoto] = []
        human_boxes = skipped = 0
        for path, record in sorted(records.items()):
            history = ws.store.history(path)
            manual = [v for v in history if v.source is Source.MANUAL]
            if manual:
                human_boxes += len(manual[-1].boxes)
                continue
            if record.split == "test":
                continue
            predicted = [v for v in history if v.source is Source.MODEL and v.round == round_no]
            truth = read_truth(truth_dir, path, classes)
            if not predicted or truth is None:
                skipped += 1
                continue
            version = predicted[-1]
            pool.append(
                PoolPhoto(
                    path,
                    record.width,
                    record.height,
                    version.boxes,
                    version.uncertainty or 0.0,
                    tuple(truth),
                )
            )
        return pool, human_boxes, skipped
    finally:
        ws.close()


def print_table(outcomes: list[OrderOutcome]) -> None:
    print(
        f"{'order':<21} {'seed':>4} {'reviewed':>8} {'auto':>5} {'rev min':>8} {'scratch min':>11} "
        f"{'pool F1':>7} {'>=0.95':>6} {'oracle stop':>11} {'oracle min':>10}  finished by"
    )
    for o in outcomes:
        print(
            f"{o.order:<21} {'-' if o.seed is None else o.seed:>4} {o.reviewed_photos:>8} {o.auto_accepted:>5} "
            f"{o.reviewer_seconds / 60:>8.1f} {o.scratch_seconds / 60:>11.1f} {o.pool_f1:>7.3f} "
            f"{'yes' if o.meets_target else 'no':>6} {o.oracle_photos:>11} {o.oracle_seconds / 60:>10.1f}  "
            f"{o.finished_by}"
        )
    mean = {
        order: sum(o.reviewer_seconds for o in outcomes if o.order == order)
        / max(1, sum(1 for o in outcomes if o.order == order))
        for order in ORDERS
    }
    best = winner(outcomes)
    if best is None:
        print(f"no order finished with pool F1 >= {TARGET_F1} under finalize's rule")
        return
    runner_up = min((m for k, m in mean.items() if k != best), default=mean[best])
    print(
        f"fewest reviewer seconds: {best} ({mean[best] / 60:.1f} min, mean over its runs; next best "
        f"{runner_up / 60:.1f} min: {1 - mean[best] / runner_up:.1%} fewer) among the orders whose every run "
        f"finished with pool F1 >= {TARGET_F1}. Oracle stop: the fewest reviews in that order after which "
        "accepting the rest would already give F1 0.95. The model is held fixed (no retraining between batches)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=LOOP_DIR / "ws")
    parser.add_argument("--truth", type=Path, default=LOOP_DIR / "data" / "truth")
    parser.add_argument("--round", type=int, default=0, help="whose pre-annotations of the pool to order")
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[300, 100],
        help="photos reviewed between two finalize decisions (one table each: the loop's round, and a finer pull)",
    )
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument("--build", type=Path, default=None, help="make a small workspace here instead")
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    root, truth_dir = (
        (args.workspace, args.truth) if args.build is None else build(args.build, args.photos, args.epochs)
    )
    pool, human_boxes, skipped = read_pool(root, truth_dir, args.round)
    if not pool:
        raise SystemExit(f"no round-{args.round} pre-annotations with ground truth in {root}")
    whole = sum(scratch_seconds(p.truth, p.width, p.height) for p in pool)
    print(
        f"pool: {len(pool)} photos with round-{args.round} pre-annotations ({skipped} skipped: no prediction or "
        f"truth), {sum(len(p.truth) for p in pool)} true boxes; {human_boxes} hand-labelled boxes outside it; "
        f"batch {args.batch}; drawing the whole pool from scratch: {whole / 60:.0f} min"
    )
    every: dict[int, list[OrderOutcome]] = {}
    for batch in args.batch:
        outcomes = every[batch] = [
            simulate_order(pool, order, batch=batch, human_boxes=human_boxes, seed=seed)
            for order in ORDERS
            for seed in (range(args.random_seeds) if order == RANDOM else [0])
        ]
        print(f"\nfinalize decides after every {batch} reviewed photos")
        print_table(outcomes)
    if args.json:
        args.json.write_text(json.dumps({b: [o.to_dict() for o in v] for b, v in every.items()}, indent=1))


if __name__ == "__main__":
    main()
