"""An easy synthetic set for the learning tests: plain skin, one to two well-separated lesions a photo,
three classes a detector tells apart by colour and shape in a few CPU minutes.

Labels go through the real path (labelImg VOC -> ingest -> store -> training view), so a broken class
index or coordinate anywhere on it shows as a model that does not find the truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from annotator.boxes import iou
from annotator.config import Config
from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.formats.voc import voc_xml_bytes
from annotator.images import decode_displayed
from annotator.ingest import ingest
from annotator.store import Workspace
from annotator.types import Box
from training.detectors.base import Detector
from training.metrics import coco_evaluate

WIDTH, HEIGHT = 160, 120
SKIN = (224, 180, 150)
# class -> (fill colour, shape, side range in pixels): dark small squares, light mid ellipses, blue-grey big blobs
LESIONS = {
    "sl": ((70, 45, 30), "square", (14, 20)),
    "caf": ((185, 130, 90), "ellipse", (24, 32)),
    "ota": ((95, 105, 135), "ellipse", (34, 44)),
}


def _place(rng: np.random.Generator, taken: list[Box], side: int) -> tuple[int, int] | None:
    for _ in range(50):
        x, y = int(rng.integers(2, WIDTH - side - 2)), int(rng.integers(2, HEIGHT - side - 2))
        box = Box("x", x - 4, y - 4, x + side + 4, y + side + 4)
        if all(iou(box, t) == 0 for t in taken):
            return x, y
    return None


def write_easy_set(folder: Path, photos: int, seed: int = 0) -> Path:
    """`photos` PNG photos with labelImg VOC beside them in folder/images; returns that folder."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True)
    names = list(LESIONS)
    for i in range(photos):
        noise = rng.normal(0, 4, (HEIGHT, WIDTH, 3))
        pixels = np.clip(np.array(SKIN, dtype=float) + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels)
        draw = ImageDraw.Draw(img)
        boxes: list[Box] = []
        for k in range(1 + int(rng.integers(0, 2))):
            label = names[(i + k) % len(names)]
            colour, shape, (lo, hi) = LESIONS[label]
            side = int(rng.integers(lo, hi + 1))
            spot = _place(rng, boxes, side)
            if spot is None:
                continue
            x, y = spot
            (draw.rectangle if shape == "square" else draw.ellipse)((x, y, x + side - 1, y + side - 1), fill=colour)
            boxes.append(Box(label, float(x), float(y), float(x + side), float(y + side)))
        photo = images / f"easy_{i:03d}.png"
        img.save(photo)
        photo.with_suffix(".xml").write_bytes(
            voc_xml_bytes(filename=photo.name, path=str(photo), width=WIDTH, height=HEIGHT, depth=3, boxes=boxes)
        )
    return images


def easy_workspace(root: Path, photos: int, seed: int = 0) -> Workspace:
    """An ingested workspace over a fresh easy set (every photo hand-labelled); the caller closes it."""
    images = write_easy_set(root / "data", photos, seed)
    ws = Workspace.create(root / "ws", Config(images=images, labels=images))
    ingest(ws, images=images, labels=images)
    return ws


def map50_on(detector: Detector, ws: Workspace, photos: Sequence[str], *, imgsz: int) -> float:
    """COCO mAP50 of the detector on `photos` against the store's labels (not the training view's files),
    predicting on the photos as decoded, every box down to a score of 0.001."""
    truth, predicted = [], []
    for rel in photos:
        rgb, _, _ = decode_displayed(ws.image_path(rel))
        predicted.append(detector.predict_arrays([rgb], conf=0.001, imgsz=imgsz, device="cpu")[0])
        truth.append(list(ws.store.labels.current_labels()[rel].boxes))
    quality = coco_evaluate(
        coco_ground_truth(list(photos), truth, ws.config.classes), coco_results(predicted, ws.config.classes)
    )
    return float(quality.map50 or 0.0)
