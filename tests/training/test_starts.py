"""The start cache: reused when nothing changed, made again when the model, the image size or the recipe
changed; a start's class head stays out of a model scoring other classes; provenance readable from the file."""

from __future__ import annotations

from pathlib import Path

import torch

from training.pretraining.starts import (
    MadeStart,
    StartKey,
    cached_start,
    describe_file,
    read_start,
    transferable,
)


def _maker(calls: list[str], tag: str):
    def make(workdir: Path) -> MadeStart:
        calls.append(tag)
        state = {"model.0.conv.weight": torch.full((2, 2), float(len(calls))), "model.23.cv3.0.2.bias": torch.ones(6)}
        return MadeStart(state, ("sl", "fre"), ("model.23.cv3.0.2.bias",), {"epochs_run": 1})

    return make


def test_an_unchanged_key_reuses_the_start_and_a_changed_model_or_image_size_makes_a_new_one(tmp_path: Path):
    calls: list[str] = []
    key = StartKey("synthetic", "yolo11n.yaml", 320, {"epochs": 10, "photos": 800}, sources="abc")
    first = cached_start(key, _maker(calls, "first"), root=tmp_path)
    again = cached_start(key, _maker(calls, "again"), root=tmp_path)
    assert (first.reused, again.reused) == (False, True)
    assert calls == ["first"], "the cached start was reused, not made again"
    assert torch.equal(torch.load(again.path, weights_only=True)["model.0.conv.weight"], torch.full((2, 2), 1.0))

    for changed in (
        StartKey("synthetic", "yolo11s.yaml", 320, {"epochs": 10, "photos": 800}, sources="abc"),
        StartKey("synthetic", "yolo11n.yaml", 416, {"epochs": 10, "photos": 800}, sources="abc"),
        StartKey("synthetic", "yolo11n.yaml", 320, {"epochs": 11, "photos": 800}, sources="abc"),
        StartKey("synthetic", "yolo11n.yaml", 320, {"epochs": 10, "photos": 800}, sources="changed generator"),
    ):
        made = cached_start(changed, _maker(calls, "new"), root=tmp_path)
        assert not made.reused and made.path != first.path
    assert calls == ["first", "new", "new", "new", "new"]


def test_rebuild_makes_the_start_again(tmp_path: Path):
    calls: list[str] = []
    key = StartKey("photos", "yolo11n.yaml", 128)
    cached_start(key, _maker(calls, "a"), root=tmp_path)
    assert not cached_start(key, _maker(calls, "b"), root=tmp_path, rebuild=True).reused
    assert calls == ["a", "b"]


def test_the_provenance_is_read_back_from_the_start_and_not_from_a_users_file(tmp_path: Path):
    key = StartKey("synthetic", "yolo11n.yaml", 320, {"epochs": 10}, sources="abc", parent="f" * 64)
    start = cached_start(key, _maker([], "x"), root=tmp_path)
    described = describe_file(start.path)
    assert described is not None
    assert (described["kind"], described["imgsz"], described["digest"]) == ("synthetic", 320, key.digest())
    assert described["parent"] == "f" * 64
    assert read_start(start.path) == start.provenance
    users = tmp_path / "mine.pt"
    torch.save({"w": torch.zeros(1)}, users)
    assert describe_file(users) is None


def test_the_class_head_is_left_out_only_for_other_classes(tmp_path: Path):
    start = cached_start(StartKey("synthetic", "yolo11n.yaml", 64), _maker([], "x"), root=tmp_path)
    state = torch.load(start.path, weights_only=True)
    same = transferable(state, start.provenance, ("sl", "fre"))
    other = transferable(state, start.provenance, ("acne", "mole"))
    assert set(same) == set(state)
    assert set(other) == set(state) - {"model.23.cv3.0.2.bias"}
    assert set(transferable(state, None, ("acne",))) == set(state), "a user's file is transferred as it is"
