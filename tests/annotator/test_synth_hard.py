"""The named synthetic worlds: the hard preset's photos hold what the easy ones lack (lesion-free faces,
melasma with Hori's nevus, confounders that are never boxed, Fitzpatrick I-VI, blur, confusable colours),
its truth stays exact, and the default preset draws what it always drew."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from annotator.classes import CLASS_NAMES
from annotator.cli import app
from annotator.errors import ConfigError
from annotator.formats.voc import VocAnnotation, read_voc
from annotator.synthetic import (
    DEFAULT_WORLD,
    HARD_WORLD,
    PRESETS,
    Confounders,
    SynthSummary,
    World,
    generate,
    preset_world,
)
from annotator.synthetic.lesions import shared_pigment

PHOTOS = 60


@pytest.fixture(scope="module")
def hard(tmp_path_factory) -> SynthSummary:
    return generate(tmp_path_factory.mktemp("hard") / "out", images=PHOTOS, seed=0, world=PRESETS["hard"])


def _truths(out: Path) -> dict[str, VocAnnotation]:
    return {xml.stem: read_voc(xml) for xml in sorted((out / "truth").glob("*.xml"))}


def _labels(annotation: VocAnnotation) -> set[str]:
    return {o.name for o in annotation.objects}


def _boxes(out: Path) -> dict[str, list[tuple]]:
    return {stem: [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in t.objects] for stem, t in _truths(out).items()}


def _pixels(out: Path, stem: str) -> np.ndarray:
    with Image.open(out / "images" / f"{stem}.jpg") as photo:
        return np.asarray(ImageOps.exif_transpose(photo).convert("RGB"), dtype=np.float32)


def test_the_presets_are_the_default_and_the_hard_world():
    assert PRESETS["default"] is DEFAULT_WORLD == World()
    assert PRESETS["hard"] is HARD_WORLD == preset_world("hard")
    with pytest.raises(ConfigError, match="unknown preset 'easy'; choose one of default, hard"):
        preset_world("easy")


def test_at_least_a_tenth_of_the_hard_faces_are_lesion_free_and_still_written(hard):
    truths = _truths(hard.out)
    empty = [stem for stem, truth in truths.items() if not truth.objects]
    assert len(truths) == PHOTOS and (hard.out / "images").is_dir()
    assert len(empty) == hard.lesion_free >= PHOTOS // 10
    for stem in empty:
        assert (hard.out / "images" / f"{stem}.jpg").is_file()
    labelled_empty = [stem for stem in empty if (hard.out / "labels" / f"{stem}.xml").is_file()]
    assert labelled_empty, "a lesion-free face in the seed set is labelled too, with no objects"
    assert all(not read_voc(hard.out / "labels" / f"{stem}.xml").objects for stem in labelled_empty)


def test_some_hard_faces_show_melasma_and_hori_nevus_together(hard):
    both = [stem for stem, truth in _truths(hard.out).items() if {"mel", "hori"} <= _labels(truth)]
    assert len(both) >= 3


def test_every_class_appears_in_the_hard_world_and_nothing_else(hard):
    labels = set().union(*(_labels(truth) for truth in _truths(hard.out).values()))
    assert labels == set(CLASS_NAMES)


def test_hard_truth_boxes_lie_inside_the_displayed_photo(hard):
    for stem, truth in _truths(hard.out).items():
        height, width = _pixels(hard.out, stem).shape[:2]
        assert (truth.width, truth.height) == (width, height)
        for o in truth.objects:
            assert 1 <= o.xmin < o.xmax <= width and 1 <= o.ymin < o.ymax <= height, (stem, o)


def test_fitzpatrick_types_one_to_six_all_appear(hard):
    assert set(hard.photos_by_skin_type) == {1, 2, 3, 4, 5, 6}
    assert all(count > 0 for count in hard.photos_by_skin_type.values()), hard.photos_by_skin_type
    assert sum(hard.photos_by_skin_type.values()) == PHOTOS


def test_the_default_world_keeps_to_fitzpatrick_three_and_four(tmp_path):
    summary = generate(tmp_path / "out", images=12, seed=0)
    assert summary.photos_by_skin_type[3] + summary.photos_by_skin_type[4] == 12
    assert summary.lesion_free == summary.blurred == sum(summary.confounders_by_kind.values()) == 0


def test_confounders_are_drawn_but_never_in_the_truth(hard, tmp_path):
    """The same world without confounders: the same boxes, other pixels (the marks use their own stream)."""
    assert all(count > 0 for count in hard.confounders_by_kind.values()), hard.confounders_by_kind
    bare = generate(
        tmp_path / "bare", images=PHOTOS, seed=0, world=dataclasses.replace(HARD_WORLD, confounders=Confounders())
    )
    assert sum(bare.confounders_by_kind.values()) == 0
    assert _boxes(bare.out) == _boxes(hard.out)
    changed = [
        stem for stem in _truths(hard.out) if not np.array_equal(_pixels(hard.out, stem), _pixels(bare.out, stem))
    ]
    assert len(changed) >= PHOTOS // 2
    assert any(not _truths(hard.out)[stem].objects for stem in changed), "a lesion-free face shows marks, no box"


def test_some_hard_photos_are_blurred(hard):
    assert 0 < hard.blurred < PHOTOS


def test_confusable_classes_share_one_colour_distribution():
    """Melasma and Hori's nevus (and freckles and lentigines) draw depth and colour from one distribution."""
    for pair in (("mel", "hori"), ("fre", "sl")):
        for seed in range(20):
            first, second = (shared_pigment(np.random.default_rng(seed), label) for label in pair)
            assert first[0] == second[0] and np.array_equal(first[1], second[1]), pair
    hues = {tuple(shared_pigment(np.random.default_rng(seed), "mel")[1]) for seed in range(20)}
    assert len(hues) == 20, "the shared colour varies from face to face"


def test_the_hard_world_is_reproducible_in_parallel(tmp_path):
    inline = generate(tmp_path / "inline", images=8, seed=4, world=HARD_WORLD)
    parallel = generate(tmp_path / "parallel", images=8, seed=4, world=HARD_WORLD, workers=2)
    for photo in sorted((inline.out / "images").iterdir()):
        assert photo.read_bytes() == (parallel.out / "images" / photo.name).read_bytes()
    assert parallel == SynthSummary(**{**inline.__dict__, "out": parallel.out})


# The default world's seed-0 set of 40 photos (half labelled) as the renderer drew it before the hard world
# came: its counts and a digest of every truth box. (The photos' bytes were checked the same, file by file.)
_DEFAULT_TRUTH_SHA256 = "23c1f25415b1f617efa4456a3e0a0fce740595f6b172d84780bed3da5bb25f39"
_DEFAULT_SUMMARY = {
    "phone": 9,
    "rotated": 2,
    "labelled": 20,
    "boxes_by_class": {"sl": 19, "fre": 20, "mel": 27, "caf": 5, "ota": 10, "hori": 14},
    "photos_by_class": {"sl": 8, "fre": 10, "mel": 12, "caf": 5, "ota": 10, "hori": 7},
}


def test_the_default_preset_draws_what_it_always_drew(tmp_path):
    summary = generate(tmp_path / "out", images=40, labelled_fraction=0.5, seed=0, world=PRESETS["default"])
    assert {key: getattr(summary, key) for key in _DEFAULT_SUMMARY} == _DEFAULT_SUMMARY
    lines = [
        f"{stem} {truth.width}x{truth.height} "
        + " ".join(f"{o.name}:{o.xmin},{o.ymin},{o.xmax},{o.ymax}" for o in truth.objects)
        for stem, truth in _truths(summary.out).items()
    ]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == _DEFAULT_TRUTH_SHA256


def test_synth_preset_hard_from_the_command_line(tmp_path):
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "data"), "-n", "6", "--preset", "hard", "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["images"] == 6
    refused = CliRunner().invoke(app, ["synth", str(tmp_path / "other"), "-n", "2", "--preset", "easy"])
    assert refused.exit_code != 0 and "unknown preset 'easy'" in refused.stderr
    assert not (tmp_path / "other" / "images").exists()
