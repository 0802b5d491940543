"""The one loop that predicts a set of photos: in batches, boxes back in each photo's full displayed frame.

The val thresholds (`training.thresholds.predict_split`), a round's test split (`bootstrap.evaluation`) and the
benchmark (`training.benchmark`) all predict through `predict_photos`; each decodes its photos its own way (lazily,
or once for every model) and names its own score floor (`training.constants`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple

import numpy as np

from annotator.boxes import boxes_to_photo
from annotator.types import Box
from training.detectors.base import Predictor


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo decoded for prediction: RGB (H, W, 3) uint8, its long side about `imgsz`.

    frame: the photo's full displayed (width, height), where its boxes go back to, `sx`, `sy` being the full frame's
    pixels per decoded pixel; None: its boxes stay in the decoded frame."""

    rgb: np.ndarray
    sx: float = 1.0
    sy: float = 1.0
    frame: tuple[int, int] | None = None


class Predictions(NamedTuple):
    """What `predict_photos` returns, per photo in the order given."""

    boxes: list[list[Box]]  # in each photo's full frame, or its decoded frame when it names none
    decoded: list[tuple[int, int]]  # (width, height) of each decoded photo
    seconds: float  # spent in `predict_arrays` (decoding excluded)


def _batches(photos: Iterable[DecodedPhoto], size: int) -> Iterator[list[DecodedPhoto]]:
    it = iter(photos)
    while chunk := list(islice(it, size)):
        yield chunk


def predict_photos(
    predictor: Predictor,
    photos: Iterable[DecodedPhoto],
    *,
    conf: float,
    imgsz: int,
    batch: int,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    """Predict every photo, `batch` at a time (a generator of photos is decoded one batch ahead of the model, no
    more). device None: the predictor's default (the GPU if there is one). progress: photos done so far."""
    out = Predictions([], [], 0.0)
    spent = 0.0
    kwargs = {"device": device} if device is not None else {}
    for chunk in _batches(photos, max(1, batch)):
        began = time.perf_counter()
        found = predictor.predict_arrays([p.rgb for p in chunk], conf=conf, imgsz=imgsz, **kwargs)
        spent += time.perf_counter() - began
        for photo, boxes in zip(chunk, found, strict=True):
            h, w = photo.rgb.shape[:2]
            out.decoded.append((w, h))
            out.boxes.append(boxes if photo.frame is None else boxes_to_photo(boxes, photo.sx, photo.sy, *photo.frame))
        if progress:
            progress(len(out.boxes))
    return out._replace(seconds=spent)
