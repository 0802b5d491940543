"""A detector family is one file: a module outside the project that registers a `DetectorFamily` makes its model
a name `annotator benchmark --help` shows, the benchmark's model list holds and `--models` accepts, and one
`make_detector` builds. The shipped families register themselves the same way."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.errors import ConfigError, TrainingError
from training.benchmark import benchmark_models, parse_models
from training.detectors import families, load_detector, make_detector
from training.detectors import registry as registry_module

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")

FAMILY_FILE = '''"""A tiny detector family: torchvision's SSDlite under a name of its own."""

from training.detectors.registry import DetectorFamily, register_family
from training.detectors.torchvision import TorchvisionDetector


class TinySSD(TorchvisionDetector):
    family = "tiny-ssd"


def build(model, classes, *, verbose=False, **options):
    return TinySSD(classes, "ssdlite", verbose=verbose, **options)


register_family(
    DetectorFamily(
        name="tiny-ssd",
        models=("tinyssd",),
        build=build,
        load=TinySSD.load,
        recognises=lambda path: False,  # its files are torchvision's: that family loads them
        checkpoint="a tiny SSD",
    )
)
'''


@pytest.fixture
def family_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package on sys.path holding one family file; the registry and sys.modules are restored afterwards."""
    families()  # the shipped families first, so the snapshot holds them
    monkeypatch.setattr(registry_module, "_FAMILIES", dict(registry_module._FAMILIES))
    package = tmp_path / "extra_families"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(FAMILY_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "extra_families.tiny"
    for name in ("extra_families.tiny", "extra_families"):
        sys.modules.pop(name, None)


def benchmark_help() -> str:
    result = CliRunner().invoke(app, ["benchmark", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_family_registered_from_one_file_appears_in_the_cli_help_and_the_benchmark(family_package: str):
    assert "tinyssd" not in benchmark_models() and "tinyssd" not in benchmark_help()
    with pytest.raises(ConfigError, match="unknown model 'tinyssd'"):
        parse_models("tinyssd")

    importlib.import_module(family_package)

    assert benchmark_models()[-1] == "tinyssd"  # after the shipped families (default order)
    assert "fasterrcnn_resnet50, tinyssd, a local .pt/.yaml path" in benchmark_help()
    assert parse_models("yolo11n,tinyssd") == ["yolo11n", "tinyssd"] and "tinyssd" in parse_models("all")
    detector = make_detector("tinyssd", CLASSES)
    assert detector.family == "tiny-ssd" and detector.arch == "ssdlite"


def test_the_shipped_families_register_themselves_in_list_order():
    assert [f.name for f in families()] == ["ultralytics", "torchvision"]
    assert benchmark_models() == (
        "yolov5nu",
        "yolov8n",
        "yolo11n",
        "rtdetr-l",
        "yolov4",
        "ssdlite",
        "ssd300",
        "fasterrcnn_mobilenet",
        "fasterrcnn_resnet50",
    )


def test_a_model_name_belongs_to_one_family(family_package: str):
    importlib.import_module(family_package)
    taken = registry_module.DetectorFamily(
        name="other", models=("ssdlite",), build=make_detector, load=load_detector, recognises=bool, checkpoint="?"
    )
    with pytest.raises(ValueError, match="'ssdlite'.*belong to 'torchvision'"):
        registry_module.register_family(taken)


def test_a_file_no_family_recognises_names_every_family(tmp_path: Path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="neither an Ultralytics checkpoint nor a torchvision model saved"):
        load_detector(garbage, CLASSES)
