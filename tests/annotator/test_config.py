"""annotator.config: annotator.toml round-trips, a key left out keeps Config's default, a bad value is named."""

from __future__ import annotations

import pytest

from annotator.config import CONFIG_NAME, Config, load_config, save_config
from annotator.errors import ConfigError


def test_a_saved_config_loads_back_equal(tmp_path):
    cfg = Config(
        images=tmp_path / "images",
        labels=tmp_path / "labels",
        classes=("sl", "mel"),
        aliases={"Mel": "mel"},
        thresholds={"mel": 0.3},
        predict_batch=8,
        uncertainty="joint",
        predict_backend="onnx",
        epochs=5,
        pretrained="start.pt",
        pretrained_sha256="ab" * 32,
        test_fraction=0.2,
        label_studio_url="http://127.0.0.1:8080",
        adjudicate_below_f1=0.9,
        queue_order="random",
    )
    save_config(tmp_path, cfg)
    assert load_config(tmp_path) == cfg


def test_a_file_naming_only_the_photos_takes_every_default_from_config(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(f'[workspace]\nimages = "{tmp_path}"\n')
    assert load_config(tmp_path) == Config(images=tmp_path)


@pytest.mark.parametrize(
    ("table", "key"),
    [("predict", "uncertainty"), ("predict", "backend"), ("predict", "decode"), ("review", "queue_order")],
)
def test_an_unknown_choice_is_refused_naming_the_setting(tmp_path, table, key):
    (tmp_path / CONFIG_NAME).write_text(f'[workspace]\nimages = "{tmp_path}"\n[{table}]\n{key} = "nope"\n')
    with pytest.raises(ConfigError, match=rf"\[{table}\] {key} = 'nope' is unknown; choose one of"):
        load_config(tmp_path)


def test_a_value_of_the_wrong_type_is_a_config_error(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(f'[workspace]\nimages = "{tmp_path}"\n[train]\nepochs = "many"\n')
    with pytest.raises(ConfigError, match="wrong type"):
        load_config(tmp_path)
