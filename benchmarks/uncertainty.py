"""Which review priority finds the photos a reviewer has to fix, over a whole pool before any review?

Synthesises a set, trains a round-0 model on its hand-labelled photos (`run_round`, CPU; it fits the round's
score calibration on its val split), pre-annotates the pool once with each score through the real engine
(heuristic, flip-consistency, joint, calibrated-joint), and labels every pool photo "changed" when the
simulated reviewer (`review_queue.reviewer.plan_review`, `--profile`: by default the realistic dermatologist
of docs/reviewer-profiles.md, who also misreads classes and anchors on the predictions; careful: keep a box
with IoU >= 0.7 to the true lesion, else move, relabel, delete or draw) would change anything. Prints each
score's AUROC for "changed" with a 95% bootstrap interval (photos resampled, every score on the same
resample), each one's paired difference from the heuristic, and the inference cost of each score.

  python -m benchmarks.uncertainty [--photos 300] [--epochs 25] [--imgsz 320] [--dir /tmp/annotator-uncertainty-bench]
                                   [--profile realistic]

A rerun on the same --dir reuses the photos and the trained model.

Measured (2 shared CPU cores; training is deterministic, so a rerun on the same code prints the same AUROCs;
every figure below was made with the careful reviewer, before profiles: `--profile careful` repeats it):
- 2026-12-02, all four scores, defaults, 4.1 min: test mAP50 0.614 (15 test photos); 150 pool photos, 134 changed
  (89%); AUROC heuristic 0.883 [0.779, 0.971], flip-consistency 0.904 [0.821, 0.972], joint 0.911 [0.828, 0.978],
  calibrated-joint 0.919 [0.847, 0.978] (calibration fitted on 419 val boxes); differences from the heuristic
  +0.021, +0.029, +0.037, every interval spanning 0 (16 unchanged photos are too few to separate them);
  flip-consistency costs 1.84x the CPU time, the others 0.97-1.00x.
- Earlier, heuristic and flip-consistency only (an older training recipe): defaults, test mAP50 0.572, AUROC
  0.884 vs 0.785, difference -0.102 [-0.190, -0.028]; `--photos 600 --labelled 0.4 --epochs 50 --seed 5`, 19 min:
  test mAP50 0.933, 0.888 vs 0.803, difference -0.085 [-0.127, -0.044].
On the photos reviewers handled, round after round, calibrated-joint leads clearly
(`benchmarks/rescore_uncertainty.py`, docs/uncertainty.md); it is the default.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from review_queue.reviewer import PROFILES

SCORES = ("heuristic", "flip-consistency", "joint", "calibrated-joint")  # the heuristic first: the others vs it


def paired_bootstrap(
    scores: dict[str, list[float]], changed: list[bool], resamples: int, seed: int
) -> dict[str, list[float]]:
    """AUROC of each score, and of each one's difference from the heuristic, on `resamples` resamples of the
    photos."""
    from bootstrap.uncertainty import auroc

    rng = np.random.default_rng(seed)
    n = len(changed)
    out: dict[str, list[float]] = {name: [] for name in [*scores, *(f"{n} - heuristic" for n in SCORES[1:])]}
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        labels = [changed[i] for i in idx]
        values = {name: auroc([s[i] for i in idx], labels) for name, s in scores.items()}
        if any(v is None for v in values.values()):
            continue  # one class only in this resample
        for name, v in values.items():
            out[name].append(float(v))  # type: ignore[arg-type]
        for name in SCORES[1:]:
            out[f"{name} - heuristic"].append(float(values[name]) - float(values[SCORES[0]]))  # type: ignore[arg-type]
    return out


def interval(values: list[float]) -> str:
    if not values:
        return "n/a"
    lo, hi = np.percentile(values, [2.5, 97.5])
    return f"[{lo:.3f}, {hi:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--labelled", type=float, default=0.5, help="share of the photos hand-labelled (the seed)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/annotator-uncertainty-bench"))
    parser.add_argument("--profile", default="realistic", choices=list(PROFILES), help="the simulated reviewer")
    args = parser.parse_args()

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.rounds import Stage, stage_reached
    from annotator.store import Workspace
    from annotator.synthetic import generate
    from annotator.types import Source
    from benchmarks.rescore_uncertainty import round_calibration
    from bootstrap.preannotate import preannotate
    from bootstrap.rounds import RoundSettings, round_model_path, run_round
    from bootstrap.uncertainty import auroc, reviewer_changed
    from review_queue.corrections import diff_regions
    from review_queue.reviewer import photo_contrasts, plan_review, profile_named
    from review_queue.simulate import read_truth
    from training.detectors import make_detector
    from training.thresholds import threshold_rule

    started = time.perf_counter()
    data, ws_root = args.dir / "data", args.dir / "ws"
    if not (data / "truth").is_dir():
        generate(data, images=args.photos, labelled_fraction=args.labelled, seed=args.seed, workers=2)
    cfg = Config(
        images=data / "images",
        labels=data / "labels",
        imgsz=args.imgsz,
        epochs=args.epochs,
        batch=8,
        test_size=40,
        uncertainty="heuristic",
    )
    with (
        Workspace.create(ws_root, cfg)
        if not (ws_root / "annotator.toml").exists()
        else Workspace.open(ws_root, write=True)
    ) as ws:
        ingest(ws, images=cfg.images, labels=cfg.labels)
        if not stage_reached(ws.store.rounds.round_record(0), Stage.DONE):
            print(f"round 0: training yolo11n for {args.epochs} epochs at {args.imgsz} px on the CPU ...", flush=True)
            run_round(ws, 0, RoundSettings(model="auto", epochs=args.epochs, imgsz=args.imgsz, batch=8, device="cpu"))
        record = ws.store.rounds.round_record(0)
        trained = record.trained if record else None
        test = (trained.test if trained else None) or {}
        detector = make_detector(str(round_model_path(ws, 0)), ws.config.classes)
        calibration, origin = round_calibration(ws, 0, detector, args.imgsz, refit=False)
        threshold = threshold_rule(ws.config, record.thresholds if record else {})  # the round's own
        records = {r.path: r for r in ws.store.labels.images()}
        pool = sorted(p for p, v in ws.store.labels.current_labels().items() if v.source is Source.MODEL)
        classes = ws.config.class_table
        truth = {p: read_truth(data / "truth", p, classes) for p in pool}
        reviewer = profile_named(args.profile)
        contrast = {  # how faint each lesion is, read once: the same reviewer in every score's pass
            p: photo_contrasts(ws.image_path(p), boxes) if reviewer.uses_contrast and boxes else None
            for p, boxes in truth.items()
        }

        detector.predict_arrays([np.zeros((args.imgsz, args.imgsz, 3), np.uint8)], imgsz=args.imgsz, device="cpu")
        uncertainty: dict[str, list[float]] = {}  # (warmed up above: neither timed pass pays the first call)
        changed: dict[str, list[bool]] = {}
        seconds: dict[str, float] = {}
        cpu_seconds: dict[str, float] = {}  # every thread of this process: fairer than wall time on shared cores
        for name in SCORES:
            ws.set_config(ws.config.with_(uncertainty=name))
            cpu_started = time.process_time()
            stats = preannotate(
                ws,
                detector,
                [records[p] for p in pool],
                round_no=0,
                model_version=f"uncertainty-bench-{name}-{time.time_ns()}",
                imgsz=args.imgsz,
                device="cpu",
                threshold=threshold,
                calibration=calibration,
            )
            seconds[name] = stats.seconds
            cpu_seconds[name] = time.process_time() - cpu_started
            current = ws.store.labels.current_labels()
            uncertainty[name], changed[name] = [], []
            for p in pool:
                version, rec, true_boxes = current[p], records[p], truth[p]
                if true_boxes is None:
                    raise SystemExit(f"{p}: no truth XML under {data / 'truth'}")
                predicted = [(f"r{i}", b) for i, b in enumerate(version.boxes)]
                reviewed, _ = plan_review(  # seeded per photo: the same draws in every score's pass
                    predicted,
                    true_boxes,
                    width=rec.width,
                    height=rec.height,
                    rng=random.Random(f"{args.seed}:{p}"),
                    profile=reviewer,
                    contrast=contrast[p],
                )
                changed[name].append(reviewer_changed(op.to_dict() for op in diff_regions(predicted, reviewed)))
                uncertainty[name].append(float(version.uncertainty if version.uncertainty is not None else 1.0))
        ws.set_config(ws.config.with_(uncertainty="heuristic"))

    labels = changed[SCORES[0]]
    if any(changed[name] != labels for name in SCORES[1:]):
        print("note: the passes kept different boxes on some photos; 'changed' is read from the first pass")
    boot = paired_bootstrap(uncertainty, labels, args.resamples, args.seed)
    n_changed = sum(labels)
    print(
        f"\nround 0 model: test mAP50 {test.get('map50', float('nan')):.3f} "
        f"({((trained.images if trained else None) or {}).get('test', '?')} test photos)"
    )
    print("thresholds: " + ", ".join(f"{c} {threshold(c):.2f}" for c in classes.names))
    print(f"calibration: {origin}" + (f", on {calibration.boxes} val boxes" if calibration else ": none (raw scores)"))
    print(
        f"pool: {len(pool)} photos, {n_changed} the reviewer would change ({n_changed / max(1, len(pool)):.0%}), "
        f"{sum(u >= 1.0 for u in uncertainty[SCORES[0]])} with no kept box"
    )
    print(f"{'score':>17} {'AUROC':>6} {'95% interval':>17} {'wall s':>7} {'CPU s':>7} {'photos/s':>8}")
    for name in SCORES:
        value = auroc(uncertainty[name], labels)
        print(
            f"{name:>17} {'n/a' if value is None else f'{value:.3f}':>6} {interval(boot[name]):>17} "
            f"{seconds[name]:>7.1f} {cpu_seconds[name]:>7.1f} {len(pool) / seconds[name]:>8.1f}"
        )
    for name in SCORES[1:]:
        diffs = boot[f"{name} - heuristic"]
        print(
            f"{name} - heuristic: AUROC {f'{np.mean(diffs):+.3f}' if diffs else 'n/a'} {interval(diffs)} "
            f"over {len(diffs)} resamples; inference cost {cpu_seconds[name] / cpu_seconds[SCORES[0]]:.2f}x CPU "
            f"time, {seconds[name] / seconds[SCORES[0]]:.2f}x wall time"
        )
    if min(n_changed, len(pool) - n_changed) < 10:
        print(
            f"warning: only {min(n_changed, len(pool) - n_changed)} pool photos are "
            f"{'unchanged' if n_changed > len(pool) / 2 else 'changed'}: too few to rank anything; the AUROCs "
            "say nothing at this model quality (train longer: --epochs, --photos)"
        )
    print(f"total {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
