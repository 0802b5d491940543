"""Does the label audit find the hand labels' slips? Injected slips, recall and precision at 10% flagged.

Synthesises a fully hand-labelled set (SIMULATED), injects a slip into 10% of its photos (a box removed, a box
shifted to IoU ~0.4 with where it was, a class swapped between confusable classes: mel <-> hori, sl <-> fre),
runs the label audit (`bootstrap.label_audit`: K-fold out-of-sample predictions, cleanlab ObjectLab scores) and
the plain baseline (one model trained on every photo predicts the same photos; photos ranked by 1 - box F1 between
label and prediction), and prints, for the worst `--top` share of photos of each ranking: recall of the injected
slips (overall and per kind) and precision.

  python -m benchmarks.label_audit [--photos 240] [--folds 3] [--epochs 12] [--imgsz 256] [--top 0.1]
                                   [--dir /tmp/annotator-label-audit-bench] [--seed 7]

A rerun on the same --dir reuses the photos and the audit's cached predictions (the baseline retrains).
Measured: docs/label-audit.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from annotator.config import Config
from annotator.formats.yolo import write_data_yaml
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import Box, LabelVersion, Source

SWAPS = {"mel": "hori", "hori": "mel", "sl": "fre", "fre": "sl"}  # the confusable pairs a slip swaps
KINDS = ("removed", "shifted", "swapped")
SHIFT_IOU = 0.4


def shifted(box: Box, target_iou: float = SHIFT_IOU) -> Box:
    """The box moved sideways so its IoU with where it was is `target_iou`: (w - d) / (w + d) = iou."""
    d = box.width * (1 - target_iou) / (1 + target_iou)
    return replace(box, x1=box.x1 + d, x2=box.x2 + d)


def inject_slips(ws: Workspace, share: float, seed: int) -> dict[str, str]:
    """Put one slip into `share` of the labelled photos (as a new manual version); photo -> slip kind."""
    rng = random.Random(seed)
    labels = {p: v for p, v in sorted(ws.store.labels.current_labels().items()) if v.boxes}
    chosen = rng.sample(sorted(labels), round(share * len(ws.store.labels.current_labels())))
    slips: dict[str, str] = {}
    for n, photo in enumerate(chosen):
        boxes = list(labels[photo].boxes)
        kind = KINDS[n % len(KINDS)]
        swappable = [i for i, b in enumerate(boxes) if b.label in SWAPS]
        if kind == "swapped" and not swappable:
            kind = "shifted"
        i = rng.choice(swappable) if kind == "swapped" else rng.randrange(len(boxes))
        if kind == "removed":
            del boxes[i]
        elif kind == "shifted":
            boxes[i] = shifted(boxes[i])
        else:
            boxes[i] = replace(boxes[i], label=SWAPS[boxes[i].label])
        ws.store.labels.add_label_version(
            LabelVersion(photo, Source.MANUAL, tuple(boxes), meta={"injected_slip": kind})
        )
        slips[photo] = kind
    return slips


def photo_f1(label: tuple[Box, ...], pred: list[Box], threshold: float) -> float:
    """Box F1 between a label and the confident predictions (class-aware, IoU >= 0.5; 1 when both are empty)."""
    from training.metrics import match_by_score

    kept = [b for b in pred if (b.score or 0) >= threshold]
    tp = sum(1 for i, j in match_by_score(kept, label) if kept[i].label == label[j].label)
    return 1.0 if not kept and not label else 2 * tp / (len(kept) + len(label))


def baseline_ranking(ws: Workspace, settings, workdir: Path) -> tuple[list[str], float]:
    """One model trained on every photo (val = the same photos) predicts them; worst box F1 first, and the seconds
    it took (cached in workdir/ranking.json for the same budget)."""
    cache = workdir / f"ranking-{settings.epochs}-{settings.imgsz}.json"
    if cache.is_file():
        body = json.loads(cache.read_text())
        return body["ranking"], body["seconds"]
    began = time.perf_counter()
    from bootstrap.label_audit import _fold_detector, _train_settings, audited_labels, predict_held_out
    from bootstrap.rounds import resolve_model
    from training.dataset import build_training_view

    labels = audited_labels(ws)
    view = build_training_view(ws, workdir / "view", {p: "train" for p in labels}, labels)
    splits = {"train": "images/train", "val": "images/train", "test": "images/test"}
    write_data_yaml(view.data_yaml, view.root, splits, ws.config.classes)
    detector = _fold_detector(ws, resolve_model(ws, 0, settings.model or ws.config.model), settings)
    detector.train(view, _train_settings(ws, settings), workdir / "work")
    pred = predict_held_out(ws, detector, sorted(labels), settings)
    f1 = {p: photo_f1(labels[p].boxes, list(pred[p]), ws.config.default_threshold) for p in labels}
    ranking = sorted(labels, key=lambda p: (f1[p], p))
    cache.write_text(json.dumps({"ranking": ranking, "seconds": time.perf_counter() - began}))
    return ranking, time.perf_counter() - began


def at_cut(ranking: list[str], slips: dict[str, str], top: float) -> dict[str, float]:
    """Recall (overall and per kind) and precision of the injected slips among the first `top` of `ranking`."""
    flagged = set(ranking[: max(1, round(top * len(ranking)))])
    found = {p for p in slips if p in flagged}
    out = {"recall": len(found) / len(slips), "precision": len(found) / len(flagged)}
    for kind in KINDS:
        of_kind = [p for p, k in slips.items() if k == kind]
        out[kind] = sum(p in flagged for p in of_kind) / len(of_kind) if of_kind else float("nan")
    return out


def workspace(folder: Path, photos: int, seed: int, *, write: bool = True) -> Workspace:
    """A fresh workspace over a fully hand-labelled synthetic set (the photos reused when there)."""
    data = folder / "synth"
    if not (data / "images").is_dir():
        generate(data, images=photos, labelled_fraction=1.0, seed=seed)
    cfg = Config(images=data / "images", labels=data / "labels", seed=seed)
    root = folder / "ws"
    if root.exists():
        return Workspace.open(root, write=write)  # the baseline alone only reads: it runs beside the audit
    ws = Workspace.create(root, cfg)
    ingest(ws, images=cfg.images, labels=cfg.labels)
    return ws


def main() -> None:
    from bootstrap.label_audit import LabelAuditSettings, run_label_audit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=240)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--top", type=float, default=0.1)
    ap.add_argument("--share", type=float, default=0.1, help="share of photos given a slip")
    ap.add_argument("--high-probability", type=float, default=None, help="cleanlab's confident-box score")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--only", choices=("audit", "baseline"), help="run one ranking (e.g. both at once, in two processes)"
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/annotator-label-audit-bench"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    ws = workspace(args.dir, args.photos, args.seed, write=args.only != "baseline")
    slips = {
        p: str(v.meta["injected_slip"])
        for p, v in ws.store.labels.current_labels().items()
        if "injected_slip" in v.meta
    }
    slips = slips or inject_slips(ws, args.share, args.seed)
    settings = LabelAuditSettings(
        folds=args.folds, epochs=args.epochs, imgsz=args.imgsz, device="cpu", high_probability=args.high_probability
    )
    if args.only == "baseline":
        baseline_ranking(ws, settings, args.dir / "baseline")
        return
    audit = run_label_audit(ws, settings, print)
    if args.only == "audit":
        return
    audit_s = audit.out_of_sample.seconds
    cleanlab_rank = [q.photo for q in audit.qualities]
    base_rank, base_s = baseline_ranking(ws, settings, args.dir / "baseline")
    ws.close()
    print(f"\n{len(cleanlab_rank)} photos, {len(slips)} with an injected slip; top {args.top:.0%} flagged")
    print(f"{'ranking':<34} {'recall':>7} {'precision':>9} " + " ".join(f"{k:>8}" for k in KINDS) + "  minutes")
    for name, ranking, secs in (
        (f"cleanlab ObjectLab, {args.folds} folds (ours)", cleanlab_rank, audit_s),
        ("in-sample disagreement (1 - F1)", base_rank, base_s),
    ):
        r = at_cut(ranking, slips, args.top)
        kinds = " ".join(f"{r[k]:>8.2f}" for k in KINDS)
        print(f"{name:<34} {r['recall']:>7.2f} {r['precision']:>9.2f} {kinds}  {secs / 60:>6.1f}")
    flagged = [q.photo for q in audit.qualities if q.flagged]
    print(f"find_label_issues flags {len(flagged)} photos ({sum(p in slips for p in flagged)} of them slips)")


if __name__ == "__main__":
    main()
