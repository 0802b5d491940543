"""The loop benchmark's reports (benchmarks/seed_summary.py, benchmarks/label_quality.py) on hand-built figures:
the spread across data seeds and its no-gain lines, and item 4's label quality split by class."""

from __future__ import annotations

import json
import statistics

import pytest

from annotator.types import Box
from benchmarks.label_quality import ClassQuality, class_table_lines
from benchmarks.seed_summary import (
    FIGURES,
    RoundFigures,
    SeedFigures,
    gain_lines,
    summarise,
    summary_json,
    summary_lines,
)
from bootstrap.fixed_eval import box_counts, box_counts_by_class
from training.metrics import box_f1, box_f1_by_class


def _seed(seed: int, maps: tuple[float, float], ratios: tuple[float, float], auto: float | None) -> SeedFigures:
    rounds = tuple(
        RoundFigures(round_no=n, test_map50=maps[n], ratio=ratios[n], reviewer_seconds=20.0 - n, scratch_seconds=40.0)
        for n in range(2)
    )
    return SeedFigures(seed=seed, rounds=rounds, final_f1=0.95, auto_accepted_f1=auto)


RECORDS = [
    _seed(7, (0.30, 0.40), (0.70, 0.60), None),
    _seed(8, (0.35, 0.45), (0.60, 0.65), None),
    _seed(9, (0.40, 0.38), (0.65, 0.55), None),
]
FIGURE = {f.key: f for f in FIGURES}


def _row(figure: str, round_no: int | None):
    return next(r for r in summarise(RECORDS) if r.figure.key == figure and r.round_no == round_no)


def test_the_summary_gives_mean_min_max_and_sample_sd_over_seeds():
    spread = _row("test_map50", 1).spread
    assert spread is not None and spread.seeds == 3
    assert spread.mean == pytest.approx((0.40 + 0.45 + 0.38) / 3)
    assert (spread.low, spread.high) == (0.38, 0.45)
    assert spread.sd == pytest.approx(statistics.stdev([0.40, 0.45, 0.38]))
    one = summarise(RECORDS[:1])
    assert next(r for r in one if r.figure.key == "test_map50").spread.sd is None, "one seed has no sample SD"


def test_a_figure_no_seed_measured_prints_none():
    assert _row("auto_accepted_f1", None).describe() == "none"
    assert _row("auroc", 0).describe() == "none"
    line = next(x for x in summary_lines(RECORDS) if x.startswith(FIGURE["auto_accepted_f1"].label))
    assert line.split()[-1] == "none" and "final" in line
    assert "0.950 (0.950-0.950, SD 0.000, 3 seeds)" in _row("final_f1", None).describe()


def test_no_gain_is_said_per_figure_on_every_or_some_seeds():
    lines = gain_lines(RECORDS)
    line = {f.key: next((x for x in lines if x.startswith(f"{f.label}: from round 0")), None) for f in FIGURES}
    assert "no gain on some seeds (1 of 3): seed 9 (0.400 -> 0.380)" in line["test_map50"]
    assert "seed 8 (0.60 -> 0.65)" in line["ratio"], "a ratio gains by falling"
    assert "gained on every seed" in line["reviewer_seconds"]
    assert "not measured on any seed" in line["auroc"]
    flat = [_seed(s, (0.3, 0.3), (0.5, 0.6), None) for s in (1, 2)]
    assert any(x.startswith("test mAP50") and "NO GAIN on every seed (2 of 2)" in x for x in gain_lines(flat))
    assert line["scratch_seconds"] is None and line["final_f1"] is None, "a baseline or a final figure: no gain line"
    noise = [_seed(7, (0.000005, 0.00002), (1.0, 1.0), None)]  # the real-photo loop from random weights
    assert any(x.startswith("test mAP50") and "NO GAIN on every seed" in x for x in gain_lines(noise)), (
        "a gain under the printed digits (0.000 -> 0.000) is no gain"
    )


def test_the_records_and_the_summary_round_trip_through_json():
    stored = json.loads(json.dumps(summary_json(RECORDS)))
    assert [SeedFigures.from_dict(d) for d in stored["seeds"]] == RECORDS
    assert stored["gains"] == gain_lines(RECORDS)
    row = next(r for r in stored["summary"] if r["figure"] == "auto_accepted_f1")
    assert row["spread"] is None and row["round"] is None


def test_per_class_counts_split_one_matching_and_sum_to_the_photo():
    truth = [Box("mel", 0, 0, 10, 10), Box("hori", 20, 20, 40, 40), Box("fre", 50, 50, 52, 52)]
    boxes = [Box("mel", 0, 0, 10, 10), Box("mel", 20, 20, 40, 40), Box("sl", 60, 60, 70, 70)]
    counts = box_counts_by_class(boxes, truth)
    # mel found, hori relabelled as mel (an FP of mel and an FN of hori), fre missed, an sl box with no lesion
    assert counts == {"mel": (1, 1, 0), "hori": (0, 0, 1), "fre": (0, 0, 1), "sl": (0, 1, 0)}
    assert tuple(sum(c[k] for c in counts.values()) for k in range(3)) == box_counts(boxes, truth)
    assert box_counts_by_class([], []) == {}


def test_per_class_f1_resamples_every_class_over_the_same_photos():
    photos = [{"mel": (2, 0, 0)}, {"mel": (1, 0, 1), "fre": (0, 1, 0)}, {}]
    by_class = box_f1_by_class(photos, classes=["mel", "fre", "hori"])
    assert by_class["mel"] == box_f1([(2, 0, 0), (1, 0, 1), (0, 0, 0)])
    assert by_class["fre"].f1 == 0.0 and by_class["fre"].photos == 3
    assert by_class["hori"].f1 is None, "a class nobody drew nor missed has no F1"
    assert list(box_f1_by_class(photos)) == ["fre", "mel"], "default: every class met"
    assert box_f1_by_class([], classes=["mel"])["mel"].describe() == "none"


def test_the_class_table_marks_the_classes_that_miss_a_goal():
    good, worse = box_f1([(19, 0, 1)] * 3), box_f1([(17, 1, 3)] * 3)  # F1 0.974 and 0.883
    rows = [
        ClassQuality("mel", reviewed=good, scratch=good, auto=good, finished=good),
        ClassQuality("hori", reviewed=worse, scratch=good, auto=None, finished=good),
        ClassQuality("fre", reviewed=good, scratch=worse, auto=box_f1([]), finished=worse),
        ClassQuality("sl", reviewed=None, scratch=None, auto=None, finished=None),
    ]
    lines = {line.split()[0]: line for line in class_table_lines(rows, round_no=2)[2:]}
    assert lines["mel"].endswith("met")
    assert "MISSED (i) >= (ii) - 0.01" in lines["hori"] and "none" in lines["hori"], "no auto-accepted photo: none"
    assert "MISSED finished >= 0.95" in lines["fre"] and "(i) >=" not in lines["fre"]
    assert lines["sl"].endswith("not judged")


def test_the_final_set_is_scored_by_provenance_and_the_loop_group_leaves_hand_labels_out(tmp_path):
    from annotator.config import Config
    from annotator.formats.voc import write_voc
    from annotator.store import Workspace
    from annotator.types import ImageRecord, LabelVersion, Source
    from benchmarks.label_quality import Provenance, final_set
    from review_queue.edits import EditKind, EditOp
    from review_queue.review_meta import ReviewMeta

    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    lesion, wrong = Box("mel", 10, 10, 40, 40), Box("hori", 10, 10, 40, 40)
    reviewed = ReviewMeta(operations=(EditOp(EditKind.ACCEPTED, "p0", "mel", "mel"),)).to_dict()
    versions = {"hand.jpg": (Source.MANUAL, (lesion,), {}), "rev.jpg": (Source.REVIEWED, (lesion,), reviewed),
                "auto.jpg": (Source.AUTO_ACCEPTED, (wrong,), {}), "model.jpg": (Source.MODEL, (), {})}  # fmt: skip
    for path, (source, boxes, meta) in versions.items():
        ws.store.labels.add_image(ImageRecord(path=path, sha256=path, width=100, height=100))
        ws.store.labels.add_label_version(LabelVersion(path, source, boxes, meta=meta))
        write_voc(tmp_path / "truth" / path.replace(".jpg", ".xml"), filename=path, path=path, width=100,
                  height=100, depth=3, boxes=(lesion,))  # fmt: skip
    final = final_set(ws, tmp_path / "truth")
    ws.close()
    tally = {group: (f.photos, f.tp, f.fp, f.fn) for group, f in final.overall.items()}
    assert tally[Provenance.ALL] == (4, 2, 1, 2) and tally[Provenance.LOOP] == (3, 1, 1, 2)
    assert tally[Provenance.REVIEWED] == (1, 1, 0, 0) and tally[Provenance.AUTO] == (1, 0, 1, 1)
    assert tally[Provenance.UNREVIEWED] == (1, 0, 0, 1) and final.overall[Provenance.BLIND].describe() == "none"
    assert final.by_class[Provenance.AUTO]["hori"].fp == 1 and final.by_class[Provenance.AUTO]["mel"].fn == 1
