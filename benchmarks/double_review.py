"""Single review vs double review + adjudication, on synthetic photos through a real local Label Studio:
how close the final labels come to the generator's truth, and what the second reviewer and the adjudicator cost.

    python -m benchmarks.double_review [--images 200] [--profile realistic] [--slips 0] [--seed 0]

Photos: `annotator.synthetic.generate` (small), every one in the review queue. The pre-annotation the reviewers
start from is a stand-in for a model, made from the truth with seeded errors (a box moved by up to 10% of
its size, 10% of lesions missed, 5% given another class, a false positive on one photo in five), so the
benchmark needs no training. Two SIMULATED reviewers (their own Label Studio users, each reviewing as
`--profile` says, by default the realistic dermatologist of docs/reviewer-profiles.md, with its own seeded
draws) review every photo (`review push --reviewers 2`); pull merges agreeing reviews and sends the
others to the adjudication project, where the SIMULATED adjudicator (same profile) settles them; a
last pull stores the adjudicated labels. `--slips` adds the careful reviewer's mild slips (a box off by up
to 5% of its size, a lesion overlooked or a false positive left at a quarter of that rate): the figures
before reviewer profiles came from `--profile careful --slips 0.10`.

Box F1: every box of the final labels matched to the truth at IoU 0.5 with the same class, counted over
all photos (micro). Single review = reviewer 1's review (and reviewer 2's, shown too); double review = the
current label after merge or adjudication; mean IoU of the matched boxes shows what box F1 at IoU 0.5 cannot
(edges off by a few percent). Seconds: the one time model (`review_queue.effort`) over each
person's edits, as the simulation prices them; the adjudicator's include looking at the photo again.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from annotator.boxes import clip_box, match_boxes
from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.synthetic import generate
from annotator.types import Box, LabelVersion, Source
from review_queue.adjudication import ADJUDICATED, MERGED, agreement_summary, double_reviews
from review_queue.agreement import agreement_lines
from review_queue.labelstudio import server as ls
from review_queue.labelstudio.client import connect
from review_queue.labelstudio.push import push
from review_queue.people import simulated_reviewer
from review_queue.queue import LabelStudioQueue
from review_queue.review_meta import ReviewMeta
from review_queue.reviewer import PROFILES, profile_named
from review_queue.simulate import read_truth, simulate, simulate_adjudication

REPO = Path(__file__).resolve().parents[1]


def _stand_in_prediction(
    truth: Sequence[Box], classes: Sequence[str], width: int, height: int, rng: random.Random
) -> tuple[Box, ...]:
    """A model's boxes made from the truth with seeded errors (see the module docstring)."""
    out = []
    for box in truth:
        if rng.random() < 0.10:
            continue  # missed
        label = rng.choice([c for c in classes if c != box.label]) if rng.random() < 0.05 else box.label
        dx, dy = 0.10 * box.width, 0.10 * box.height
        moved = Box(
            label,
            box.x1 + rng.uniform(-dx, dx),
            box.y1 + rng.uniform(-dy, dy),
            box.x2 + rng.uniform(-dx, dx),
            box.y2 + rng.uniform(-dy, dy),
            score=rng.uniform(0.3, 0.95),
        )
        out.append(clip_box(moved, width, height))
    if rng.random() < 0.2:  # a false positive
        w, h = rng.uniform(0.05, 0.15) * width, rng.uniform(0.05, 0.15) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        out.append(Box(rng.choice(list(classes)), x, y, x + w, y + h, score=rng.uniform(0.25, 0.5)))
    return tuple(out)


def _f1(final: dict[str, Sequence[Box]], truth: dict[str, Sequence[Box]]) -> tuple[float, int, int, int, float]:
    """Micro box F1 at IoU 0.5 with class over the photos of `final`: (F1, TP, FP, FN, mean IoU of the TPs)."""
    tp = fp = fn = 0
    ious: list[float] = []
    for photo, boxes in final.items():
        pairs = match_boxes(list(boxes), list(truth[photo]), iou_threshold=0.5, class_aware=True)
        ious += [float(o) for _, _, o in pairs]
        matched = len(pairs)
        tp += matched
        fp += len(boxes) - matched
        fn += len(truth[photo]) - matched
    return (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0), tp, fp, fn, sum(ious) / max(1, len(ious))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--profile", default="realistic", choices=list(PROFILES), help="the reviewers' profile")
    parser.add_argument("--slips", type=float, default=0.0, help="mild slips on top of the profile (0-1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-double-review-") as tmp:
        base = Path(tmp)
        data = base / "data"
        generate(data, images=args.images, labelled_fraction=0.0, seed=args.seed, size="small")
        ws = Workspace.create(base / "ws", Config(images=data / "images", project_title="bench double review"))
        ingest(ws, images=data / "images", labels=data / "labels")
        classes = ws.config.class_table
        records = {r.path: r for r in ws.store.labels.images()}
        truth = {
            p: [clip_box(b, r.width, r.height) for b in read_truth(data / "truth", p, classes) or []]
            for p, r in records.items()
        }
        rng = random.Random(args.seed)
        with ws.store.transaction():
            for p, r in records.items():
                ws.store.labels.add_label_version(
                    LabelVersion(
                        p,
                        Source.MODEL,
                        _stand_in_prediction(truth[p], classes.names, r.width, r.height, rng),
                        round=0,
                        model_version="stand-in-000",
                        uncertainty=rng.random(),
                    )
                )
        template = ls.build_template(Path(os.environ.get(ls.TEMPLATE_ENV) or REPO / ".cache" / "ls-template"))
        ls.start_server(ws, template=template)
        try:
            client = connect(ws)
            push(ws, client, reviewers=2)
            profile, slips = profile_named(args.profile), args.slips
            first = simulate(ws, client, count=len(records), noise=slips, seed=args.seed, reviewer=1, profile=profile)
            second = simulate(ws, client, count=len(records), noise=slips, seed=args.seed, reviewer=2, profile=profile)
            LabelStudioQueue(client).pull(ws)  # merges agreeing reviews, sends the others to adjudication
            adjudicator = simulate_adjudication(ws, client, noise=slips, seed=args.seed, profile=profile)
            LabelStudioQueue(client).pull(ws)  # stores the adjudicated labels
            reviews = double_reviews(ws)
            by_reviewer = {
                simulated_reviewer(n): {
                    r.photo: (r.a if r.a.reviewer == simulated_reviewer(n) else r.b) for r in reviews
                }
                for n in (1, 2)
            }
            current = {r.photo: ws.store.labels.current_label(r.photo) for r in reviews}
            settled = [ReviewMeta.from_dict(v.meta).settled if v else None for v in current.values()]
            kinds = [s.kind if s else None for s in settled]
            summary = agreement_summary(ws)
        finally:
            ls.stop_server(ws)
            ws.close()

    photos = len(current)
    rows = [
        (
            f"single review (reviewer {n})",
            {p: v.boxes for p, v in by_reviewer[simulated_reviewer(n)].items()},
            s.lead_time_s,
        )
        for n, s in ((1, first), (2, second))
    ]
    double_s = first.lead_time_s + second.lead_time_s + adjudicator.lead_time_s
    rows.append(("double review + adjudication", {p: v.boxes for p, v in current.items() if v}, double_s))
    print(
        f"{args.images} synthetic photos, {photos} double-reviewed; {args.profile} reviewers, slip rate "
        f"{args.slips:.0%} (adjudicator too); {kinds.count(MERGED)} merged, {kinds.count(ADJUDICATED)} adjudicated, "
        f"{photos - kinds.count(MERGED) - kinds.count(ADJUDICATED)} unsettled"
    )
    for line in agreement_lines(summary)[:1]:
        print(line)
    print()
    print(f"| {'labels':<30} | box F1 | TP | FP | FN | mean IoU | reviewer s | s/photo | extra s vs single |")
    print(f"|{'-' * 32}|-------:|---:|---:|---:|---------:|-----------:|--------:|------------------:|")
    for name, final, seconds in rows:
        f1, tp, fp, fn, mean_iou = _f1(final, truth)
        extra = f"{seconds - first.lead_time_s:+.0f}" if name.startswith("double") else ""
        print(
            f"| {name:<30} | {f1:.4f} | {tp} | {fp} | {fn} | {mean_iou:8.4f} | {seconds:10.0f} | "
            f"{seconds / max(1, photos):7.1f} | {extra:>17} |"
        )
    print(
        f"\nextra seconds of double review: reviewer 2 {second.lead_time_s:.0f} s + adjudicator "
        f"{adjudicator.lead_time_s:.0f} s ({adjudicator.annotated} photos) = "
        f"{second.lead_time_s + adjudicator.lead_time_s:.0f} s, "
        f"{(second.lead_time_s + adjudicator.lead_time_s) / max(1e-9, first.lead_time_s):.2f}x a single review"
    )
    print(f"(benchmark ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
