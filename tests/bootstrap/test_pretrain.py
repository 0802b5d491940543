"""`annotator pretrain`: a tiny synthetic start really trained, transferred into a round-0 model tensor for tensor,
named in the round's provenance; cached (a second call makes nothing) and refused for trained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from annotator.errors import ConfigError
from bootstrap.pretrain import PretrainSettings, StartKind, pretrain, unlabelled_training_photos
from bootstrap.rounds import RoundSettings, ensure_splits, run_round
from training.detectors import make_detector
from training.pretraining.selfsupervised import SelfSupervisedSettings
from training.pretraining.synthetic import SyntheticSettings

TINY_SYNTHETIC = SyntheticSettings(photos=12, epochs=1, batch=4, workers=1)
TINY_PHOTOS = SelfSupervisedSettings(imgsz=64, epochs=1, batch=4)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_synthetic_start_is_transferred_as_reported_and_named_in_round_zero(make_workspace, cache: Path):
    ws = make_workspace(images=24, labelled=0.75, imgsz=64, test_size=4)
    settings = PretrainSettings(kind=StartKind.SYNTHETIC, model="yolo11n.yaml", synthetic=TINY_SYNTHETIC,
                                device="cpu")  # fmt: skip
    result = pretrain(ws, settings, use=True)
    assert result.start.path.is_relative_to(cache) and not result.start.reused

    state = torch.load(result.start.path, weights_only=True)
    detector = make_detector("yolo11n.yaml", ws.config.classes, pretrained=result.start.path)
    own = detector.model.model.state_dict()  # type: ignore[attr-defined]
    equal = [k for k, v in state.items() if k in own and torch.equal(own[k].float(), v.float())]
    assert detector.pretrained is not None and detector.pretrained.tensors == len(equal) == len(state)

    from annotator.store import Workspace

    ws.close()
    ws = Workspace.open(ws.root, write=True)  # --use wrote [train] pretrained into annotator.toml
    assert ws.config.pretrained == str(result.start.path)
    run_round(ws, 0, RoundSettings.from_config(ws.config, 0, model="yolo11n.yaml", epochs=1, imgsz=64, batch=8,
                                                device="cpu"))  # fmt: skip
    record = ws.store.rounds.round_record(0)
    assert record is not None and record.trained is not None
    provenance = record.trained.pretrained
    assert provenance["tensors"] == len(state) and provenance["start"]["kind"] == "synthetic"
    assert provenance["start"]["recipe"]["photos"] == 12
    assert pretrain(ws, settings).start.reused, "the second call reuses the cached start"
    ws.close()


def test_self_supervision_never_sees_the_test_split_or_the_fixed_set(make_workspace, cache: Path):
    ws = make_workspace(images=30, labelled=0.5, test_size=3, eval_size=4)
    splits = ensure_splits(ws)
    seen = {p.name for p in unlabelled_training_photos(ws)}
    held = {Path(p).name for p, s in splits.items() if s in ("test", "eval")}
    assert {s for s in splits.values()} >= {"test", "eval"}
    assert not seen & held
    assert seen == {r.path for r in ws.store.labels.images()} - held, "every other photo, labelled or not"
    result = pretrain(ws, PretrainSettings(kind=StartKind.PHOTOS, model="yolo11n.yaml", photos=TINY_PHOTOS))
    assert result.start.provenance.key.kind == "photos" and result.start.provenance.classes is None
    ws.close()


def test_a_start_is_made_for_a_network_built_from_a_yaml_only(make_workspace, cache: Path, tmp_path: Path):
    ws = make_workspace(images=12, labelled=0.5)
    weights = tmp_path / "trained.pt"
    weights.write_bytes(b"not really weights")
    with pytest.raises(ConfigError, match="YAML"):
        pretrain(ws, PretrainSettings(model=str(weights)))
    ws.close()


def test_a_checkpoint_whose_sha256_is_not_the_one_noted_is_refused_before_training(make_workspace, tmp_path: Path):
    from annotator.errors import TrainingError
    from bootstrap.rounds import _starting_detector

    ws = make_workspace(images=12, labelled=0.5)
    checkpoint = tmp_path / "yolo11n.pt"
    torch.save(make_detector("yolo11n.yaml", ws.config.classes).model.model.state_dict(), checkpoint)  # type: ignore[attr-defined]
    noted = RoundSettings(model="yolo11n.yaml", pretrained=str(checkpoint), pretrained_sha256="0" * 64)
    with pytest.raises(TrainingError, match="sha256 is [0-9a-f]{64}, but pretrained_sha256"):
        _starting_detector(ws, 0, "yolo11n.yaml", noted)
    from training.detectors.pretrained import sha256_of

    right = RoundSettings(model="yolo11n.yaml", pretrained=str(checkpoint), pretrained_sha256=sha256_of(checkpoint))
    detector, origin = _starting_detector(ws, 0, "yolo11n.yaml", right)
    assert origin["pretrained"]["sha256"] == sha256_of(checkpoint) and detector.pretrained is not None
    cfg = ws.config.with_(pretrained=str(checkpoint), pretrained_sha256="0" * 64)
    assert RoundSettings.from_config(cfg, 0).pretrained_sha256 == "0" * 64
    assert RoundSettings.from_config(cfg, 0, pretrained=str(tmp_path / "other.pt")).pretrained_sha256 is None
    ws.close()


def test_the_cli_makes_a_start_uses_it_and_refuses_an_unknown_kind_in_one_line(make_workspace, cache: Path):
    from tests.annotator.test_cli import assert_one_error_line, cli, cli_json

    ws = make_workspace(images=12, labelled=0.5, imgsz=64)
    root = ws.root
    ws.close()
    out = cli_json("pretrain", "synthetic", "-w", str(root), "--synthetic-photos", "10", "--synthetic-epochs", "1",
                   "--device", "cpu", "--use")  # fmt: skip
    assert out["used"] and out["provenance"]["key"]["kind"] == "synthetic" and Path(out["path"]).is_file()
    toml = (root / "annotator.toml").read_text()
    assert f'pretrained = "{out["path"]}"' in toml and "pretrained_sha256 = " in toml
    wrong = cli("pretrain", "imagenet", "-w", str(root), code=2)
    assert_one_error_line(wrong.stderr, "unknown start 'imagenet'", "synthetic, photos, both")
