"""run_benchmark on a small synthetic workspace: one Ultralytics and one torchvision model, one
epoch on the CPU, a reader CSV and a device CSV; the report's numbers match pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from annotator.classes import ClassTable
from annotator.errors import ConfigError, InputFileError
from training.benchmark import parse_models, run_benchmark
from training.readers import PhotoNames, read_reader_csv


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory):
    """One benchmark shared by the tests below (training is the slow part)."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.synthetic import generate
    from bootstrap.rounds import ensure_splits

    root = tmp_path_factory.mktemp("bench")
    generate(root / "data", images=36, labelled_fraction=1.0, seed=4)
    ws = Workspace.create(
        root / "ws", Config(images=root / "data" / "images", labels=root / "data" / "labels", test_fraction=0.3)
    )
    ingest(ws, images=ws.config.images, labels=ws.config.labels)
    splits = ensure_splits(ws)
    test = sorted(p for p, s in splits.items() if s == "test")
    truth = ws.store.labels.current_labels()
    # a reader who gets every photo right except the first, where they add a class
    lines = ["photo,reader,classes"]
    for n, p in enumerate(test):
        named = sorted({b.label for b in truth[p].boxes})
        if n == 0:
            named = sorted(set(named) | ({"ota"} if "ota" not in named else {"hori"}))
        lines.append(f"{Path(p).name},DOCTOR A,{'|'.join(named)}")
    (root / "readers.csv").write_text("\n".join(lines) + "\n")
    (root / "devices.csv").write_text(f"path,device\n{test[0]},phone\n{test[1]},dslr\n")
    out = root / "report"
    result = run_benchmark(
        ws,
        ["yolo11n", "ssdlite"],
        out,
        epochs=1,
        imgsz=128,
        batch=8,
        workers=0,
        readers=[root / "readers.csv"],
        device_csv=root / "devices.csv",
        device="cpu",
        n_resamples=200,
    )
    ws.close()
    return result, test, out


@pytest.mark.slow
def test_writes_html_markdown_and_json(benchmark_run):
    result, test, out = benchmark_run
    html = (out / "report.html").read_text()
    markdown = (out / "table1.md").read_text()
    data = json.loads((out / "benchmark.json").read_text())
    assert html.count("data:image/png;base64,") >= 5 and "<script" not in html  # self-contained, figures inline
    for name in ("yolo11n", "ssdlite", "DOCTOR A"):
        assert name in html and name in markdown
    assert "| Accuracy |" in markdown and "Sensitivity" in markdown and "Solar lentigines (sl)" in markdown
    assert [r["name"] for r in data["raters"]] == ["yolo11n", "ssdlite", "DOCTOR A"]
    assert data["test_photos"] == test
    assert any("test split's labels were not audited" in w for w in data["warnings"]), "no label audit ran"


@pytest.mark.slow
def test_models_report_cost_and_scores_on_every_subset(benchmark_run):
    result, test, _ = benchmark_run
    for rater in result.raters[:2]:
        assert rater.error is None, rater.error
        assert rater.parameters > 100_000 and rater.train_seconds > 0 and rater.inference_images_per_second > 0
        assert set(rater.results) == set(result.subset_sizes)
        assert rater.results["all"].image_level.n_photos == len(test)
    assert result.subset_sizes["all"] == len(test)
    assert result.subset_sizes["phone"] >= 1 and result.subset_sizes["dslr"] >= 1


@pytest.mark.slow
def test_reader_is_scored_with_the_accuracy_rule(benchmark_run):
    result, test, _ = benchmark_run
    reader = result.raters[-1]
    assert reader.kind == "reader" and reader.results["all"].image_level.n_correct == len(test) - 1
    assert reader.results["all"].correct.tolist()[0] is False
    assert any(c["a"] == "yolo11n" and c["b"] == "DOCTOR A" for c in result.comparisons)


@pytest.mark.slow
def test_reported_map_equals_pycocotools_on_the_exported_files(benchmark_run):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from training.report import pct

    result, _, out = benchmark_run
    data = json.loads((out / "benchmark.json").read_text())
    markdown = (out / "table1.md").read_text()
    for rater in data["raters"][:2]:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(data["ground_truth_file"])
            predictions = json.loads(Path(rater["predictions_file"]).read_text())
            dt = gt.loadRes(predictions) if predictions else None
            if dt is None:
                continue  # no box at all: nothing for COCOeval to load (the report prints 0)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate(), ev.accumulate(), ev.summarize()
        reported = rater["results"]["all"]["detection"]
        assert reported["map50"] == pytest.approx(ev.stats[1])
        assert reported["map50_95"] == pytest.approx(ev.stats[0])
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {rater['name']} |"))
        assert f"| {pct(ev.stats[1])} | {pct(ev.stats[0])} |" in row


def test_model_names_are_checked_before_any_training(tmp_path):
    assert parse_models("yolo11n, ssdlite") == ["yolo11n", "ssdlite"]
    assert "fasterrcnn_resnet50" in parse_models("all")
    with pytest.raises(ConfigError, match="unknown model"):
        parse_models("yolov9000")
    with pytest.raises(ConfigError, match="not found"):
        parse_models(str(tmp_path / "missing.pt"))


def test_reader_csv_accepts_both_separators_aliases_and_file_names(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("Photo,Reader,Classes\nimages/a.jpg,D1,sl;Melasma\nb.jpg,D1,\nb,D2,hori|ota\nzz.jpg,D1,sl\n")
    readers, warnings = read_reader_csv(path, ClassTable(), PhotoNames(["images/a.jpg", "other/b.jpg"]))
    answers = {r.reader: r.answers for r in readers}
    assert answers["D1"] == {"images/a.jpg": {"sl", "mel"}, "other/b.jpg": frozenset()}
    assert answers["D2"] == {"other/b.jpg": {"hori", "ota"}}
    assert len(warnings) == 1 and "zz.jpg" in warnings[0]


def test_reader_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("photo,reader,classes\na.jpg,D1,sl;wart\n")
    with pytest.raises(InputFileError, match="line 2: 'wart'"):
        read_reader_csv(path, ClassTable(), PhotoNames(["a.jpg"]))
    path.write_text("image,who\n")
    with pytest.raises(InputFileError, match="must name the columns"):
        read_reader_csv(path, ClassTable(), PhotoNames(["a.jpg"]))


def test_yolov4_yaml_builds_with_ultralytics_and_runs_forward():
    import torch

    from training.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    models_dir = Path(__file__).resolve().parents[2] / "training" / "models"
    tiny = YOLO(str(models_dir / "yolov4n-csp.yaml"))  # scale n of yolov4-csp.yaml
    head = tiny.model.model[-1]
    assert type(head).__name__ == "Detect" and head.nc == 6 and head.stride.tolist() == [8, 16, 32]
    kinds = {type(m).__name__ for m in tiny.model.model}
    assert {"BottleneckCSP", "SPP", "Concat", "Upsample"} <= kinds
    tiny.model.eval()
    with torch.no_grad():
        out = tiny.model(torch.zeros(1, 3, 64, 64))
    pred = out[0] if isinstance(out, (tuple, list)) else out
    assert tuple(pred.shape) == (1, 4 + 6, 8 * 8 + 4 * 4 + 2 * 2)  # boxes + 6 class scores per P3/P4/P5 cell
    assert 1_000_000 < sum(p.numel() for p in tiny.model.parameters()) < 5_000_000
    full = YOLO(str(models_dir / "yolov4l-csp.yaml"))  # the paper's size
    assert sum(p.numel() for p in full.model.parameters()) > 50_000_000


# ---- the protocol (issue 24): every family on the same split, image size and stopping rule ----------------------

PROTOCOL_MODELS = ["yolo11n", "fasterrcnn_mobilenet"]  # one Ultralytics, one torchvision family


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory, synth_set):
    """The cpu-small profile on 14 synthetic photos, overridden down to 2 epochs at 64 px on 6 train + val photos."""
    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from bootstrap.rounds import ensure_splits
    from training.benchmark import BenchmarkSettings

    root = tmp_path_factory.mktemp("protocol")
    data = synth_set(14, 1.0, 24)
    ws = Workspace.create(root / "ws", Config(images=data / "images", labels=data / "labels", test_fraction=0.3))
    ingest(ws, images=ws.config.images, labels=ws.config.labels)
    ensure_splits(ws)
    settings = BenchmarkSettings.for_profile(
        "cpu-small", epochs=2, imgsz=64, batch=4, patience=1, budget_minutes=5.0, max_photos=6, n_resamples=0
    )
    result = run_benchmark(ws, PROTOCOL_MODELS, root / "report", settings=settings)
    ws.close()
    return result, root / "report"


@pytest.mark.slow
def test_protocol_gives_every_family_the_same_split_image_size_and_stopping_rule(protocol_run):
    """Read back from each run's recorded arguments (run_args.json, and Ultralytics' own args.yaml)."""
    import yaml

    from training.benchmark import read_run_args

    result, out = protocol_run
    assert all(r.error is None for r in result.raters), [r.error for r in result.raters]
    runs = {name: read_run_args(out, name) for name in PROTOCOL_MODELS}
    assert {runs[n]["family"] for n in PROTOCOL_MODELS} == {"ultralytics", "torchvision"}
    first, second = (runs[n] for n in PROTOCOL_MODELS)
    assert first["applied"]["split"] == second["applied"]["split"]  # the same photos, by digest
    assert first["applied"]["split"]["train"]["photos"] + first["applied"]["split"]["val"]["photos"] == 6
    for run in runs.values():
        applied, stopping = run["applied"], run["stopping"]
        assert (applied["imgsz"], applied["patience"], applied["budget_minutes"], applied["epochs"]) == (64, 1, 5.0, 2)
        assert (stopping["patience"], stopping["budget_minutes"], stopping["ceiling"]) == (1, 5.0, 2)
        assert applied["recipe"] == "reference" and run["protocol"] == first["protocol"]
        assert len(stopping["curve_map50"]) == stopping["epochs_run"] <= 2  # every epoch validated, none past 2
        assert stopping["reason"] in ("patience", "epochs")
        assert (stopping["reason"] == "patience") == (stopping["epochs_run"] - stopping["best_epoch"] >= 1)
    ultralytics_args = yaml.safe_load((out / "runs" / "yolo11n" / "train" / "args.yaml").read_text())
    assert (ultralytics_args["imgsz"], ultralytics_args["patience"], ultralytics_args["epochs"]) == (64, 1, 2)
    assert runs["fasterrcnn_mobilenet"]["applied"]["input_side"] == 64


@pytest.mark.slow
def test_report_names_the_profile_each_stop_reason_and_the_cost(protocol_run):
    result, out = protocol_run
    markdown = (out / "table1.md").read_text()
    assert "Protocol: profile cpu-small" in markdown and "within 5 min per family" in markdown
    for rater in result.raters:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {rater.name} | {rater.family} |"))
        assert f"({rater.stopping.reason.value})" in row and "scratch" in row
    data = json.loads((out / "benchmark.json").read_text())
    assert data["settings"]["profile"] == "cpu-small" and data["settings"]["learned_val_map50"] == 0.05
    assert all(r["stopping"]["curve_map50"] for r in data["raters"])


@pytest.mark.slow
def test_a_family_that_did_not_learn_is_named_not_ranked(protocol_run):
    """Its row says so; it has no Table 1 column, no rank and no McNemar pair."""
    import dataclasses

    from training.benchmark import compare_raters
    from training.report import ranking_rows, render_markdown, table1_rows

    result, _ = protocol_run
    learnt, stuck = (dataclasses.replace(r, learned=n == 0) for n, r in enumerate(result.raters))
    raters = [learnt, stuck]
    judged = dataclasses.replace(result, raters=raters, comparisons=compare_raters(raters))
    markdown = render_markdown(judged)
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {stuck.name} | {stuck.family} |"))
    assert "did not learn in the budget" in row and "not ranked" in row
    assert stuck.name not in table1_rows(judged)[0] and learnt.name in table1_rows(judged)[0]
    assert [r[1] for r in ranking_rows(judged)[1:]] == [learnt.name]
    assert judged.comparisons == []


def test_the_learning_floor_judges_only_runs_under_a_budget(tmp_path):
    from training.benchmark import BenchmarkSettings, learned
    from training.detectors.base import TrainResult
    from training.detectors.stopping import EarlyStop

    def trained(*map50: float) -> TrainResult:
        stop = EarlyStop(ceiling=10, started=0.0)
        for n, v in enumerate(map50, start=1):
            stop.epoch_done(v, v / 2, now=float(n))
        return TrainResult(tmp_path, {}, 1.0, len(map50), stopping=stop.record())

    profile = BenchmarkSettings.for_profile("cpu-small")
    assert learned(trained(0.0, 0.01, 0.03), profile) is False
    assert learned(trained(0.0, 0.2, 0.1), profile) is True  # the best epoch counts
    assert learned(trained(0.0, 0.01), BenchmarkSettings()) is None  # a smoke run is not judged
    assert learned(None, profile) is None


def test_a_profile_sets_the_protocol_and_a_flag_given_overrides_it():
    from training.benchmark import BenchmarkSettings, default_models
    from training.detectors.base import Recipe
    from training.protocol import PROFILES

    cpu = BenchmarkSettings.for_profile("cpu-small", imgsz=512, device=None)
    assert (cpu.imgsz, cpu.patience, cpu.budget_minutes, cpu.recipe) == (512, 10, 15.0, Recipe.REFERENCE)
    assert cpu.device == "cpu" and cpu.max_photos == PROFILES["cpu-small"].max_photos
    assert BenchmarkSettings.for_profile(None) == BenchmarkSettings()  # no profile: the smoke run's defaults
    assert len(default_models("cpu-small")) == 5 and default_models(None) == ["yolo11n", "ssdlite"]
    with pytest.raises(ConfigError, match="unknown profile"):
        BenchmarkSettings.for_profile("tpu-huge")


def test_capped_splits_keep_the_test_split_and_a_seeded_subset_of_train_and_val():
    from training.protocol import capped_splits

    splits = {f"t{i}": "train" for i in range(30)} | {f"v{i}": "val" for i in range(10)} | {"x": "test", "y": "test"}
    capped = capped_splits(splits, 8, seed=3)
    assert [s for s in capped.values()].count("train") == 6 and [s for s in capped.values()].count("val") == 2
    assert {p for p, s in capped.items() if s == "test"} == {"x", "y"}
    assert capped == capped_splits(dict(reversed(list(splits.items()))), 8, seed=3)  # order of the dict is no matter
    assert capped_splits(splits, None) == splits == capped_splits(splits, 100)


def test_pretrained_names_a_model_of_the_run_and_a_file(tmp_path):
    from training.benchmark import parse_pretrained

    weights = tmp_path / "y.pt"
    weights.write_bytes(b"x")
    assert parse_pretrained([f"yolo11n={weights}"], ["yolo11n", "ssdlite"]) == {"yolo11n": str(weights)}
    with pytest.raises(ConfigError, match="MODEL=PATH"):
        parse_pretrained([str(weights)], ["yolo11n"])
    with pytest.raises(ConfigError, match="not among the models"):
        parse_pretrained([f"ssd300={weights}"], ["yolo11n"])
    with pytest.raises(ConfigError, match="not found"):
        parse_pretrained([f"yolo11n={tmp_path / 'missing.pt'}"], ["yolo11n"])


@pytest.mark.slow
def test_readers_added_to_a_finished_benchmark_beside_its_models_as_they_were(protocol_run, tmp_path):
    """Readers who finish after the models: scored beside them without training again; each model's scores,
    stopping record and learning verdict stay what the benchmark wrote, and every ranked pair is compared."""
    import shutil

    from annotator.store import Workspace
    from training.benchmark import add_readers

    result, report = protocol_run
    out = tmp_path / "report"
    shutil.copytree(report, out)
    ws = Workspace.open(report.parent / "ws", write=False)
    truth = ws.store.labels.current_labels()
    lines = ["photo,reader,classes"] + [
        f"{p},DOCTOR A,{'|'.join(sorted({b.label for b in truth[p].boxes}))}" for p in result.test_photos
    ]
    (tmp_path / "reads.csv").write_text("\n".join(lines) + "\n")
    added = add_readers(ws, out, [tmp_path / "reads.csv"])
    ws.close()
    before = {r.name: r for r in result.raters}
    after = {r.name: r for r in added.raters}
    assert list(after) == [*before, "DOCTOR A"]
    for name, run in before.items():
        assert after[name].results["all"].correct.tolist() == run.results["all"].correct.tolist()
        assert after[name].results["all"].image_level == run.results["all"].image_level
        assert (after[name].stopping, after[name].learned, after[name].epochs) == (
            run.stopping,
            run.learned,
            run.epochs,
        )
    assert after["DOCTOR A"].results["all"].image_level.accuracy == 1.0
    ranked = [r.name for r in added.raters if r.ranked and r.kind == "model"]
    pairs = {(c["a"], c["b"]) for c in added.comparisons}
    assert all((m, "DOCTOR A") in pairs for m in ranked)
    markdown = (out / "table1.md").read_text()
    assert "DOCTOR A" in markdown
    if ranked:
        section = markdown.split("## Readers beside the best model")[1].split("##")[0]
        assert "| DOCTOR A | 100.0 (" in section and "McNemar p" in section
    assert json.loads((out / "benchmark.json").read_text())["settings"] == result.settings


def test_no_device_subset_is_printed_as_none():
    from training.report import render_markdown
    from training.results import BenchmarkResult

    result = BenchmarkResult(("sl",), ("a.jpg",), {"all": 1}, {"train": 1}, {}, [], [], [], "gt.json")
    assert "Test photos: 1 (device subsets: none, no photo's device class is known)" in render_markdown(result)
