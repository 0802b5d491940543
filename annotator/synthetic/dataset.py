"""A synthetic data set on disk: which photos are labelled, drawing them (in parallel when asked), and
writing each photo with its labelImg VOC (truth for every photo, labels for the labelled ones only).

Photo i depends only on (seed, i, world), so a data set is reproducible bit for bit and can be drawn in
parallel; its generators are in streams.py.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.classes import CLASS_NAMES
from annotator.errors import ConfigError
from annotator.formats.voc import voc_xml_bytes
from annotator.synthetic.camera import SIZES, Shot, choose_blur, choose_shot, develop, encode
from annotator.synthetic.confounders import KINDS
from annotator.synthetic.lesions import choose_classes
from annotator.synthetic.scene import render
from annotator.synthetic.streams import Streams
from annotator.synthetic.world import DEFAULT_WORLD, FITZPATRICK_TONES, World
from annotator.types import Box


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote: photos, labelled ones, phone and rotated ones, boxes and photos per class;
    photos without a lesion, blurred photos, photos per Fitzpatrick type, and the marks that are not
    targets (never in the truth) per kind (see confounders.py)."""

    images: int
    labelled: int
    phone: int
    rotated: int
    boxes_by_class: dict[str, int]
    photos_by_class: dict[str, int]
    lesion_free: int
    blurred: int
    photos_by_skin_type: dict[int, int]
    confounders_by_kind: dict[str, int]
    out: Path


@dataclass(frozen=True)
class _PhotoResult:
    phone: bool
    rotated: bool
    blurred: bool
    skin_type: int
    boxes: tuple[Box, ...]
    confounders: dict[str, int]


# What one worker task draws: (out, seed, size, world, [(photo index, labelled), ...]).
_Chunk = tuple[Path, int, str, World, list[tuple[int, bool]]]


def generate(
    out: Path,
    *,
    images: int,
    labelled_fraction: float = 0.38,
    seed: int = 0,
    size: str = "small",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    world: World = DEFAULT_WORLD,
) -> SynthSummary:
    """Write `images` synthetic photos with truth VOC for all and label VOC for round(images * labelled_fraction).

    Which photos are labelled depends on (seed, images); each photo's pixels and boxes on (seed, i) only.
    progress: called with the number of photos just finished (an increment, e.g. `bar.advance`).
    workers > 1 draws in spawned processes, so a calling script needs the `if __name__ == "__main__":` guard.
    world: what the photos vary over (see world.py, e.g. `PRESETS["hard"]`); the default is the demo's, the
    tests' and the benchmarks'.
    Refuses an `out` whose images/ folder already holds files, so stale photos never mix in.
    """
    out = Path(out)
    _check_options(out, images, labelled_fraction, size, workers)
    for sub in ("images", "labels", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    labelled = _labelled_indices(seed, images, labelled_fraction)
    jobs = [(i, i in labelled) for i in range(images)]
    results: list[_PhotoResult] = []
    for chunk_results in _run_chunks(out, seed, size, world, jobs, workers):
        results.extend(chunk_results)
        if progress is not None:
            progress(len(chunk_results))
    return _summarise(out, results, len(labelled))


def _check_options(out: Path, images: int, labelled_fraction: float, size: str, workers: int) -> None:
    """Refuse impossible options, and an output folder that already holds photos."""
    if images < 0:
        raise ConfigError(f"--images must be 0 or more, not {images}")
    if not 0.0 <= labelled_fraction <= 1.0:
        raise ConfigError(f"the labelled fraction must be between 0 and 1, not {labelled_fraction}")
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}")
    image_dir = out / "images"
    if image_dir.is_dir() and any(image_dir.iterdir()):
        raise ConfigError(f"{image_dir} already holds photos; choose an empty output folder or delete it")


def _labelled_indices(seed: int, images: int, fraction: float) -> set[int]:
    count = int(round(images * fraction))
    return {int(i) for i in np.random.default_rng([seed, 0x5EED]).permutation(images)[:count]}


def _run_chunks(
    out: Path, seed: int, size: str, world: World, jobs: list[tuple[int, bool]], workers: int
) -> Iterator[list[_PhotoResult]]:
    chunk = max(1, min(64, math.ceil(len(jobs) / (workers * 4))))
    chunks: list[_Chunk] = [(out, seed, size, world, jobs[k : k + chunk]) for k in range(0, len(jobs), chunk)]
    if workers == 1 or len(chunks) <= 1:
        for args in chunks:
            yield _generate_chunk(args)
        return
    # spawn, not fork: the parent may hold torch/threads that do not survive a fork
    with multiprocessing.get_context("spawn").Pool(min(workers, len(chunks))) as pool:
        yield from pool.imap_unordered(_generate_chunk, chunks)


def _generate_chunk(args: _Chunk) -> list[_PhotoResult]:
    out, seed, size, world, jobs = args
    return [_generate_one(out, seed, i, size, labelled, world) for i, labelled in jobs]


def _summarise(out: Path, results: list[_PhotoResult], labelled: int) -> SynthSummary:
    boxes_by_class = dict.fromkeys(CLASS_NAMES, 0)
    photos_by_class = dict.fromkeys(CLASS_NAMES, 0)
    photos_by_skin_type = dict.fromkeys(FITZPATRICK_TONES, 0)
    confounders_by_kind = dict.fromkeys(KINDS, 0)
    for result in results:
        for box in result.boxes:
            boxes_by_class[box.label] += 1
        for label in {box.label for box in result.boxes}:
            photos_by_class[label] += 1
        photos_by_skin_type[result.skin_type] += 1
        for kind, count in result.confounders.items():
            confounders_by_kind[kind] += count
    return SynthSummary(
        images=len(results),
        labelled=labelled,
        phone=sum(r.phone for r in results),
        rotated=sum(r.rotated for r in results),
        boxes_by_class=boxes_by_class,
        photos_by_class=photos_by_class,
        lesion_free=sum(not r.boxes for r in results),
        blurred=sum(r.blurred for r in results),
        photos_by_skin_type=photos_by_skin_type,
        confounders_by_kind=confounders_by_kind,
        out=out,
    )


# ---- one photo ---------------------------------------------------------------------------


def _generate_one(out: Path, seed: int, index: int, size: str, labelled: bool, world: World) -> _PhotoResult:
    """Draw photo `index` from its own generators and write it; the steps draw from the main one in this order."""
    streams = Streams.for_photo(seed, index)
    rng = streams.main
    shot = choose_shot(rng, size, world)
    classes = choose_classes(rng, world, streams.classes)
    card = bool(rng.random() < world.card_fraction)
    pixels, head = render(streams, shot.draw_w, shot.draw_h, classes, card, world)
    blur = choose_blur(streams.optics, world.optics, shot)
    photo = develop(rng, pixels, shot, blur)
    boxes = shot.photo_boxes(head.boxes)
    _write_photo(out, f"synth_{index:06d}", encode(rng, photo, shot, world), shot, boxes, labelled)
    return _PhotoResult(
        phone=shot.phone,
        rotated=shot.rotated,
        blurred=blur is not None,
        skin_type=head.skin_type,
        boxes=boxes,
        confounders=head.confounders,
    )


def _write_photo(out: Path, stem: str, jpeg: bytes, shot: Shot, boxes: tuple[Box, ...], labelled: bool) -> None:
    """images/<stem>.jpg, truth/<stem>.xml, and labels/<stem>.xml when the photo is in the labelled set."""
    image_path = out / "images" / f"{stem}.jpg"
    image_path.write_bytes(jpeg)
    # Plain writes, not fsutil's fsync'd atomic ones: a fresh folder of regenerable files needs no
    # durability, and an fsync per file would cost more than drawing the photo.
    xml = voc_xml_bytes(
        filename=image_path.name,
        path=str(image_path.resolve()),
        width=shot.width,
        height=shot.height,
        depth=3,
        boxes=boxes,
        folder="images",
    )
    (out / "truth" / f"{stem}.xml").write_bytes(xml)
    if labelled:
        (out / "labels" / f"{stem}.xml").write_bytes(xml)
