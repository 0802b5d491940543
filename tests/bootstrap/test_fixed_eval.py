"""The fixed evaluation set: drawn once from the unlabelled pool, kept out of the queue, and scored with every
round's predictions on the same photos by a simulated reviewer."""

from __future__ import annotations

import pytest

from annotator.config import Config
from annotator.formats.voc import write_voc
from annotator.store import Workspace
from annotator.types import EVAL_SPLIT, Box, ImageRecord, LabelVersion, Source
from bootstrap.fixed_eval import fixed_set, score_round
from bootstrap.rounds import ensure_splits
from review_queue.reviewer import CAREFUL

LESION = Box("mel", 10, 10, 40, 40)


def _workspace(tmp_path, *, eval_size: int) -> Workspace:
    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images", eval_size=eval_size))
    for i in range(12):
        ws.store.labels.add_image(ImageRecord(path=f"p{i:02d}.jpg", sha256=str(i), width=100, height=100))
    for i in range(5):  # hand-labelled: the rest is the pool
        ws.store.labels.add_label_version(LabelVersion(f"p{i:02d}.jpg", Source.MANUAL, (LESION,)))
    return ws


def test_the_fixed_set_is_drawn_once_from_the_unlabelled_pool(tmp_path):
    ws = _workspace(tmp_path, eval_size=4)
    ensure_splits(ws)
    chosen = fixed_set(ws)
    assert len(chosen) == 4 and all(int(p[1:3]) >= 5 for p in chosen), chosen
    ws.store.labels.add_label_version(
        LabelVersion("p11.jpg", Source.MODEL, (LESION,), round=0, model_version="round-000")
    )
    ensure_splits(ws)
    assert fixed_set(ws) == chosen, "drawn once, when the splits are fixed"
    assert all(split != EVAL_SPLIT for p, split in ws.store.labels.splits().items() if int(p[1:3]) < 5)
    ws.close()


def test_a_round_is_scored_on_the_fixed_set_with_its_own_predictions(tmp_path):
    ws = _workspace(tmp_path, eval_size=3)
    ensure_splits(ws)
    truth_dir = tmp_path / "truth"
    for path in fixed_set(ws):
        write_voc(truth_dir / path.replace(".jpg", ".xml"), filename=path, path=path, width=100, height=100,
                  depth=3, boxes=(LESION,))  # fmt: skip
    right, relabelled, empty = fixed_set(ws)
    predictions = {right: ((Box("mel", 10, 10, 40, 40, score=0.9),), 0.1), relabelled: ((Box("hori", 10, 10, 40, 40,
                   score=0.5),), 0.6), empty: ((), 0.9)}  # fmt: skip
    for path, (boxes, uncertainty) in predictions.items():
        version = LabelVersion(path, Source.MODEL, boxes, round=0, model_version="round-000", uncertainty=uncertainty)
        ws.store.labels.add_label_version(version)
    ws.store.labels.add_label_version(LabelVersion(right, Source.MODEL, (), round=1, model_version="round-001"))
    scored = score_round(ws, 0, truth_dir=truth_dir, profile=CAREFUL)
    assert scored is not None and scored.photos == 3 and scored.changed_photos == 2
    assert scored.correction_rate == pytest.approx(2 / 3)  # relabelled + added over 2 predicted + 1 added
    assert scored.auroc == pytest.approx(1.0), "the two changed photos were the least certain"
    assert scored.reviewed_f1.f1 == pytest.approx(1.0) and scored.scratch_f1.f1 == pytest.approx(1.0)
    assert set(scored.reviewed_f1_by_class) == {"mel"}, "the relabelled hori box was put right: no hori left"
    assert scored.reviewed_f1_by_class["mel"] == scored.reviewed_f1, "one class: its F1 is the photos' F1"
    assert scored.scratch_f1_by_class["mel"].tp == scored.scratch_f1.tp == 3
    assert scored.reviewer_seconds < scored.scratch_seconds
    half, double = scored.sensitivity()["draw"]
    assert half > scored.ratio > double, "drawing weighs more on scratch's side: dearer drawing favours the model"
    assert scored.sensitivity()["look"][0] == pytest.approx(
        (scored.photos * scored.reviewer_seconds - 1.5 * scored.photos)
        / (scored.photos * scored.scratch_seconds - 1.5 * scored.photos)
    )
    assert score_round(ws, 1, truth_dir=truth_dir, profile=CAREFUL).changed_photos == 1, "round 1's own predictions"
    assert score_round(ws, 2, truth_dir=truth_dir, profile=CAREFUL) is None
    ws.close()
