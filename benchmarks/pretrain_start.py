"""Which start helps round 0 (issue 25): random weights, synthetic-pretrained, self-supervised on the workspace's
photos, and both, each trained the same way on the same photos, scored on the same test split and the same
fixed set of pool photos.

    python -m benchmarks.pretrain_start --real DIR [--labelled 250 --pool 100 --unlabelled 600]
    python -m benchmarks.pretrain_start --preset hard [--photos 700]

--real DIR: the real face-photo set's folder (benchmarks/real_photos.py says where it comes from; its valid split
is the test split, its train split gives the labelled, pool and unlabelled photos). Without it, a synthetic set of
the preset (labelled photos, test split and pool drawn as the loop benchmark does).

Per variant: the minutes its start took (made once; "both" reuses the photos' backbone), round-0 minutes, test
mAP50 with its 95% bootstrap interval, and on the fixed set (pool photos no one reviews) the SIMULATED realistic
reviewer's seconds per photo against drawing the same photos from scratch (one effort model), and the AUROC of the
review priority. "clear of random": the variant's interval lies above random weights' interval.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("random", "synthetic", "photos", "both")


@dataclass(frozen=True)
class Data:
    root: Path  # images/, labels/, truth/
    classes: tuple[str, ...]
    splits: dict[str, str]  # photo -> train | val | test | eval (the rest: unlabelled pool)
    source: str


def main() -> None:
    args = _arguments()
    os.environ["ANNOTATOR_CACHE"] = str(args.cache or args.dir / "cache")  # starts made by this run only
    data = _real_data(args) if args.real else _synthetic_data(args)
    print(f"data: {data.source}; " + ", ".join(f"{s} {sum(v == s for v in data.splits.values())}"
                                                for s in ("train", "val", "test", "eval")))  # fmt: skip
    rows = [_run_variant(variant, data, args) for variant in args.variants.split(",")]
    _print_table(rows)
    (args.dir / "results.json").write_text(json.dumps(rows, indent=1, default=str))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=None, help="the real face-photo set's folder")
    parser.add_argument("--preset", default="hard", help="synthetic world without --real")
    parser.add_argument("--photos", type=int, default=700, help="synthetic photos without --real")
    parser.add_argument("--labelled", type=int, default=250, help="--real: labelled train photos (train + val)")
    parser.add_argument("--pool", type=int, default=100, help="fixed evaluation set (pool photos, never reviewed)")
    parser.add_argument(
        "--unlabelled", type=int, default=600, help="--real: more pool photos (self-supervision sees them)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="round-0 epochs (the same for every variant)")
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--synthetic-photos", type=int, default=800)
    parser.add_argument("--synthetic-epochs", type=int, default=10)
    parser.add_argument("--photo-epochs", type=int, default=5)
    parser.add_argument("--photo-size", type=int, default=160)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/annotator-pretrain-bench"))
    parser.add_argument("--cache", type=Path, default=None, help="starts cache to share with another run (--dir/cache)")
    return parser.parse_args()


def _real_data(args: argparse.Namespace) -> Data:
    """The real set: valid split -> test; train split -> labelled (80% train, 20% val), pool and unlabelled."""
    from benchmarks.real_photos import prepare

    real = prepare(
        args.real, args.dir / "data", labelled=args.labelled, pool=args.pool + args.unlabelled, seed=args.seed
    )
    rng = random.Random(args.seed)
    train_photos = sorted(set(real.labelled) - set(real.test))
    val = set(rng.sample(train_photos, round(0.2 * len(train_photos))))
    splits = {p: ("val" if p in val else "train") for p in train_photos} | {p: "test" for p in real.test}
    splits |= {p: "eval" for p in sorted(real.pool)[: args.pool]}
    return Data(real.root, real.classes, splits, f"real face photos {args.real}")


def _synthetic_data(args: argparse.Namespace) -> Data:
    """A synthetic set of the preset; the workspace draws its own splits, read back after ingest."""
    from annotator.classes import CLASS_NAMES
    from annotator.synthetic import PRESETS, generate

    root = args.dir / "data"
    if not (root / "truth").exists():
        generate(
            root,
            images=args.photos,
            labelled_fraction=0.38,
            seed=args.seed + 1000,
            workers=2,
            world=PRESETS[args.preset],
        )  # fmt: skip  (seed + 1000: not the synthetic start's photos)
    return Data(root, CLASS_NAMES, {}, f"synthetic preset {args.preset}, {args.photos} photos")


def _workspace(variant: str, data: Data, args: argparse.Namespace) -> Any:
    """A fresh workspace of the data for one variant, with the same splits as every other variant."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.types import EVAL_SPLIT
    from bootstrap.rounds import fix_splits, splits_fixed

    root = args.dir / f"ws-{variant}"
    cfg = Config(images=data.root / "images", labels=data.root / "labels", classes=data.classes, imgsz=args.imgsz,
                 epochs=args.epochs, batch=16, test_size=150, test_fraction=0.3, eval_size=args.pool, seed=args.seed,
                 project_title="pretrain benchmark")  # fmt: skip
    ws = Workspace.open(root, write=True) if (root / "annotator.toml").exists() else Workspace.create(root, cfg)
    if not ws.store.labels.images():
        ingest(ws, images=cfg.images, labels=cfg.labels)
    if data.splits and not splits_fixed(ws):  # the same splits in every variant's workspace
        fix_splits(ws, {p: (EVAL_SPLIT if s == "eval" else s) for p, s in data.splits.items()})
    return ws


def _make_start(variant: str, ws: Any, args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """The variant's start (None for random weights) and what making it cost."""
    if variant == "random":
        return None, {"start_minutes": 0.0}
    from bootstrap.pretrain import PretrainSettings, StartKind, pretrain
    from training.pretraining.selfsupervised import SelfSupervisedSettings
    from training.pretraining.synthetic import SyntheticSettings

    settings = PretrainSettings(
        kind=StartKind(variant),
        model="yolo11n.yaml",
        synthetic=SyntheticSettings(photos=args.synthetic_photos, epochs=args.synthetic_epochs, seed=args.seed),
        photos=SelfSupervisedSettings(imgsz=args.photo_size, epochs=args.photo_epochs, seed=args.seed),
        device="cpu",
    )
    result = pretrain(ws, settings)
    made = {s.provenance.key.kind: s.provenance.seconds for s in result.steps}
    return str(result.start.path), {"start_minutes": sum(made.values()) / 60, "start_steps": made,
                                    "start": result.start.provenance.summary()}  # fmt: skip


def _run_variant(variant: str, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """Make the start, run round 0 from it, score the test split and the fixed set."""
    from bootstrap.evaluation import round_map
    from bootstrap.fixed_eval import score_round
    from bootstrap.rounds import RoundSettings, run_round
    from review_queue.reviewer import profile_named

    ws = _workspace(variant, data, args)
    start, row = _make_start(variant, ws, args)
    t = time.perf_counter()
    settings = RoundSettings(model="yolo11n.yaml", epochs=args.epochs, imgsz=args.imgsz, batch=16, device="cpu",
                             pretrained=start)  # fmt: skip
    result = run_round(ws, 0, settings, queue=None)
    row |= {"variant": variant, "round0_minutes": (time.perf_counter() - t) / 60}
    test = round_map(result.record)
    row |= {"map50": test.map50 if test else None, "interval": test.interval if test else None}
    fixed = score_round(ws, 0, truth_dir=data.root / "truth", profile=profile_named("realistic"), seed=args.seed)
    if fixed is not None:
        row |= {"review_s": fixed.reviewer_seconds, "scratch_s": fixed.scratch_seconds, "ratio": fixed.ratio,
                "auroc": fixed.auroc, "auroc_interval": fixed.auroc_interval, "fixed_photos": fixed.photos,
                "reviewed_f1": fixed.reviewed_f1.f1, "scratch_f1": fixed.scratch_f1.f1}  # fmt: skip
    trained = result.record.trained
    row["pretrained"] = trained.pretrained if trained else None
    print(f"{variant}: {row}", flush=True)
    ws.close()
    return row


def _print_table(rows: list[dict[str, Any]]) -> None:
    random_row = next((r for r in rows if r["variant"] == "random"), None)
    print(f"{'start':>10} {'start min':>9} {'round0 min':>10} {'test mAP50 [95% CI]':>20} {'clear of random':>15} "
          f"{'s/ph review':>11} {'s/ph scratch':>12} {'ratio':>6} {'AUROC':>6}")  # fmt: skip
    for r in rows:
        iv = r.get("interval")
        shown = "-" if r.get("map50") is None else f"{r['map50']:.3f}" + (f" [{iv[0]:.3f}-{iv[1]:.3f}]" if iv else "")
        clear = "-"
        if random_row and r is not random_row and iv and random_row.get("interval"):
            clear = "yes" if iv[0] > random_row["interval"][1] else "no"
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['variant']:>10} {r['start_minutes']:>9.1f} {r['round0_minutes']:>10.1f} {shown:>20} {clear:>15} "
              f"{fmt(r.get('review_s')):>11} {fmt(r.get('scratch_s')):>12} {fmt(r.get('ratio')):>6} "
              f"{fmt(r.get('auroc')):>6}")  # fmt: skip


if __name__ == "__main__":
    main()
