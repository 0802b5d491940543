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
