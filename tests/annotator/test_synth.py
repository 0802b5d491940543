"""Specification of the synthetic PSL photo generator (annotator.synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from annotator.classes import CLASS_NAMES
from annotator.errors import ConfigError
from annotator.formats.voc import VocAnnotation, read_voc
from annotator.images import apply_orientation, inspect_photo
from annotator.synthetic import PHONE_SIZES, SIZES, SynthSummary, World, generate
from annotator.types import DeviceClass

PHOTOS = 60


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> SynthSummary:
    return generate(tmp_path_factory.mktemp("synth") / "out", images=PHOTOS, seed=0)


def _truths(out: Path) -> dict[str, VocAnnotation]:
    return {xml.stem: read_voc(xml) for xml in sorted((out / "truth").glob("*.xml"))}


def _displayed(out: Path, stem: str) -> np.ndarray:
    with Image.open(out / "images" / f"{stem}.jpg") as photo:
        return np.asarray(ImageOps.exif_transpose(photo).convert("RGB"), dtype=np.float32)


def _objects(annotation: VocAnnotation) -> list[tuple]:
    return [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in annotation.objects]


def test_the_same_seed_gives_the_same_photos_and_boxes(tmp_path):
    first = generate(tmp_path / "a", images=24, seed=7)
    second = generate(tmp_path / "b", images=24, seed=7)
    for photo in sorted((first.out / "images").iterdir()):
        assert photo.read_bytes() == (second.out / "images" / photo.name).read_bytes()
    assert {k: _objects(v) for k, v in _truths(first.out).items()} == {
        k: _objects(v) for k, v in _truths(second.out).items()
    }
    assert sorted(p.name for p in (first.out / "labels").iterdir()) == sorted(
        p.name for p in (second.out / "labels").iterdir()
    )


def test_another_seed_gives_other_photos(tmp_path):
    first = generate(tmp_path / "a", images=24, seed=7)
    other = generate(tmp_path / "b", images=24, seed=8)
    same = [
        p.name
        for p in (first.out / "images").iterdir()
        if p.read_bytes() == (other.out / "images" / p.name).read_bytes()
    ]
    assert same == []


def test_parallel_workers_write_what_one_process_writes(tmp_path):
    inline = generate(tmp_path / "inline", images=24, seed=3)
    parallel = generate(tmp_path / "parallel", images=24, seed=3, workers=2)
    for photo in sorted((inline.out / "images").iterdir()):
        assert photo.read_bytes() == (parallel.out / "images" / photo.name).read_bytes()
    assert parallel == SynthSummary(**{**inline.__dict__, "out": parallel.out})


def test_labels_hold_the_labelled_fraction_and_truth_holds_every_photo(dataset):
    assert len(list((dataset.out / "images").glob("*.jpg"))) == PHOTOS
    assert len(list((dataset.out / "truth").glob("*.xml"))) == PHOTOS
    assert len(list((dataset.out / "labels").glob("*.xml"))) == round(PHOTOS * 0.38) == dataset.labelled


def test_labels_are_the_ground_truth_of_their_photo(dataset):
    for label in (dataset.out / "labels").glob("*.xml"):
        truth = read_voc(dataset.out / "truth" / label.name)
        assert _objects(read_voc(label)) == _objects(truth)
        assert (dataset.out / "images" / read_voc(label).filename).is_file()


def test_every_truth_box_is_inside_the_displayed_photo_with_positive_area(dataset):
    for stem, truth in _truths(dataset.out).items():
        height, width = _displayed(dataset.out, stem).shape[:2]
        assert (truth.width, truth.height) == (width, height)
        assert truth.objects, f"{stem} has no lesion"
        for o in truth.objects:  # VOC: 1-based inclusive pixels
            assert 1 <= o.xmin < o.xmax <= width and 1 <= o.ymin < o.ymax <= height, (stem, o)


def test_phone_photos_carry_phone_exif_and_the_rest_camera_exif(dataset):
    devices = [inspect_photo(p).device_class for p in sorted((dataset.out / "images").glob("*.jpg"))]
    assert devices.count(DeviceClass.PHONE) == dataset.phone > 0
    assert devices.count(DeviceClass.DSLR) == PHOTOS - dataset.phone


def test_some_phone_photos_are_stored_rotated_with_orientation_6(dataset):
    infos = [inspect_photo(p) for p in sorted((dataset.out / "images").glob("*.jpg"))]
    rotated = [info for info in infos if info.orientation == 6]
    assert len(rotated) == dataset.rotated > 0
    assert all(info.device_class is DeviceClass.PHONE for info in rotated)


def test_an_orientation_6_photo_displays_at_its_voc_size(dataset):
    truths = _truths(dataset.out)
    checked = 0
    for stem, truth in truths.items():
        with Image.open(dataset.out / "images" / f"{stem}.jpg") as photo:
            if photo.getexif().get(0x0112) != 6:
                continue
            displayed = ImageOps.exif_transpose(photo)
            assert displayed.size == (truth.width, truth.height) == (photo.height, photo.width)
            assert np.array_equal(
                np.asarray(apply_orientation(photo.convert("RGB"), 6)), np.asarray(displayed.convert("RGB"))
            )
            checked += 1
    assert checked == dataset.rotated > 0


def test_every_class_appears_over_60_photos(dataset):
    labels = {o.name for truth in _truths(dataset.out).values() for o in truth.objects}
    assert labels == set(CLASS_NAMES)
    assert all(dataset.photos_by_class[name] >= 3 for name in CLASS_NAMES), dataset.photos_by_class


def test_the_summary_counts_what_the_truth_files_hold(dataset):
    truths = _truths(dataset.out).values()
    assert dataset.images == PHOTOS
    for name in CLASS_NAMES:
        assert dataset.boxes_by_class[name] == sum(o.name == name for t in truths for o in t.objects)
        assert dataset.photos_by_class[name] == sum(any(o.name == name for o in t.objects) for t in truths)


def _inside_and_around(pixels: np.ndarray, o, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB of the box's central half, and of a `margin`-px ring just outside the box."""
    x1, y1, x2, y2 = int(o.xmin) - 1, int(o.ymin) - 1, int(o.xmax), int(o.ymax)
    w, h = x2 - x1, y2 - y1
    inner = pixels[y1 + h // 4 : y2 - h // 4, x1 + w // 4 : x2 - w // 4].reshape(-1, 3).mean(axis=0)
    outer = pixels[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin]
    box = pixels[y1:y2, x1:x2]
    ring = (outer.reshape(-1, 3).sum(axis=0) - box.reshape(-1, 3).sum(axis=0)) / (
        outer.shape[0] * outer.shape[1] - box.shape[0] * box.shape[1]
    )
    return inner, ring


def test_lentigo_and_cafe_au_lait_boxes_sit_on_pigment_darker_than_the_skin_around(dataset):
    checked = 0
    for stem, truth in _truths(dataset.out).items():
        pixels = _displayed(dataset.out, stem)
        for o in truth.objects:
            if o.name in ("sl", "caf"):
                inner, ring = _inside_and_around(pixels, o)
                assert (ring - inner).mean() > 5, (stem, o, inner, ring)
                checked += 1
    assert checked >= 10


def test_boxes_on_rotated_photos_sit_on_the_lesion_as_displayed(dataset):
    checked = 0
    for stem, truth in _truths(dataset.out).items():
        if inspect_photo(dataset.out / "images" / f"{stem}.jpg").orientation != 6:
            continue
        pixels = _displayed(dataset.out, stem)
        for o in truth.objects:
            if o.name in ("sl", "caf"):
                inner, ring = _inside_and_around(pixels, o)
                assert (ring - inner).mean() > 5, (stem, o, inner, ring)
                checked += 1
    assert checked >= 1  # seed 0 has a rotated phone photo with a cafe-au-lait spot


def test_a_larger_size_scales_photos_and_boxes(tmp_path):
    summary = generate(tmp_path / "out", images=3, seed=0, size="phone")
    sizes = {SIZES["phone"], PHONE_SIZES["phone"], PHONE_SIZES["phone"][::-1]}
    for stem, truth in _truths(summary.out).items():
        assert (truth.width, truth.height) in sizes
        for o in truth.objects:
            assert o.xmax <= truth.width and o.ymax <= truth.height
        for o in truth.objects:
            if o.name in ("sl", "caf"):
                inner, ring = _inside_and_around(_displayed(summary.out, stem), o, margin=8)
                assert (ring - inner).mean() > 5


def test_progress_is_told_of_every_photo(tmp_path):
    done: list[int] = []
    generate(tmp_path / "out", images=30, seed=0, progress=done.append)
    assert sum(done) == 30


def test_the_world_sets_what_the_photos_vary_over(tmp_path):
    """Another kind of data set is another World value: here no phones and one class a face."""
    world = World(phone_fraction=0.0, one_class_below=1.0, single_class_weights=(("mel", 1.0),))
    summary = generate(tmp_path / "out", images=12, seed=0, world=world)
    assert (summary.phone, summary.rotated) == (0, 0)
    assert summary.photos_by_class["mel"] == 12 == sum(summary.photos_by_class.values())


def test_an_output_folder_that_already_holds_photos_is_refused(tmp_path):
    generate(tmp_path / "out", images=2, seed=0)
    with pytest.raises(ConfigError, match="already holds photos"):
        generate(tmp_path / "out", images=2, seed=0)


@pytest.mark.parametrize("options", [{"size": "huge"}, {"labelled_fraction": 1.5}, {"workers": 0}, {"images": -1}])
def test_impossible_options_are_refused(tmp_path, options):
    with pytest.raises(ConfigError):
        generate(tmp_path / "out", **{"images": 2, **options})
