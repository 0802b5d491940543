"""Tests that catch a loop that does not learn (slow: they train a real yolo11n on the CPU, ~2 CPU minutes in all).

On an easy synthetic set whose labels travel the real path (labelImg VOC -> ingest -> store -> training
view), round 0 must reach a stated mAP50 on its own training photos, scored against the store's labels, and
round N, warm-started from round N-1's weights for one epoch with the recipe's fine-tune arguments, must keep
it. A training view with a wrong class index or coordinate, a trainer that rebuilds the network from scratch
(loses round N-1, or the pretrained weights), or a fine-tune that throws the previous round away fails one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from annotator.store import Workspace
from tests.training.learning_kit import easy_workspace, map50_on
from training.dataset import build_training_view
from training.detectors import make_detector
from training.detectors.base import Detector, TrainingView, TrainSettings
from training.detectors.ultralytics import UltralyticsDetector, cpu_threads

pytestmark = pytest.mark.slow

IMGSZ = 128
ROUND0_EPOCHS = 40  # 36 photos at batch 8: 200 optimizer steps with the recipe (one a batch)
MAP50_FLOOR = 0.60  # round 0's mAP50 on its own training photos (measured 0.86; a broken view scores ~0)
WARM_TOLERANCE = 0.10  # a one-epoch warm start may lose at most this much of round N-1's mAP50


def _settings(epochs: int, **extra) -> TrainSettings:
    return TrainSettings(epochs=epochs, imgsz=IMGSZ, batch=8, device="cpu", workers=0, seed=0, extra=extra)


@dataclass
class EasyRounds:
    ws: Workspace
    round0_view: TrainingView  # 36 train photos, 12 val
    round1_view: TrainingView  # round 0's, plus 12 newly reviewed train photos
    round0_train: list[str]
    round0: Detector
    round0_weights: Path
    round0_map50: float


@pytest.fixture(scope="module")
def easy(tmp_path_factory) -> Iterator[EasyRounds]:
    root = tmp_path_factory.mktemp("easy-rounds")
    ws = easy_workspace(root, 60)
    labels = ws.store.labels.current_labels()
    photos = sorted(labels)
    round0 = {p: "val" if i % 4 == 3 else "train" for i, p in enumerate(photos[:48])}
    round1 = {**round0, **dict.fromkeys(photos[48:], "train")}
    view0 = build_training_view(ws, root / "view0", round0, labels)
    view1 = build_training_view(ws, root / "view1", round1, labels)
    detector = make_detector("yolo11n.yaml", ws.config.classes)
    detector.train(view0, _settings(ROUND0_EPOCHS), root / "round0")
    weights = detector.save(root / "round0.pt")
    train = [p for p, s in round0.items() if s == "train"]
    yield EasyRounds(ws, view0, view1, train, detector, weights, map50_on(detector, ws, train, imgsz=IMGSZ))
    ws.close()


def test_round_zero_finds_the_lesions_of_its_own_training_photos(easy: EasyRounds):
    assert easy.round0_map50 >= MAP50_FLOOR


def test_a_one_epoch_warm_start_keeps_the_previous_rounds_accuracy(easy: EasyRounds, tmp_path: Path):
    warm = make_detector(str(easy.round0_weights), easy.ws.config.classes)
    assert isinstance(warm, UltralyticsDetector) and warm.warm_start
    warm.train(easy.round1_view, _settings(1), tmp_path / "round1")
    moved = warm.model.model.state_dict()["model.0.conv.weight"]
    assert not torch.equal(moved, easy.round0.model.model.state_dict()["model.0.conv.weight"])  # it did train
    assert map50_on(warm, easy.ws, easy.round0_train, imgsz=IMGSZ) >= easy.round0_map50 - WARM_TOLERANCE


def test_training_starts_from_the_transferred_pretrained_weights(easy: EasyRounds, tmp_path: Path):
    # round 0's weights as the "pretrained" checkpoint; lr0 = 0 so one epoch moves no weight: what the
    # trained model holds is what training started from (Ultralytics would otherwise rebuild the YAML's network)
    detector = UltralyticsDetector(easy.ws.config.classes, "yolo11n.yaml", pretrained=easy.round0_weights)
    detector.train(easy.round0_view, _settings(1, optimizer="AdamW", lr0=0.0), tmp_path / "start")
    source = easy.round0.model.model.state_dict()
    trained = detector.model.model.float().state_dict()
    assert torch.equal(trained["model.0.conv.weight"], source["model.0.conv.weight"].float())
    assert map50_on(detector, easy.ws, easy.round0_train, imgsz=IMGSZ) >= MAP50_FLOOR - WARM_TOLERANCE


def test_cpu_training_runs_on_the_threads_asked_for_and_gives_the_count_back(easy: EasyRounds, tmp_path: Path):
    # Ultralytics would train on min(8, cores - 1) threads: one on a 2-core machine
    seen: list[int] = []
    detector = make_detector("yolo11n.yaml", easy.ws.config.classes)
    assert isinstance(detector, UltralyticsDetector)
    detector.model.add_callback("on_train_epoch_end", lambda trainer: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    settings = TrainSettings(epochs=1, imgsz=IMGSZ, batch=8, device="cpu", workers=0, seed=0, threads=3)
    detector.train(easy.round0_view, settings, tmp_path / "threads")
    assert seen == [3]
    assert detector.train_args["threads"] == 3  # recorded with the round's train arguments
    assert torch.get_num_threads() == before


def test_cpu_training_uses_every_core_the_process_may_run_on_unless_told():
    assert cpu_threads(None) == len(os.sched_getaffinity(0))
    assert cpu_threads(2) == 2 and cpu_threads(0) == 1
