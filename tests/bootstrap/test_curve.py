"""The learning curve and the round report print honest figures: every mAP50 with its interval and
the split's size, the warning when the split cannot compare rounds, per-class precision n/a when a
class was never predicted, and reviewer against scratch effort on the same photos by one model."""

from __future__ import annotations

import pytest
from rich.console import Console

from annotator.config import Config
from annotator.rounds import RoundRecord, Stage, TrainedRound
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from bootstrap.curve import curve_table, learning_curve
from bootstrap.evaluation import split_figures
from bootstrap.round_report import calibration_line, per_class_rows, write_round_report
from bootstrap.uncertainty import ScoreCalibration
from review_queue.corrections import diff_regions

CLASSES = ("mel", "fre", "caf", "sl", "hori", "ota")
LESIONS = (Box("mel", 10, 10, 60, 60), Box("fre", 70, 70, 80, 80))


def _workspace(tmp_path) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    for i in range(4):
        ws.store.labels.add_image(ImageRecord(path=f"p{i}.jpg", sha256=str(i), width=100, height=100))
    return ws


def _figures(photos: int):
    truth = [(Box("mel", 10, 10, 50, 50),)] * photos
    pred = [[Box("mel", 10, 10, 50, 50, score=0.9)] if i % 2 else [] for i in range(photos)]
    return split_figures(truth, pred, CLASSES, thresholds={c: 0.25 for c in CLASSES}, n_resamples=200)


def _render(table) -> str:
    console = Console(record=True, width=100)
    console.print(table)
    return console.export_text()


def test_each_round_carries_its_interval_and_the_split_size_and_the_table_warns(tmp_path):
    ws = _workspace(tmp_path)
    figures = _figures(9)
    ws.store.rounds.upsert_round(
        0,
        0,
        stage=Stage.DONE,
        trained=TrainedRound(test={"map50": 0.9, "images": 9}),
        test_split=figures.to_dict(),
    )
    [row] = learning_curve(ws)
    assert row.test_map50 == pytest.approx(figures.map50) and row.test_map50_interval == figures.interval
    assert (row.test_photos, row.test_boxes) == (9, 9)
    text = _render(curve_table([row]))
    assert f"{figures.map50:.2f} [{figures.interval[0]:.2f}-{figures.interval[1]:.2f}]" in text
    assert "test split 9 photos, 9 boxes" in text and "too few to compare" in text
    ws.close()


def test_a_round_without_our_evaluation_shows_the_detectors_figure_without_an_interval(tmp_path):
    ws = _workspace(tmp_path)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE, trained=TrainedRound(test={"map50": 0.25, "images": 50}))
    [row] = learning_curve(ws)
    assert (row.test_map50, row.test_map50_interval, row.test_photos) == (0.25, None, 50)
    ws.close()


def test_the_report_shows_na_for_a_class_never_predicted(tmp_path):
    figures = _figures(4).to_dict()
    head, rows = per_class_rows(RoundRecord(0, 0, Stage.DONE, test_split=figures))
    fre = next(r for r in rows if r[0] == "fre")
    assert fre[head.index("precision")] == "n/a"  # fre has no truth and no prediction
    mel = next(r for r in rows if r[0] == "mel")
    assert mel[head.index("precision")] == "1.000"


def test_the_detectors_precision_at_zero_recall_is_shown_na_not_one(tmp_path):
    # Ultralytics interpolates precision with left=1: a class with no prediction above the chosen
    # confidence reports precision 1.000 at recall 0
    detectors_own = {"per_class": {"caf": {"precision": 1.0, "recall": 0.0, "map50": 0.0}}}
    head, rows = per_class_rows(RoundRecord(0, 0, Stage.DONE, trained=TrainedRound(test=detectors_own)))
    assert rows[0][head.index("precision")] == "n/a"


def test_the_report_prints_the_interval_and_the_warning(tmp_path):
    ws = _workspace(tmp_path)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE, test_split=_figures(9).to_dict())
    record = ws.store.rounds.round_record(0)
    assert record is not None
    path = write_round_report(tmp_path / "report.html", title="Round 0", curve=learning_curve(ws), record=record)
    page = path.read_text()
    assert "95% CI" in page and "on 9 test photos, 9 boxes" in page and "too few to compare rounds" in page
    ws.close()


def test_the_report_says_what_the_review_priority_read_the_scores_through():
    fitted = ScoreCalibration(pooled=(1.2, 0.0), per_class={"mel": (1.9, 0.6)}, boxes=1225)

    def trained(**fields) -> RoundRecord:
        return RoundRecord(0, 0, Stage.DONE, trained=TrainedRound(**fields))

    assert "calibrated on 1225 val boxes" in calibration_line(trained(calibration=fitted.to_dict()))
    assert "own maps for mel" in calibration_line(trained(calibration=fitted.to_dict()))
    assert "reads the raw scores" in calibration_line(trained(calibration=None))
    assert "recorded no score calibration" in calibration_line(trained(calibration_recorded=False))
    assert "recorded no score calibration" in calibration_line(RoundRecord(0, 0, Stage.STARTED))


def test_a_round_whose_predictions_were_empty_costs_the_reviewer_what_scratch_costs(tmp_path):
    ws = _workspace(tmp_path)
    ws.store.rounds.upsert_round(0, 0, stage=Stage.DONE)
    for i in range(3):
        ops = [op.to_dict() for op in diff_regions([], [(f"n{j}", b) for j, b in enumerate(LESIONS)])]
        ws.store.labels.add_label_version(
            LabelVersion(
                image_path=f"p{i}.jpg",
                source=Source.REVIEWED,
                boxes=LESIONS,
                round=0,
                meta={"operations": ops, "lead_time": 40.0},
            )
        )
    [row] = learning_curve(ws)
    assert row.effort_photos == 3 and row.reviewer_seconds == pytest.approx(row.scratch_seconds)
    assert row.operations_per_photo == row.scratch_operations_per_photo == 2
    assert row.correction_rate == 1.0
    ws.close()
