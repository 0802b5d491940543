"""A real Label Studio for the review-queue tests, started once per session from a migrated template.

The template (migrations only, ~35 s to build on two cores) is cached in .cache/ls-template, or
in $ANNOTATOR_LS_TEMPLATE, and built when absent (a clean checkout). The session server then
starts from a copy in ~5 s. Its document root is one session folder; each test makes its own
photos, truth, workspace and project (unique title) under it, so tests stay independent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from annotator.boxes import box_to_voc
from annotator.config import Config
from annotator.formats.voc import write_voc
from annotator.store import Workspace
from annotator.types import Box, ImageRecord, LabelVersion, Source
from review_queue.labelstudio.client import ReviewClient, connect

_counter = itertools.count()


@dataclass(frozen=True)
class Photo:
    """A test photo: its size, ground truth, and the model's (partly wrong) prediction."""

    name: str
    width: int
    height: int
    truth: tuple[Box, ...]
    predicted: tuple[Box, ...]
    uncertainty: float


# Every edit kind appears: accepted, moved, relabelled, deleted, added. Photos differ in size
# and orientation so a width/height mix-up cannot pass.
SCENARIO: tuple[Photo, ...] = (
    Photo(
        "p0.jpg",
        320,
        240,
        truth=(Box("mel", 20, 20, 120, 100), Box("fre", 200, 150, 230, 180)),
        predicted=(Box("mel", 20, 20, 120, 100, score=0.9), Box("fre", 204, 153, 234, 183, score=0.6)),
        uncertainty=0.9,
    ),  # accepted + moved
    Photo(
        "p1.jpg",
        240,
        320,
        truth=(Box("sl", 50, 50, 90, 90),),
        predicted=(Box("caf", 50, 50, 90, 90, score=0.5), Box("ota", 150, 200, 200, 260, score=0.4)),
        uncertainty=0.8,
    ),  # relabelled + deleted
    Photo(
        "p2.jpg",
        300,
        200,
        truth=(Box("hori", 10, 10, 80, 60), Box("caf", 100, 100, 200, 180)),
        predicted=(Box("hori", 10, 10, 80, 60, score=0.7),),
        uncertainty=0.3,
    ),  # accepted + added
    Photo(
        "p3.jpg", 256, 256, truth=(), predicted=(Box("mel", 30, 30, 60, 60, score=0.3),), uncertainty=0.5
    ),  # deleted (no lesion at all)
    Photo(
        "p4.jpg",
        200,
        300,
        truth=(Box("ota", 30, 40, 150, 200),),
        predicted=(Box("ota", 30, 40, 150, 200, score=0.95),),
        uncertainty=0.1,
    ),  # accepted
    Photo(
        "p5.jpg",
        320,
        200,
        truth=(Box("sl", 10, 10, 40, 40), Box("fre", 100, 50, 130, 90)),
        predicted=(Box("fre", 12, 11, 41, 42, score=0.5), Box("fre", 100, 50, 130, 90, score=0.8)),
        uncertainty=0.6,
    ),  # relabelled+moved, accepted
)


def write_photo_set(folder: Path, photos: Sequence[Photo]) -> None:
    """JPEGs under folder/images and their ground truth as labelImg VOC under folder/truth."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(photos):
        Image.new("RGB", (photo.width, photo.height), (40 * i % 255, 120, 90)).save(
            folder / "images" / photo.name, quality=80
        )
        write_voc(
            folder / "truth" / Path(photo.name).with_suffix(".xml"),
            filename=photo.name,
            path=str(folder / "images" / photo.name),
            width=photo.width,
            height=photo.height,
            depth=3,
            boxes=photo.truth,
        )
        assert all(box_to_voc(b) == (b.x1 + 1, b.y1 + 1, b.x2, b.y2) for b in photo.truth)  # integer truth


def add_model_round(
    ws: Workspace, photos: Sequence[Photo], round_no: int, boxes: Callable[[Photo], tuple[Box, ...]] | None = None
) -> None:
    for photo in photos:
        ws.store.labels.add_label_version(
            LabelVersion(
                image_path=photo.name,
                source=Source.MODEL,
                boxes=boxes(photo) if boxes else photo.predicted,
                round=round_no,
                model_version=f"round-{round_no:03d}",
                uncertainty=photo.uncertainty,
            )
        )


@pytest.fixture
def add_round() -> Callable[..., None]:
    """add_round(ws, photos, round_no, boxes=None): a new model round's label versions."""
    return add_model_round


@dataclass
class ReviewSetup:
    ws: Workspace
    client: ReviewClient
    folder: Path
    photos: tuple[Photo, ...]


@pytest.fixture
def review_setup(live_server) -> Iterator[Callable[..., ReviewSetup]]:
    """review_setup(photos=SCENARIO) -> a workspace with round-0 predictions and a client for the live server."""
    opened: list[Workspace] = []

    def make(photos: Sequence[Photo] = SCENARIO) -> ReviewSetup:
        n = next(_counter)
        folder = live_server.document_root / f"case-{n:03d}"
        write_photo_set(folder, photos)
        ws = Workspace.create(folder / "ws", Config(images=folder / "images", project_title=f"PSL review test {n}"))
        opened.append(ws)
        for photo in photos:
            ws.store.labels.add_image(
                ImageRecord(path=photo.name, sha256=f"sha-{n}-{photo.name}", width=photo.width, height=photo.height)
            )
        add_model_round(ws, photos, 0)
        client = connect(
            ws, url=live_server.url, api_key=live_server.credentials.token, document_root=live_server.document_root
        )
        return ReviewSetup(ws, client, folder, tuple(photos))

    yield make
    for ws in opened:
        ws.close()
