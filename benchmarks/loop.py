"""The whole loop at benchmark scale: ~1,500 synthetic photos (or real face photos), three rounds, simulated
reviewer, once per data seed, and the spread across seeds.

Per seed it prints the learning curve per round (test mAP50 with its 95% interval and the split's size, correction
rate, reviewer box operations and modelled seconds per photo vs drawing the same photos from scratch, one time
model: review_queue.effort), the fixed evaluation set (pool photos nobody reviews, scored with every round's model),
then ends as a team would: an acceptance audit of what finalize would accept (a seeded random sample boxed blind by
a SIMULATED auditor in Label Studio; the exact bound, and the human baseline of two blind auditors beside it), then
`finalize`, which accepts only what the audit bounded. Last, the box F1 (IoU 0.5) of the final labels against the
ground truth by where each label came from (reviewed from predictions, drawn blind, auto-accepted, still
unreviewed), each with its size and interval (hand labels are copies of the truth and would flatter the figure),
and the same per class beside the fixed set drawn from scratch (benchmarks/label_quality.py: issue 21 item 4).
After the seeds: mean, min-max and sample SD of each figure per round across seeds, which figures gained nothing
from round 0 to the last round on which seeds, and `--dir/summary.json` (benchmarks/seed_summary.py).

The simulated reviewer is `--profile` (default realistic: it misses, confuses and anchors as
docs/reviewer-profiles.md says; careful: the oracle that copies the truth). Each of `--seeds` runs in
`--dir/seed-N`; the one `--seed` runs in `--dir` itself, as before --seeds. A rerun on the same --dir resumes where
the last one stopped (finished rounds and simulated batches are not done again). `benchmarks/warm_start.py` then
asks whether round 1's warm start paid off, on a seed's workspace (`--dir/ws` or `--dir/seed-N/ws`).

--real DIR: the real face-photo set instead of synthetic photos (benchmarks/real_photos.py says where it comes from
and how to get it; its test split is never read): `--real-photos` photos of its train split drawn per seed, 20% of
them hand-labelled as the seed set and the rest the pool (`--eval-size` of it the fixed set), its valid split the
fixed test split; the truth the simulated reviewer reads is the set's own boxes.

  python -m benchmarks.loop [--photos 1500] [--review 300] [--epochs 20] [--retrain-epochs 10] [--imgsz 320]
                            [--profile realistic] [--seed 7 | --seeds 7,8,9] [--preset default|hard]
                            [--real DIR --real-photos 750] [--pretrained CKPT] [--tolerance 0.02]
(run from the repository's root: it imports its neighbours as `benchmarks.*`)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.label_quality import FinalSet, Provenance, class_quality, class_table_lines, final_set
from benchmarks.seed_summary import RoundFigures, SeedFigures, gain_lines, summary_json, summary_lines
from review_queue.reviewer import PROFILES, ReviewerProfile, profile_named

SEED_SHARE = 0.2  # --real: the share of the chosen train-split photos hand-labelled as the seed set (issue 21)


@dataclass(frozen=True)
class LoopData:
    """The photos one seed's loop runs on."""

    root: Path  # images/, labels/ (labelImg VOC of the hand-labelled photos), truth/ (every photo's boxes)
    classes: tuple[str, ...]
    test: tuple[str, ...]  # photos fixed as the test split before round 0; empty: the workspace draws its own
    source: str

    @property
    def truth(self) -> Path:
        """Only the SIMULATED reviewer and the scoring read it."""
        return self.root / "truth"


@dataclass(frozen=True)
class SeedRun:
    """One data seed's run: where it lives, its photos and its simulated reviewer."""

    seed: int
    folder: Path
    data: LoopData
    reviewer: ReviewerProfile


def _once(marker: Path, step: Callable[[], object]) -> None:
    """Run `step` unless an earlier (interrupted) run of the benchmark did: a rerun resumes the loop
    without a second batch of simulated reviews."""
    if not marker.exists():
        step()
        marker.touch()


def main() -> None:
    args = _arguments()
    records = [_run_seed(seed, args) for seed in _seeds(args)]
    _report_across_seeds(records, args.dir)


def _arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1500)
    parser.add_argument("--review", type=int, default=300, help="photos the simulated reviewer does per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--pretrained", type=Path, default=None, help="a local checkpoint round 0 starts from")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/annotator-loop-bench"))
    parser.add_argument("--profile", default="realistic", choices=list(PROFILES), help="the simulated reviewer")
    parser.add_argument("--seed", type=int, default=7, help="data seed (the design choices were tuned on seed 1)")
    parser.add_argument("--seeds", default=None, help="data seeds, comma-separated (e.g. 7,8,9); overrides --seed")
    parser.add_argument("--eval-size", type=int, default=150, help="pool photos kept out of the queue (fixed set)")
    parser.add_argument("--preset", default="default", help="synthetic world: default | hard")
    parser.add_argument("--real", type=Path, default=None, help="the real face-photo set's folder (not synthetic)")
    parser.add_argument("--real-photos", type=int, default=750, help="--real: train-split photos drawn per seed")
    parser.add_argument("--tolerance", type=float, default=0.02, help="the acceptance audit's tolerance")
    parser.add_argument("--expected-rate", type=float, default=0.0, help="the wrong-photo share the audit is sized for")
    return parser.parse_args()


def _seeds(args: argparse.Namespace) -> list[int]:
    """--seeds as a list, else the one --seed."""
    if not args.seeds:
        return [args.seed]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds {args.seeds!r}: give integers separated by commas, e.g. 7,8,9") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {args.seeds!r}: give each seed once, e.g. 7,8,9")
    return seeds


def _seed_folder(args: argparse.Namespace, seed: int) -> Path:
    """`--dir/seed-N` for each of --seeds; `--dir` itself for the one --seed (as before --seeds, so the scripts that
    read the loop's workspace, warm_start.py, queue_order.py, rescore_uncertainty.py, find it in `--dir/ws`)."""
    return args.dir / f"seed-{seed}" if args.seeds else args.dir


def _run_seed(seed: int, args: argparse.Namespace) -> SeedFigures:
    """The whole benchmark on one data seed, in its own folder (a rerun resumes it)."""
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.server import start_server, stop_server
    from review_queue.queue import open_queue

    t0 = time.perf_counter()
    folder = _seed_folder(args, seed)
    data = _real_data(args, seed, folder) if args.real else _synthetic_data(args, seed, folder)
    print(f"\n== data seed {seed}: {data.source}, in {folder}", flush=True)
    run = SeedRun(seed, folder, data, profile_named(args.profile))
    ws = _workspace(run, args)
    start_server(ws)
    try:
        queue, client = open_queue(ws), connect(ws)
        timings = _run_rounds(ws, queue, client, run, args)
        curve = _print_curve(ws)
        fixed = _fixed_set_table(ws, run, args)
        _audited_finalize(ws, client, run, args)
        final = _print_final_set(ws, run)
        _print_class_table(fixed, final)
        _print_timings(timings, t0)
        (folder / "curve.json").write_text(json.dumps([row.to_dict() for row in curve], indent=1, default=str))
    finally:
        stop_server(ws)
        ws.close()
    return _seed_figures(seed, curve, fixed, final)


def _synthetic_data(args: argparse.Namespace, seed: int, folder: Path) -> LoopData:
    """Synthetic photos of the preset, made once per seed (38% hand-labelled); the workspace draws its splits."""
    from annotator.classes import CLASS_NAMES
    from annotator.synthetic import PRESETS, generate

    root = folder / "data"
    if not (root / "truth").exists():
        generate(root, images=args.photos, labelled_fraction=0.38, seed=seed, workers=2, world=PRESETS[args.preset])
    return LoopData(root, CLASS_NAMES, (), f"synthetic preset {args.preset}, {args.photos} photos")


def _real_data(args: argparse.Namespace, seed: int, folder: Path) -> LoopData:
    """--real: `--real-photos` train-split photos drawn by the seed (SEED_SHARE hand-labelled, the rest the pool)
    and the set's valid split as the test split, linked into the seed's folder (never into the repository)."""
    from benchmarks.real_photos import prepare

    labelled = round(SEED_SHARE * args.real_photos)
    real = prepare(args.real, folder / "data", labelled=labelled, pool=args.real_photos - labelled, seed=seed)
    source = (f"real face photos {args.real}: {labelled} hand-labelled and {len(real.pool)} pool photos of its train "
              f"split, its valid split ({len(real.test)} photos) as the test split")  # fmt: skip
    return LoopData(real.root, real.classes, real.test, source)


def _workspace(run: SeedRun, args: argparse.Namespace) -> Any:
    """The seed's workspace (made once), its photos ingested, and a test split given by the data fixed before
    round 0."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from bootstrap.rounds import splits_fixed

    cfg = Config(images=run.data.root / "images", labels=run.data.root / "labels", classes=run.data.classes,
                 imgsz=args.imgsz, epochs=args.epochs, retrain_epochs=args.retrain_epochs, batch=16, test_size=150,
                 eval_size=args.eval_size, project_title="loop benchmark")  # fmt: skip
    root = run.folder / "ws"
    ws = Workspace.create(root, cfg) if not (root / "annotator.toml").exists() else Workspace.open(root, write=True)
    ingest(ws, images=cfg.images, labels=cfg.labels)
    if run.data.test and not splits_fixed(ws):
        _fix_test_split(ws, run.data.test)
    return ws


def _fix_test_split(ws: Any, test: Sequence[str]) -> None:
    """The given photos as the test split, fixed before round 0: the other hand-labelled photos split train/val and
    the fixed evaluation set drawn from the pool by the tool's own rules (make_splits with no test share,
    fixed_evaluation_set), as ensure_splits would."""
    from annotator.types import Source
    from bootstrap.rounds import fix_splits, fixed_evaluation_set
    from bootstrap.split import SplitCandidate, make_splits

    cfg, held_out = ws.config, set(test)
    records = {r.path: r for r in ws.store.labels.images()}
    candidates = [
        SplitCandidate(path, frozenset(b.label for b in version.boxes), records[path].device_class.value)
        for path, version in ws.store.labels.current_labels([Source.MANUAL]).items()
        if path not in held_out
    ]
    splits = make_splits(candidates, test_size=0, val_fraction=cfg.val_fraction, seed=cfg.seed)
    splits |= {path: "test" for path in test}  # the split names of make_splits
    splits |= fixed_evaluation_set(ws, size=cfg.eval_size, seed=cfg.seed)
    fix_splits(ws, splits)


def _run_rounds(ws: Any, queue: Any, client: Any, run: SeedRun, args: argparse.Namespace) -> dict[str, float]:
    """Round 0 trains from `--model` (or `--pretrained`), round N >= 1 warm-starts after a batch of simulated
    reviews; a last batch is reviewed and pulled after the last round. Returns each round's minutes' label."""
    from annotator.rounds import Stage, stage_reached
    from bootstrap.rounds import RoundSettings, run_round
    from review_queue.simulate import simulate

    timings: dict[str, float] = {}
    for round_no in range(args.rounds):
        if round_no:
            _once(run.folder / f"simulated-before-round-{round_no}",
                  lambda n=round_no: simulate(ws, client, count=args.review, seed=n, profile=run.reviewer))  # fmt: skip
        if stage_reached(ws.store.rounds.round_record(round_no), Stage.DONE):
            print(f"round {round_no} was finished by an earlier run of this benchmark")
            continue
        t = time.perf_counter()
        settings = RoundSettings(
            model=args.model if round_no == 0 else None,  # round N >= 1 starts from round N-1's weights
            epochs=args.epochs if round_no == 0 else args.retrain_epochs,
            imgsz=args.imgsz,
            batch=16,
            pretrained=str(args.pretrained.resolve()) if args.pretrained and round_no == 0 else None,
        )
        run_round(ws, round_no, settings, queue=queue)
        timings[f"round {round_no} ({'pull + warm-start ' if round_no else ''}train + predict + push)"] = (
            time.perf_counter() - t
        )
    _once(run.folder / "simulated-after-last-round",
          lambda: simulate(ws, client, count=args.review, seed=99, profile=run.reviewer))  # fmt: skip
    queue.pull(ws)
    return timings


def _print_curve(ws: Any) -> list[Any]:
    """The learning curve per round (one effort model, review_queue.effort, prices the reviewer and scratch on the
    same photos); returns its rows."""
    from bootstrap.curve import curve_warning, learning_curve, measured_lines
    from bootstrap.evaluation import format_interval

    rows = learning_curve(ws)
    print(
        f"{'round':>5} {'trained m/r/a':>14} {'test mAP50 [95% CI]':>20} {'test ph/box':>11} {'reviewed':>8} "
        f"{'corr. rate':>10} {'ops/ph rev':>10} {'ops/ph draw':>11} {'s/ph rev':>8} {'s/ph draw':>9} "
        f"{'rev/draw s':>10} {'AUROC':>6}"
    )
    for r in rows:
        fmt = lambda v, p=False: "-" if v is None else (f"{v:.1%}" if p else f"{v:.2f}")  # noqa: E731
        rev_s, scr_s = r.reviewer_seconds_per_photo, r.scratch_seconds_per_photo
        share = f"{rev_s / scr_s:.2f}" if rev_s is not None and scr_s else "-"
        test = f"{r.test_photos}/{r.test_boxes}" if r.test_photos is not None else "-"
        print(
            f"{r.round:>5} {f'{r.labelled_manual}/{r.labelled_reviewed}/{r.labelled_auto}':>14} "
            f"{format_interval(r.test):>20} {test:>11} {r.reviewed_photos:>8} {fmt(r.correction_rate, True):>10} "
            f"{fmt(r.operations_per_photo):>10} {fmt(r.scratch_operations_per_photo):>11} {fmt(rev_s):>8} "
            f"{fmt(scr_s):>9} {share:>10} {fmt(r.uncertainty_auroc):>6}"
        )
    for line in [*measured_lines(rows), curve_warning(rows)]:
        if line:
            print(line)
    return rows


def _fixed_set_table(ws: Any, run: SeedRun, args: argparse.Namespace) -> list[Any]:
    """Every round's model on the same pool photos nobody reviews (the fixed evaluation set); returns each round's
    FixedSetRound (None: the round predicted none of them)."""
    from bootstrap.fixed_eval import fixed_set, score_round

    print(f"\nfixed evaluation set: {len(fixed_set(ws))} pool photos never pushed, reviewed by a SIMULATED "
          f"{args.profile} reviewer offline, every round on the same photos")  # fmt: skip
    print(f"{'round':>5} {'photos':>6} {'s/ph rev':>8} {'s/ph draw':>9} {'rev/draw':>8} {'corr.':>6} "
          f"{'AUROC [95% CI]':>20}  box F1 reviewed from predictions | drawn from scratch")  # fmt: skip
    scored = [
        score_round(ws, n, truth_dir=run.data.truth, profile=run.reviewer, seed=run.seed) for n in range(args.rounds)
    ]
    for round_no, r in enumerate(scored):
        if r is None:
            print(f"{round_no:>5} none")
            continue
        auroc = "-" if r.auroc is None else f"{r.auroc:.2f}"
        if r.auroc_interval:
            auroc += f" [{r.auroc_interval[0]:.2f}-{r.auroc_interval[1]:.2f}]"
        rate = "-" if r.correction_rate is None else f"{r.correction_rate:.0%}"
        print(f"{round_no:>5} {r.photos:>6} {r.reviewer_seconds:>8.1f} {r.scratch_seconds:>9.1f} "
              f"{r.ratio or 0:>8.2f} {rate:>6} {auroc:>20}  {r.reviewed_f1.describe()} | "
              f"{r.scratch_f1.describe()}")  # fmt: skip
    last = next((r for r in reversed(scored) if r is not None), None)
    if last is not None:
        print(f"effort sensitivity, round {last.round_no} on the fixed set (reviewer/scratch seconds with one action's "
              f"time at half | double the model's): modelled {last.ratio:.2f}")  # fmt: skip
        for action, (half, double) in last.sensitivity().items():
            print(f"  {action:>8}: {half:.2f} | {double:.2f}")
    return scored


def _audited_finalize(ws: Any, client: Any, run: SeedRun, args: argparse.Namespace) -> None:
    """End as a team would: plan the acceptance audit of what finalize would accept, let a SIMULATED auditor
    box the sample blind in Label Studio, pull, print the bound and the human baseline, and finalize."""
    from annotator.errors import WorkspaceError
    from bootstrap.acceptance import AuditSettings, judge
    from bootstrap.finalize import audit_state, finalize, plan_acceptance_audit
    from review_queue.audit import pull_audit, push_audit, simulate_audit

    try:
        settings = AuditSettings(tolerance=args.tolerance, expected_rate=args.expected_rate, seed=run.seed)
        plan = plan_acceptance_audit(ws, settings)
    except WorkspaceError as exc:
        print(f"acceptance audit: {exc}")
        return
    print(f"acceptance audit plan: {plan.describe()}")
    _once(
        run.folder / f"audited-{plan.population_digest[:12]}",
        lambda: (
            push_audit(ws, client, plan=plan.population_digest, photos=plan.sample),
            simulate_audit(
                ws, client, plan=plan.population_digest, profile=run.reviewer, truth_dir=run.data.truth, seed=run.seed
            ),
        ),
    )
    pull_audit(ws, client, plan=plan.population_digest)
    state = audit_state(ws, plan)
    outcome = judge(plan, state.checks)
    print(
        f"acceptance audit: {outcome.wrong_photos} of {outcome.audited} sampled photos wrong, bound "
        f"{outcome.photo_bound:.1%} on the photos to accept; boxes: {outcome.wrong_boxes} of {outcome.boxes} wrong "
        f"or missing, bound {outcome.box_bound:.1%} (indicative); {outcome.message}"
    )
    _human_baseline(ws, state.audit_versions, run, args.profile)
    try:
        result = finalize(ws)
        why = result.audit.get("message") or "nothing was left to accept: every photo has a person's label"
        print(f"finalize: auto-accepted {result.auto_accepted} photos ({why})")
    except WorkspaceError as exc:
        print(f"finalize refused: {exc}")


def _human_baseline(ws: Any, audit_versions: dict[str, int], run: SeedRun, profile: str) -> None:
    """A second blind auditor of the same profile on the same photos, by the same rule as the audit."""
    import random

    from bootstrap.acceptance import check_photo, upper_bound
    from review_queue.reviewer import draw_from_scratch
    from review_queue.simulate import read_truth

    rng, classes = random.Random(run.seed * 7919 + 1), ws.config.class_table
    disagree = 0
    for path, version_id in audit_versions.items():
        record, truth = ws.store.labels.image(path), read_truth(run.data.truth, path, classes) or []
        second = draw_from_scratch(truth, run.reviewer, rng, width=record.width, height=record.height)
        disagree += check_photo(path, ws.store.labels.version(version_id).boxes, second).wrong
    n = len(audit_versions)
    if n:
        print(
            f"human baseline: two blind auditors ({profile} profile) disagree on {disagree} of {n} photos "
            f"({disagree / n:.1%}, one-sided 95% bound {upper_bound(disagree, n):.1%}): the model cannot be "
            "shown better than the auditors' own agreement"
        )


def _print_final_set(ws: Any, run: SeedRun) -> FinalSet:
    """Box F1 (IoU 0.5) of the final labels against the truth, by where each label came from, each with its size
    and interval; an empty group prints 'none'."""
    final = final_set(ws, run.data.truth, seed=0)
    for group, result in final.overall.items():
        print(f"final labels vs ground truth, {group.value}: {result.describe()}")
    return final


def _print_class_table(fixed: Sequence[Any], final: FinalSet) -> None:
    """Item 4 per class: the last scored round's fixed set reviewed | drawn from scratch, and the finished set."""
    last = next((r for r in reversed(fixed) if r is not None), None)
    for line in class_table_lines(class_quality(last, final), last.round_no if last else None):
        print(line)


def _print_timings(timings: dict[str, float], t0: float) -> None:
    """Each round's minutes and the seed's total."""
    for k, v in timings.items():
        print(f"{k}: {v / 60:.1f} min")
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min")


def _seed_figures(seed: int, curve: Sequence[Any], fixed: Sequence[Any], final: FinalSet) -> SeedFigures:
    """The seed's record: each round's test mAP50 (its newest attempt) and fixed-set figures, and the finished set."""
    maps = {row.round: row.test_map50 for row in curve}
    return SeedFigures(
        seed=seed,
        rounds=tuple(_round_figures(n, maps.get(n), scored) for n, scored in enumerate(fixed)),
        final_f1=final.overall[Provenance.ALL].f1,
        loop_f1=final.overall[Provenance.LOOP].f1,
        auto_accepted_f1=final.overall[Provenance.AUTO].f1,
    )


def _round_figures(round_no: int, test_map50: float | None, scored: Any) -> RoundFigures:
    """One round's figures from its test mAP50 and its FixedSetRound (None: the fixed set was not predicted)."""
    if scored is None:
        return RoundFigures(round_no=round_no, test_map50=test_map50)
    return RoundFigures(
        round_no=round_no,
        test_map50=test_map50,
        reviewer_seconds=scored.reviewer_seconds,
        scratch_seconds=scored.scratch_seconds,
        ratio=scored.ratio,
        correction_rate=scored.correction_rate,
        auroc=scored.auroc,
        reviewed_f1=scored.reviewed_f1.f1,
        scratch_f1=scored.scratch_f1.f1,
    )


def _report_across_seeds(records: Sequence[SeedFigures], folder: Path) -> None:
    """The table across seeds, the no-gain lines, and `summary.json` with each seed's record."""
    print()
    for line in [*summary_lines(records), *gain_lines(records)]:
        print(line)
    (folder / "summary.json").write_text(json.dumps(summary_json(records), indent=1))
    print(f"wrote {folder / 'summary.json'}")


if __name__ == "__main__":
    main()
