"""Which review priority ranks the photos reviewers had to fix first, on the photos they actually handled?

Takes a workspace whose rounds were reviewed (the loop benchmark's, `benchmarks/loop.py`, leaves one at
/tmp/annotator-loop-bench/ws). For every reviewed photo whose prediction came from round R, it decodes the photo
as the engine does, predicts it again with round R's own model (its ONNX export when cached, else PyTorch)
down to the engine's score floor, maps the boxes onto the photo, and scores it with each uncertainty score
under round R's own thresholds (the engine's `predictions_from_raw`; flip consistency also predicts the
mirrored photo). "Changed" is what the review did (`reviewer_changed` on the stored edit diff). Prints, per
round, each score's AUROC for "changed" with a 95% bootstrap interval (photos resampled, every score on the
same resample), each score's paired difference from the heuristic, and calibrated-joint's from joint.
calibrated-joint reads the scores through the round's calibration (`fit_score_calibration` on its val split):
the one the round recorded, or, for a round trained before calibration existed (or with --refit), one fitted
here the same way on the round's val photos (its training view). As a check that the prediction is the
round's own, the stored uncertainty's AUROC is printed beside the score the round used.

  python -m benchmarks.rescore_uncertainty [WORKSPACE] [--rounds 0 1 2] [--resamples 2000] [--refit]

The photos reviewed were chosen by the score the round used (most uncertain first), so every AUROC here is
over that selection: what a reviewer meets, not the whole pool.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCORES = ("calibrated-joint", "joint", "heuristic", "flip-consistency")


def round_calibration(ws, round_no: int, detector, imgsz: int, refit: bool):
    """The round's score calibration: the one it recorded, else (a round trained before calibration existed,
    or `refit`) fitted as train_round fits it, on the round's val photos (its training view) predicted by
    `detector`."""
    from bootstrap.uncertainty import ScoreCalibration, fit_score_calibration
    from training.detectors.base import TrainingView
    from training.thresholds import predict_split

    record = ws.store.rounds.round_record(round_no)
    if record is not None and record.trained is not None and record.trained.calibration_recorded and not refit:
        found = record.trained.calibration
        return (ScoreCalibration.from_dict(found) if found else None), "recorded by the round"
    root = ws.round_dir(round_no) / "view"
    links = sorted((root / "images" / "val").iterdir())
    view = TrainingView(root, root / "data.yaml", ws.config.classes, {"val": [(p, p.name) for p in links]})
    val = predict_split(detector, view, imgsz=imgsz)
    return fit_score_calibration(val.truth, val.pred, ws.config.classes, val.frames), (
        f"fitted here on its {len(links)} val photos"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path, nargs="?", default=Path("/tmp/annotator-loop-bench/ws"))
    parser.add_argument("--rounds", type=int, nargs="*", default=None, help="default: every round with reviews")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--refit", action="store_true", help="fit each round's calibration here with this code, not the recorded one"
    )
    args = parser.parse_args()

    from training.offline import prepare_ultralytics

    prepare_ultralytics()
    from annotator.images import decode_displayed
    from annotator.store import Workspace
    from annotator.types import Source
    from bootstrap.preannotate import predictions_from_raw
    from bootstrap.uncertainty import auroc, reviewer_changed, unmirror
    from review_queue.review_meta import ReviewMeta
    from training.constants import PREDICT_FLOOR
    from training.detectors.runtime import RuntimePredictor, exported_path
    from training.detectors.ultralytics import UltralyticsDetector

    ws = Workspace.open(args.workspace)
    versions = [v for r in ws.store.labels.images() for v in ws.store.labels.history(r.path)]
    records = {r.path: r for r in ws.store.labels.images()}
    model_versions = {v.id: v for v in versions if v.source is Source.MODEL}
    metas = {v.id: ReviewMeta.from_dict(v.meta) for v in versions if v.source is Source.REVIEWED}
    reviewed = [
        v
        for v in versions
        if v.source is Source.REVIEWED
        and not v.excluded
        and metas[v.id].operations is not None
        and metas[v.id].prediction_version_id in model_versions
    ]
    by_round: dict[int, list] = {}
    for v in reviewed:
        parent = model_versions[metas[v.id].prediction_version_id]
        if parent.round is not None:
            by_round.setdefault(parent.round, []).append((v, parent))
    rounds = args.rounds if args.rounds is not None else sorted(by_round)
    rng = np.random.default_rng(args.seed)
    print(
        f"workspace {args.workspace}: reviewed photos per round of their prediction "
        f"{ {r: len(by_round.get(r, [])) for r in rounds} }; configured score: {ws.config.uncertainty}"
    )
    for round_no in rounds:
        pairs = by_round.get(round_no, [])
        record = ws.store.rounds.round_record(round_no)
        chosen = record.thresholds if record else {}
        thresholds = {c: float(chosen.get(c, ws.config.default_threshold)) for c in ws.config.classes}
        imgsz = int(json.loads((ws.round_dir(round_no) / "train_args.json").read_text())["imgsz"])
        weights = ws.round_dir(round_no) / "model.pt"
        detector = UltralyticsDetector(list(ws.config.classes), str(weights))
        backend = "torch"
        if exported_path(weights).exists():
            detector, backend = RuntimePredictor.from_weights(detector, weights), "onnxruntime"
        calibration, origin = round_calibration(ws, round_no, detector, imgsz, args.refit)
        scores: dict[str, list[float]] = {name: [] for name in (*SCORES, "stored")}
        changed: list[bool] = []
        for review, parent in pairs:
            record = records[review.image_path]
            array, sx, sy = decode_displayed(ws.image_path(record.path), imgsz)
            raw, mirrored = detector.predict_arrays(
                [array, np.ascontiguousarray(array[:, ::-1])], conf=PREDICT_FLOOR, imgsz=imgsz
            )
            mirrored = unmirror(mirrored, array.shape[1], array.shape[0])
            for name in SCORES:  # the engine's own mapping onto the photo and scoring
                scored = predictions_from_raw(
                    raw,
                    record,
                    sx,
                    sy,
                    thresholds.__getitem__,
                    model_version="",
                    round_no=round_no,
                    score=name,
                    mirrored=mirrored,
                    calibration=calibration,
                )
                scores[name].append(float(scored.uncertainty if scored.uncertainty is not None else np.nan))
            scores["stored"].append(float(parent.uncertainty if parent.uncertainty is not None else np.nan))
            changed.append(reviewer_changed(metas[review.id].operations or ()))
        if len(set(changed)) < 2:
            print(f"round {round_no}: {len(changed)} reviewed photos, all or none changed: no AUROC")
            continue
        point = {name: auroc(values, changed) for name, values in scores.items() if not np.isnan(values).any()}
        boot: dict[str, list[float]] = {name: [] for name in SCORES}
        diffs: dict[str, list[float]] = {name: [] for name in SCORES if name != "heuristic"}
        n = len(changed)
        for _ in range(args.resamples):
            idx = rng.integers(0, n, n)
            labels = [changed[i] for i in idx]
            values = {name: auroc([scores[name][i] for i in idx], labels) for name in SCORES}
            if any(v is None for v in values.values()):
                continue
            for name, v in values.items():
                boot[name].append(float(v or 0.0))
            for name in diffs:
                diffs[name].append(float(values[name] or 0.0) - float(values["heuristic"] or 0.0))
        print(
            f"round {round_no}: {n} reviewed photos, {sum(changed)} changed ({sum(changed) / n:.0%}); model "
            f"{weights.parent.name} ({backend}, {imgsz} px), its thresholds; calibration "
            + (f"{origin}, on {calibration.boxes} val boxes" if calibration else f"none ({origin}): raw scores")
        )
        for name in SCORES:
            lo, hi = np.percentile(boot[name], [2.5, 97.5])
            line = f"  {name:<17} AUROC {point[name]:.3f} [{lo:.3f}, {hi:.3f}]"
            if name in diffs:
                dlo, dhi = np.percentile(diffs[name], [2.5, 97.5])
                line += f"   vs heuristic {point[name] - point['heuristic']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]"
            if name == "calibrated-joint":
                paired = np.array(boot[name]) - np.array(boot["joint"])
                dlo, dhi = np.percentile(paired, [2.5, 97.5])
                line += f"   vs joint {point[name] - point['joint']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]"
            print(line)
        if "stored" in point:
            print(f"  stored uncertainty (what the round pushed) AUROC {point['stored']:.3f}")
    ws.close()


if __name__ == "__main__":
    main()
