"""training.dataset: the training view is links to the photos plus YOLO label files that read back into
the label versions it was built from, and a data.yaml naming the split folders and the classes."""

from __future__ import annotations

import math

import pytest

from annotator.formats.yolo import label_path_for, read_yolo_labels
from training.dataset import build_training_view


@pytest.fixture
def view_and_labels(make_workspace, tmp_path):
    ws = make_workspace(images=6, labelled=1.0)
    labels = ws.store.labels.current_labels()
    splits = {p: ("train", "train", "val", "test")[n % 4] for n, p in enumerate(sorted(labels))}
    view = build_training_view(ws, tmp_path / "view", splits, labels)
    yield ws, view, labels, splits
    ws.close()


def test_every_photo_is_linked_into_its_split(view_and_labels):
    ws, view, _, splits = view_and_labels
    for split, items in view.images.items():
        assert sorted(rel for _, rel in items) == sorted(p for p, s in splits.items() if s == split)
        assert all(link.is_symlink() and link.resolve() == ws.image_path(rel).resolve() for link, rel in items)


def test_label_files_read_back_into_the_photos_boxes(view_and_labels):
    ws, view, labels, _ = view_and_labels
    records = {r.path: r for r in ws.store.labels.images()}
    assert sum(len(v.boxes) for v in labels.values()) > 0
    for link, rel in (item for items in view.images.values() for item in items):
        rec = records[rel]
        back = read_yolo_labels(label_path_for(link), view.classes, rec.width, rec.height)
        assert [b.label for b in back] == [b.label for b in labels[rel].boxes]
        assert all(
            math.isclose(u, v, abs_tol=0.01)
            for a, b in zip(back, labels[rel].boxes, strict=True)
            for u, v in ((a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2))
        )


def test_data_yaml_names_the_split_folders_and_the_classes(view_and_labels):
    yaml = pytest.importorskip("yaml")
    ws, view, _, _ = view_and_labels
    data = yaml.safe_load(view.data_yaml.read_text())
    assert (data["path"], data["train"], data["val"], data["test"]) == (
        str(view.root.resolve()),
        "images/train",
        "images/val",
        "images/test",
    )
    assert data["names"] == dict(enumerate(ws.config.classes))
