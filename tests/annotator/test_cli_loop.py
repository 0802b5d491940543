"""The loop's commands as a user types them: ranged numeric options, `bootstrap` refusing a finished
round, `retrain --no-queue --model`, `--force`, and `benchmark` on a workspace no round has touched."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.rounds import Stage
from annotator.store import Workspace


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "option, value", [("--epochs", "-1"), ("--epochs", "0"), ("--imgsz", "0"), ("--batch", "0"), ("--workers", "-2")]
)
def test_a_numeric_option_out_of_range_is_one_line_and_nothing_runs(make_workspace, option, value):
    ws = make_workspace(images=12, labelled=1.0)
    root = ws.root
    ws.close()
    result = _invoke("bootstrap", "-w", str(root), option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
    assert not (root / "rounds").exists(), "a refused option must not start a round"


def test_retrain_round_zero_is_refused_by_the_option_range(make_workspace):
    ws = make_workspace(images=12, labelled=1.0)
    root = ws.root
    ws.close()
    result = _invoke("retrain", "--round", "0", "-w", str(root), "--no-queue")
    assert result.exit_code == 2 and "Invalid value for '--round'" in result.output


@pytest.mark.slow
def test_bootstrap_then_retrain_without_queue_from_a_named_model_and_force(make_workspace):
    ws = make_workspace(images=24, labelled=0.6, seed=5)
    root = ws.root
    ws.close()
    tiny = ["--epochs", "1", "--imgsz", "64", "--batch", "8"]

    first = _invoke("bootstrap", "-w", str(root), *tiny, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["round"] == 0
    again = _invoke("bootstrap", "-w", str(root), *tiny)
    assert again.exit_code == 1 and "round 0 is already done" in again.stderr and "--force" in again.stderr

    retrain = _invoke(
        "retrain", "--round", "1", "-w", str(root), "--no-queue", "--model", "yolo11n.yaml", *tiny, "--json"
    )
    assert retrain.exit_code == 0, retrain.output
    out = json.loads(retrain.stdout)
    assert out["model"] == "yolo11n.yaml" and out["push"] is None and out["pull"] is None
    args = json.loads((root / "rounds" / "001" / "train_args.json").read_text())
    assert args["model"] == "yolo11n.yaml", "--model replaces round 0's weights as the starting point"

    refused = _invoke("retrain", "--round", "1", "-w", str(root), "--no-queue", *tiny)
    assert refused.exit_code == 1 and "--force" in refused.stderr
    forced = _invoke("retrain", "--round", "1", "-w", str(root), "--no-queue", "--force", *tiny, "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["attempt"] == 1
    args = json.loads((root / "rounds" / "001-attempt1" / "train_args.json").read_text())
    assert args["model"].endswith("rounds/000/model.pt"), "without --model a round starts from round N-1's weights"
    assert (root / "rounds" / "001" / "model.pt").exists(), "the forced attempt keeps the old one"
    with Workspace.open(root) as ws:
        assert [(r.round_no, r.attempt, r.stage) for r in ws.store.rounds.rounds()] == [
            (0, 0, Stage.DONE),
            (1, 1, Stage.DONE),
        ]


@pytest.mark.slow
def test_benchmark_runs_on_a_fully_hand_labelled_workspace_without_a_bootstrap(make_workspace, tmp_path):
    """The study's own case: every photo labelled by hand, no round trained; the splits are made on demand."""
    ws = make_workspace(images=30, labelled=1.0, seed=6, test_fraction=0.3)
    root = ws.root
    assert ws.store.labels.splits() == {}
    ws.close()
    result = _invoke(
        "benchmark",
        "-w",
        str(root),
        "--models",
        "yolo11n",
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--batch",
        "8",
        "--resamples",
        "0",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "bench"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split_sizes"]["test"] == 9
    with Workspace.open(root) as ws:
        assert sum(1 for s in ws.store.labels.splits().values() if s == "test") == 9


def test_a_missing_pretrained_checkpoint_is_one_line_naming_it(make_workspace, tmp_path):
    ws = make_workspace(images=12, labelled=1.0)
    root = ws.root
    ws.close()
    missing = tmp_path / "imagenet-yolo11n-cls.pt"
    result = _invoke("bootstrap", "-w", str(root), "--pretrained", str(missing), "--epochs", "1", "--imgsz", "64")
    assert result.exit_code == 1
    assert str(missing) in result.stderr and "nothing is" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
def test_bootstrap_starts_from_a_pretrained_checkpoint_and_records_it(make_workspace, tmp_path, monkeypatch):
    """The study pre-trained before training on faces: `--pretrained` names the file, relative to where the user is."""
    import hashlib

    from ultralytics import YOLO

    ws = make_workspace(images=20, labelled=1.0, seed=8)
    root = ws.root
    ws.close()
    YOLO("yolo11n.yaml").save(str(tmp_path / "start.pt"))
    monkeypatch.chdir(tmp_path)
    result = _invoke("bootstrap", "-w", str(root), "--pretrained", "start.pt", "--epochs", "1", "--imgsz", "64")
    assert result.exit_code == 0, result.output
    with Workspace.open(root) as ws:
        record = ws.store.rounds.round_record(0)
        pretrained = record.trained.pretrained if record and record.trained else None
    assert pretrained is not None
    assert pretrained["name"] == "start.pt" and pretrained["tensors"] > 0
    assert pretrained["sha256"] == hashlib.sha256((tmp_path / "start.pt").read_bytes()).hexdigest()


def test_benchmark_flags_are_checked_before_the_workspace_is_opened(tmp_path):
    """A wrong profile or start names its flag, and nothing trains."""
    result = _invoke("benchmark", "-w", str(tmp_path / "none"), "--profile", "tpu-huge")
    assert result.exit_code != 0 and "--profile: unknown profile 'tpu-huge'" in result.output
    result = _invoke("benchmark", "-w", str(tmp_path / "none"), "--profile", "cpu-small", "--pretrained", "ssd300=x.pt")
    assert result.exit_code != 0 and "--pretrained: 'ssd300=x.pt': ssd300 is not among the models" in result.output
