"""COCO JSON: the one builder of ground-truth documents and results lists, and their reader, for the
export and for the benchmark's pycocotools evaluation alike.

Ids are positions: image id = index in the photo list + 1, category id = index in the class list + 1,
so a results list built for the same photo order refers to the same images. Boxes are [x, y, w, h]
in displayed-frame pixels (`annotator.boxes.box_to_coco`), rounded to a thousandth of a pixel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annotator.boxes import box_to_coco, coco_to_box
from annotator.errors import InputFileError
from annotator.fsutil import atomic_write_text
from annotator.types import Box

DECIMALS = 3


def _bbox(box: Box) -> list[float]:
    return [round(float(v), DECIMALS) for v in box_to_coco(box)]


def _category_ids(classes: Sequence[str]) -> dict[str, int]:
    return {c: k + 1 for k, c in enumerate(classes)}


def coco_ground_truth(
    photos: Sequence[str],
    boxes: Sequence[Sequence[Box]],
    classes: Sequence[str],
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    image_fields: Sequence[Mapping[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth document: `boxes[n]` are the boxes of `photos[n]` (its file_name).

    sizes: (width, height) per photo, optional (pycocotools does not need them); image_fields:
    extra keys per image entry (e.g. the device class); description: the document's `info`.
    A box keeps its score when it has one (an export of predictions); a box whose label is not
    in `classes` is left out (the category list is the document's vocabulary).
    """
    if len(boxes) != len(photos):
        raise ValueError(f"{len(photos)} photos but {len(boxes)} box lists")
    category = _category_ids(classes)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, photo in enumerate(photos):
        image: dict[str, Any] = {"id": n + 1, "file_name": photo}
        if sizes is not None:
            image["width"], image["height"] = int(sizes[n][0]), int(sizes[n][1])
        if image_fields is not None:
            image.update(image_fields[n])
        images.append(image)
        for box in boxes[n]:
            if box.label not in category:
                continue
            ann: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": n + 1,
                "category_id": category[box.label],
                "bbox": _bbox(box),
                "area": round(float(box.area), DECIMALS),
                "iscrowd": 0,
            }
            if box.score is not None:
                ann["score"] = float(box.score)
            annotations.append(ann)
    document: dict[str, Any] = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": c} for c, k in category.items()],
    }
    if description is not None:
        document["info"] = {"description": description}
    return document


def coco_results(boxes: Sequence[Sequence[Box]], classes: Sequence[str]) -> list[dict[str, Any]]:
    """A COCO results list ([{image_id, category_id, bbox, score}]) with the ids `coco_ground_truth`
    gives the same photo order. Unscored boxes get score 1.0; labels outside `classes` are left out."""
    category = _category_ids(classes)
    return [
        {
            "image_id": n + 1,
            "category_id": category[b.label],
            "bbox": _bbox(b),
            "score": float(1.0 if b.score is None else b.score),
        }
        for n, per_photo in enumerate(boxes)
        for b in per_photo
        if b.label in category
    ]


def results_by_photo(
    results: Sequence[Mapping[str, Any]], photos: Sequence[str], classes: Sequence[str], source: str = "<coco>"
) -> dict[str, tuple[Box, ...]]:
    """The inverse of `coco_results` for the same photo and class order: photo -> its scored boxes (a photo with
    none maps to ()). A result naming an image or category outside them is an InputFileError."""
    found: dict[str, list[Box]] = {p: [] for p in photos}
    try:
        for r in results:
            image, category = int(r["image_id"]), int(r["category_id"])
            if not (1 <= image <= len(photos) and 1 <= category <= len(classes)):
                raise InputFileError(
                    source, "bad-coco", f"result for image {image}, category {category} is out of range"
                )
            found[photos[image - 1]].append(coco_to_box(classes[category - 1], r["bbox"], score=float(r["score"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(source, "bad-coco", f"not a COCO results list ({type(exc).__name__}: {exc})") from exc
    return {p: tuple(b) for p, b in found.items()}


def write_coco(path: Path, document: dict[str, Any] | list[dict[str, Any]]) -> Path:
    """Write a document or results list as JSON, atomically."""
    atomic_write_text(path, json.dumps(document))
    return Path(path)


def boxes_by_image(document: Mapping[str, Any], source: str = "<coco>") -> dict[str, tuple[Box, ...]]:
    """file_name -> its boxes (scores kept), for every image of a ground-truth document; an image
    without annotations maps to (). A document that does not hold together is an InputFileError."""
    try:
        names = {int(c["id"]): str(c["name"]) for c in document["categories"]}
        files = {int(i["id"]): str(i["file_name"]) for i in document["images"]}
        found: dict[str, list[Box]] = {name: [] for name in files.values()}
        for ann in document["annotations"]:
            image_id, category_id = int(ann["image_id"]), int(ann["category_id"])
            if image_id not in files or category_id not in names:
                raise InputFileError(
                    source,
                    "bad-coco",
                    f"annotation {ann.get('id')} refers to image {image_id} or "
                    f"category {category_id}, which the document does not list",
                )
            score = ann.get("score")
            found[files[image_id]].append(
                coco_to_box(names[category_id], ann["bbox"], score=None if score is None else float(score))
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(
            source, "bad-coco", f"not a COCO ground-truth document ({type(exc).__name__}: {exc})"
        ) from exc
    return {name: tuple(b) for name, b in found.items()}


def read_coco(path: Path) -> dict[str, tuple[Box, ...]]:
    """The boxes per image (file_name) of a COCO annotations.json; see `boxes_by_image`."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(str(path), "bad-coco", f"cannot read it as JSON ({exc})") from exc
    return boxes_by_image(document, source=str(path))
