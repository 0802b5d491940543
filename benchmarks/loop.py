"""The whole loop at benchmark scale: ~1,500 synthetic photos, three rounds, simulated reviewer.

Prints the learning curve per round (test mAP50 with its 95% interval and the split's size, correction
rate, reviewer box operations and modelled seconds per photo vs drawing the same photos from scratch,
one time model: review_queue.effort). It ends as a team would: an acceptance audit of what finalize would
accept (a seeded random sample boxed blind by a SIMULATED auditor in Label Studio; the exact bound, and the
human baseline of two blind auditors beside it), then `finalize`, which accepts only what the audit bounded.
Last, the box F1 (IoU 0.5) of the final labels against the generator's ground truth, by where each label came
from (reviewed from predictions, drawn blind, auto-accepted, still unreviewed), each with its size and
interval (hand labels are copies of the truth and would flatter the figure).
The simulated reviewer is `--profile` (default realistic: it misses, confuses and anchors as
docs/reviewer-profiles.md says; careful: the oracle that copies the truth). `benchmarks/warm_start.py`
then asks whether round 1's warm start paid off, on this run's workspace. A rerun on the same --dir
resumes where the last one stopped (finished rounds and simulated batches are not done again).

  python benchmarks/loop.py [--photos 1500] [--review 300] [--epochs 20] [--retrain-epochs 10] [--imgsz 320]
                           [--profile realistic] [--seed 7] [--preset default|hard] [--tolerance 0.02]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from review_queue.reviewer import PROFILES, profile_named


def _once(marker: Path, step: Callable[[], object]) -> None:
    """Run `step` unless an earlier (interrupted) run of the benchmark did: a rerun resumes the loop
    without a second batch of simulated reviews."""
    if not marker.exists():
        step()
        marker.touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1500)
    parser.add_argument("--review", type=int, default=300, help="photos the simulated reviewer does per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/annotator-loop-bench"))
    parser.add_argument("--profile", default="realistic", choices=list(PROFILES), help="the simulated reviewer")
    parser.add_argument("--seed", type=int, default=7, help="data seed (the design choices were tuned on seed 1)")
    parser.add_argument("--eval-size", type=int, default=150, help="pool photos kept out of the queue (fixed set)")
    parser.add_argument("--preset", default="default", help="synthetic world: default | hard")
    parser.add_argument("--tolerance", type=float, default=0.02, help="the acceptance audit's tolerance")
    parser.add_argument("--expected-rate", type=float, default=0.0, help="the wrong-photo share the audit is sized for")
    args = parser.parse_args()

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.rounds import Stage, stage_reached
    from annotator.store import Workspace
    from annotator.synthetic import PRESETS, generate
    from bootstrap.curve import curve_warning, learning_curve, measured_lines
    from bootstrap.evaluation import format_interval
    from bootstrap.rounds import RoundSettings, run_round
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.server import start_server, stop_server
    from review_queue.queue import open_queue
    from review_queue.simulate import simulate

    reviewer = profile_named(args.profile)
    t0 = time.perf_counter()
    data = args.dir / "data"
    if not (data / "truth").exists():
        generate(
            data, images=args.photos, labelled_fraction=0.38, seed=args.seed, workers=2, world=PRESETS[args.preset]
        )
    cfg = Config(
        images=data / "images",
        labels=data / "labels",
        imgsz=args.imgsz,
        epochs=args.epochs,
        retrain_epochs=args.retrain_epochs,
        batch=16,
        test_size=150,
        eval_size=args.eval_size,
        project_title="loop benchmark",
    )
    ws_root = args.dir / "ws"
    ws = (
        Workspace.create(ws_root, cfg)
        if not (ws_root / "annotator.toml").exists()
        else Workspace.open(ws_root, write=True)
    )
    ingest(ws, images=cfg.images, labels=cfg.labels)
    timings: dict[str, float] = {}
    start_server(ws)
    queue = open_queue(ws)
    client = connect(ws)
    for round_no in range(args.rounds):
        if round_no:
            _once(
                args.dir / f"simulated-before-round-{round_no}",
                lambda n=round_no: simulate(ws, client, count=args.review, seed=n, profile=reviewer),
            )
        if stage_reached(ws.store.rounds.round_record(round_no), Stage.DONE):
            print(f"round {round_no} was finished by an earlier run of this benchmark")
            continue
        t = time.perf_counter()
        model = args.model if round_no == 0 else None  # round N >= 1 starts from round N-1's weights
        epochs = args.epochs if round_no == 0 else args.retrain_epochs
        run_round(ws, round_no, RoundSettings(model=model, epochs=epochs, imgsz=args.imgsz, batch=16), queue=queue)
        timings[f"round {round_no} ({'pull + warm-start ' if round_no else ''}train + predict + push)"] = (
            time.perf_counter() - t
        )
    _once(
        args.dir / "simulated-after-last-round",
        lambda: simulate(ws, client, count=args.review, seed=99, profile=reviewer),
    )
    queue.pull(ws)

    rows = learning_curve(ws)
    curve = [row.to_dict() for row in rows]
    # one effort model (review_queue.effort) prices the reviewer and scratch on the same photos
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

    _fixed_set_table(ws, data, args, reviewer)
    _audited_finalize(ws, client, data, args, reviewer)
    _final_set_f1(ws, data)
    for k, v in timings.items():
        print(f"{k}: {v / 60:.1f} min")
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min")
    (args.dir / "curve.json").write_text(json.dumps(curve, indent=1, default=str))
    stop_server(ws)
    ws.close()


def _fixed_set_table(ws, data: Path, args: argparse.Namespace, reviewer) -> None:  # noqa: ANN001
    """Every round's model on the same pool photos nobody reviews (the fixed evaluation set)."""
    from bootstrap.fixed_eval import fixed_set, score_round

    print(f"\nfixed evaluation set: {len(fixed_set(ws))} pool photos never pushed, reviewed by a SIMULATED "
          f"{args.profile} reviewer offline, every round on the same photos")  # fmt: skip
    print(f"{'round':>5} {'photos':>6} {'s/ph rev':>8} {'s/ph draw':>9} {'rev/draw':>8} {'corr.':>6} "
          f"{'AUROC [95% CI]':>20}  box F1 reviewed from predictions | drawn from scratch")  # fmt: skip
    truth = data / "truth"
    scored = [score_round(ws, n, truth_dir=truth, profile=reviewer, seed=args.seed) for n in range(args.rounds)]
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


def _audited_finalize(ws, client, data: Path, args: argparse.Namespace, reviewer) -> None:  # noqa: ANN001
    """End as a team would: plan the acceptance audit of what finalize would accept, let a SIMULATED auditor
    box the sample blind in Label Studio, pull, print the bound and the human baseline, and finalize."""
    import random

    from annotator.errors import WorkspaceError
    from bootstrap.acceptance import AuditSettings, check_photo, judge, upper_bound
    from bootstrap.finalize import audit_state, finalize, plan_acceptance_audit
    from review_queue.audit import pull_audit, push_audit, simulate_audit
    from review_queue.reviewer import draw_from_scratch
    from review_queue.simulate import read_truth

    try:
        settings = AuditSettings(tolerance=args.tolerance, expected_rate=args.expected_rate, seed=args.seed)
        plan = plan_acceptance_audit(ws, settings)
    except WorkspaceError as exc:
        print(f"acceptance audit: {exc}")
        return
    print(f"acceptance audit plan: {plan.describe()}")
    _once(
        args.dir / f"audited-{plan.population_digest[:12]}",
        lambda: (
            push_audit(ws, client, plan=plan.population_digest, photos=plan.sample),
            simulate_audit(
                ws, client, plan=plan.population_digest, profile=reviewer, truth_dir=data / "truth", seed=args.seed
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
    # the human baseline: a second blind auditor of the same profile on the same photos, by the same rule
    rng, classes = random.Random(args.seed * 7919 + 1), ws.config.class_table
    disagree = 0
    for path, version_id in state.audit_versions.items():
        record, truth = ws.store.labels.image(path), read_truth(data / "truth", path, classes) or []
        second = draw_from_scratch(truth, reviewer, rng, width=record.width, height=record.height)
        disagree += check_photo(path, ws.store.labels.version(version_id).boxes, second).wrong
    n = len(state.audit_versions)
    if n:
        print(
            f"human baseline: two blind auditors ({args.profile} profile) disagree on {disagree} of {n} photos "
            f"({disagree / n:.1%}, one-sided 95% bound {upper_bound(disagree, n):.1%}): the model cannot be "
            "shown better than the auditors' own agreement"
        )
    try:
        result = finalize(ws)
        why = result.audit.get("message") or "nothing was left to accept: every photo has a person's label"
        print(f"finalize: auto-accepted {result.auto_accepted} photos ({why})")
    except WorkspaceError as exc:
        print(f"finalize refused: {exc}")


def _final_set_f1(ws, data: Path) -> None:  # noqa: ANN001
    """Box F1 (IoU 0.5) of the final labels against the generator's truth, by where each label came from,
    each with its size and interval; an empty group prints 'none'."""
    from annotator.boxes import match_boxes, voc_to_box
    from annotator.formats.voc import read_voc
    from annotator.types import Source
    from review_queue.review_meta import ReviewMeta
    from training.metrics import box_f1

    groups: dict[str, list[tuple[int, int, int]]] = {
        "all photos": [],
        "reviewed from predictions": [],
        "drawn blind (audit or control arm)": [],
        "auto-accepted (no person saw them)": [],
        "still unreviewed predictions": [],
    }
    for path, version in ws.store.labels.current_labels().items():
        if version.excluded:
            continue
        truth = [
            voc_to_box(o.name, o.xmin, o.ymin, o.xmax, o.ymax)
            for o in read_voc(data / "truth" / (Path(path).stem + ".xml")).objects
        ]
        matched = len(match_boxes(list(version.boxes), truth, 0.5))
        counts = (matched, len(version.boxes) - matched, len(truth) - matched)
        groups["all photos"].append(counts)
        meta = ReviewMeta.from_dict(version.meta) if version.source is Source.REVIEWED else None
        if meta is not None and (meta.acceptance_audit or meta.arm):
            groups["drawn blind (audit or control arm)"].append(counts)
        elif meta is not None and meta.operations is not None:
            groups["reviewed from predictions"].append(counts)
        elif version.source is Source.AUTO_ACCEPTED:
            groups["auto-accepted (no person saw them)"].append(counts)
        elif version.source is Source.MODEL:
            groups["still unreviewed predictions"].append(counts)
    for group, counts in groups.items():
        print(f"final labels vs ground truth, {group}: {box_f1(counts).describe()}")


if __name__ == "__main__":
    main()
