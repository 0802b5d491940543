"""Queue order measured: which order of the pool needs the fewest reviewer seconds until the whole set
is finished (reviewed, or auto-accepted by `finalize` by its own rule) with box F1 >= 0.95?

    python -m benchmarks.queue_order [--workspace WS --truth DIR] [--round 0] [--batch 300] [--random-seeds 5]
                                     [--profile realistic]

Reads one round's pre-annotations of the pool (photos not hand-labelled, test split left out) from a
workspace whose photos have ground truth: by default the loop benchmark's (/tmp/annotator-loop-bench,
run `python -m benchmarks.loop` first), or `--build` makes a small one (synthetic photos, round 0
trained on the CPU, no Label Studio). Then `bootstrap.queue_order` serves the pool in each order
(uncertainty-first, random over several seeds, most-confident-first, class-balanced) to the simulated
reviewer (`--profile`: realistic by default, docs/reviewer-profiles.md; its misses here depend on lesion
size only, as the pool is read without its pixels; careful: the oracle) in batches, prices every review
with the one effort model, and lets finalize's rule decide after each batch. The model is held fixed (no
retraining between batches): see the module.

Printed per order: photos reviewed and auto-accepted, reviewer minutes and scratch minutes on the same
reviewed photos, how it finished, the finished pool's box F1 (IoU 0.5, with class), and the oracle
stop (the fewest reviews in that order after which accepting the rest would already give F1 0.95).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from annotator.rounds import Stage, stage_reached
from annotator.store import Workspace
from annotator.types import Source
from bootstrap.queue_order import ORDERS, RANDOM, TARGET_F1, OrderOutcome, PoolPhoto, simulate_order, winner
from review_queue.effort import scratch_seconds
from review_queue.reviewer import PROFILES, profile_named
from review_queue.simulate import read_truth

LOOP_DIR = Path("/tmp/annotator-loop-bench")


def build(folder: Path, photos: int, epochs: int) -> tuple[Path, Path]:
    """A small workspace with round 0 trained and the pool pre-annotated (no review queue)."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.synthetic import generate
    from bootstrap.rounds import RoundSettings, run_round

    data = folder / "data"
    if not (data / "truth").exists():
        generate(data, images=photos, labelled_fraction=0.38, seed=5, size="small")
    root = folder / "ws"
    cfg = Config(images=data / "images", labels=data / "labels", imgsz=320, epochs=epochs, batch=8, test_size=60)
    ws = Workspace.create(root, cfg) if not (root / "annotator.toml").exists() else Workspace.open(root, write=True)
    with ws:
        ingest(ws, images=cfg.images, labels=cfg.labels)
        if not stage_reached(ws.store.rounds.round_record(0), Stage.DONE):
            run_round(ws, 0, RoundSettings(model="auto", epochs=epochs, imgsz=320, batch=8))
    return root, data / "truth"


def read_pool(root: Path, truth_dir: Path, round_no: int) -> tuple[list[PoolPhoto], int, int]:
    """(pool photos with their round-`round_no` prediction and truth, boxes labelled by hand, photos skipped)."""
    ws = Workspace.open(root)
    try:
        records = {r.path: r for r in ws.store.labels.images()}
        classes = ws.config.class_table
        pool: list[PoolPhoto] = []
        human_boxes = skipped = 0
        for path, record in sorted(records.items()):
            history = ws.store.labels.history(path)
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


def verdict(outcomes: list[OrderOutcome]) -> str:
    """The order with the fewest mean reviewer minutes among those whose every run met the target, and its
    margin over the next such order."""
    best = winner(outcomes)
    if best is None:
        return f"no order finished every run with pool F1 >= {TARGET_F1} under finalize's rule"
    runs = {o.order: [x for x in outcomes if x.order == o.order] for o in outcomes}
    eligible = {
        k: sum(x.reviewer_seconds for x in v) / len(v) / 60 for k, v in runs.items() if all(x.meets_target for x in v)
    }
    failed = [k for k in runs if k not in eligible]
    others = {k: v for k, v in eligible.items() if k != best}
    margin = ""
    if others:
        second = min(others, key=lambda k: others[k])
        margin = f"; next {second} {others[second]:.1f} min ({1 - eligible[best] / others[second]:.1%} fewer)"
    return (
        f"fewest reviewer minutes with pool F1 >= {TARGET_F1} in every run: {best} ({eligible[best]:.1f} min on average"
        f"{margin})" + (f"; missed the target in some run: {', '.join(failed)}" if failed else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=LOOP_DIR / "ws")
    parser.add_argument("--truth", type=Path, default=LOOP_DIR / "data" / "truth")
    parser.add_argument(
        "--round",
        type=int,
        nargs="+",
        default=[0],
        help="whose pre-annotations of the pool to order (one or more rounds)",
    )
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
    parser.add_argument("--profile", default="realistic", choices=list(PROFILES), help="the simulated reviewer")
    args = parser.parse_args()

    root, truth_dir = (
        (args.workspace, args.truth) if args.build is None else build(args.build, args.photos, args.epochs)
    )
    every: dict[str, list[OrderOutcome]] = {}
    for round_no in args.round:
        pool, human_boxes, skipped = read_pool(root, truth_dir, round_no)
        if not pool:
            raise SystemExit(f"no round-{round_no} pre-annotations with ground truth in {root}")
        whole = sum(scratch_seconds(p.truth, p.width, p.height) for p in pool)
        print(
            f"\nround {round_no}: {len(pool)} pool photos with its pre-annotations ({skipped} others: reviewed "
            f"before, or no truth), {sum(len(p.truth) for p in pool)} true boxes; {human_boxes} hand-labelled boxes "
            f"outside the pool; drawing the whole pool from scratch: {whole / 60:.0f} min"
        )
        for batch in args.batch:
            outcomes = every[f"round {round_no}, batch {batch}"] = [
                simulate_order(
                    pool, order, batch=batch, human_boxes=human_boxes, seed=seed, profile=profile_named(args.profile)
                )
                for order in ORDERS
                for seed in (range(args.random_seeds) if order == RANDOM else [0])
            ]
            print(f"\nround {round_no}, finalize deciding after every {batch} reviewed photos")
            print_table(outcomes)
            print(verdict(outcomes))
    if len(every) > 1:
        print(f"\nover all {len(every)} settings: " + verdict([o for v in every.values() for o in v]))
    print(
        "oracle stop: the fewest reviews in that order after which accepting the rest would already give F1 0.95. "
        "The model is held fixed within a setting (no retraining between batches)."
    )
    if args.json:
        args.json.write_text(json.dumps({b: [o.to_dict() for o in v] for b, v in every.items()}, indent=1))


if __name__ == "__main__":
    main()
