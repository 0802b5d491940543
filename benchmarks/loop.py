"""The whole loop at benchmark scale: ~1,500 synthetic photos, three rounds, simulated reviewer.

Prints the learning curve per round (test mAP50 with its 95% interval and the split's size, correction
rate, reviewer box operations and modelled seconds per photo vs drawing the same photos from scratch,
one time model: review_queue.effort) and, after `finalize` by its own rule, the box F1 (IoU 0.5) of the
final labelled set against the generator's ground truth: over all photos, and over the photos whose
label came from the model (auto-accepted, or reviewed from a pre-annotation), since hand labels and
noise-free simulated reviews are copies of the truth and would flatter the figure. `benchmarks/warm_start.py` then asks
whether round 1's warm start paid off, on this run's workspace. A rerun on the same --dir resumes
where the last one stopped (finished rounds and simulated batches are not done again).

  python benchmarks/loop.py [--photos 1500] [--review 300] [--epochs 20] [--retrain-epochs 10] [--imgsz 320]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path


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
    args = parser.parse_args()

    from annotator.boxes import match_boxes, voc_to_box
    from annotator.config import Config
    from annotator.formats.voc import read_voc
    from annotator.ingest import ingest
    from annotator.rounds import Stage, stage_reached
    from annotator.store import Workspace
    from annotator.synthetic import generate
    from bootstrap.curve import curve_warning, learning_curve, measured_lines
    from bootstrap.evaluation import format_interval
    from bootstrap.finalize import finalize
    from bootstrap.rounds import RoundSettings, run_round
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.server import start_server, stop_server
    from review_queue.queue import open_queue
    from review_queue.simulate import simulate

    t0 = time.perf_counter()
    data = args.dir / "data"
    if not (data / "truth").exists():
        generate(data, images=args.photos, labelled_fraction=0.38, seed=1, workers=2)
    cfg = Config(
        images=data / "images",
        labels=data / "labels",
        imgsz=args.imgsz,
        epochs=args.epochs,
        retrain_epochs=args.retrain_epochs,
        batch=16,
        test_size=150,
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
                lambda n=round_no: simulate(ws, client, count=args.review, seed=n),
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
    _once(args.dir / "simulated-after-last-round", lambda: simulate(ws, client, count=args.review, seed=99))
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

    try:
        result = finalize(ws)  # by its own rule: the recommended threshold
        print(
            f"finalize: correction rate {result.correction_rate:.1%} ({result.corrected_boxes} of "
            f"{result.predicted_boxes} predicted boxes changed, {result.added_boxes} added) <= recommended "
            f"threshold {result.recommended_threshold:.1%}; auto-accepted {result.auto_accepted}"
        )
    except Exception as exc:  # report, keep the figures
        print(f"finalize refused: {exc}")
    from annotator.types import Source

    tally = {
        "all photos": [0, 0, 0],
        "model-labelled (auto-accepted or reviewed)": [0, 0, 0],
        "auto-accepted only (no person saw them)": [0, 0, 0],
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
        groups = ["all photos"]
        if version.source in (Source.AUTO_ACCEPTED, Source.REVIEWED):
            groups.append("model-labelled (auto-accepted or reviewed)")
        if version.source is Source.AUTO_ACCEPTED:
            groups.append("auto-accepted only (no person saw them)")
        for group in groups:
            tally[group] = [a + b for a, b in zip(tally[group], counts, strict=True)]
    for group, (tp, fp, fn) in tally.items():
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        print(f"final labelled set vs ground truth, {group}: box F1 {f1:.3f} at IoU 0.5 (TP {tp}, FP {fp}, FN {fn})")
    for k, v in timings.items():
        print(f"{k}: {v / 60:.1f} min")
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min")
    (args.dir / "curve.json").write_text(json.dumps(curve, indent=1, default=str))
    stop_server(ws)
    ws.close()


if __name__ == "__main__":
    main()
