"""The one edit vocabulary: what a reviewer did to a box (`EditKind`), one such edit (`EditOp`) with
its stored JSON form, and the per-kind counts every review stores beside it.

Pull's diff, the correction statistic, the time model and the simulated reviewer all speak it. It
imports nothing from review_queue, so every module of the package (the time model included, which
the diff's own module imports) can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Corners = tuple[float, float, float, float]  # (x1, y1, x2, y2) in displayed-photo pixels


class EditKind(StrEnum):
    """What a reviewer did to one box. Stored by value (`"moved"`) in a review's meta.

    "Changed" is one rule (review_queue.constants.ACCEPT_IOU): a kept predicted box with IoU >= ACCEPT_IOU
    to its reviewed box and the same class was accepted, else it was moved or relabelled.
    """

    ACCEPTED = "accepted"  # a predicted box kept (IoU with the reviewed box >= ACCEPT_IOU, class kept)
    MOVED = "moved"  # a predicted box moved or resized to IoU < ACCEPT_IOU, class kept
    RELABELLED = "relabelled"  # a predicted box given another class (and perhaps moved too)
    DELETED = "deleted"  # a predicted box removed
    ADDED = "added"  # a box the model did not propose

    @classmethod
    def parse(cls, value: object) -> EditKind:
        """The kind stored as `value` (`"moved"`); ValueError naming the known kinds otherwise."""
        kind = _BY_VALUE.get(value) if isinstance(value, str) else None
        if kind is None:
            raise ValueError(f"unknown edit kind {value!r}; known: {', '.join(k.value for k in cls)}")
        return kind

    @property
    def on_prediction(self) -> bool:
        """The edit concerns a box the model proposed (every kind but `added`)."""
        return self is not EditKind.ADDED

    @property
    def corrects(self) -> bool:
        """The reviewer had to change a predicted box: moved, relabelled or deleted."""
        return self in (EditKind.MOVED, EditKind.RELABELLED, EditKind.DELETED)

    @property
    def counts_against_model(self) -> bool:
        """The edit enters the correction rate's numerator: a changed predicted box or a missed lesion."""
        return self.corrects or self is EditKind.ADDED

    @property
    def is_operation(self) -> bool:
        """The edit changes the label (a box operation of the time model); accepting a box is a look."""
        return self is not EditKind.ACCEPTED

    @property
    def action(self) -> str:
        """The reviewer's word for the edit, as the simulated reviewer reports it (`verify`, `adjust`, ...)."""
        return _ACTIONS[self]


_BY_VALUE = {k.value: k for k in EditKind}  # a dict lookup: reading 8,000 reviews parses ~50,000 edits
_ACTIONS = {
    EditKind.ACCEPTED: "verify",
    EditKind.MOVED: "adjust",
    EditKind.RELABELLED: "relabel",
    EditKind.DELETED: "delete",
    EditKind.ADDED: "draw",
}


@dataclass(frozen=True, slots=True)  # slots: a workspace's reviews hold ~50,000 edits, read on every status
class EditOp:
    """One reviewer action inferred from a prediction and the annotation made from it.

    `label` is the predicted class (None for added), `new_label` the reviewed class (None for
    deleted). A relabelled box may also have moved (`moved`=True: IoU < ACCEPT_IOU). iou: overlap of predicted and
    reviewed box, when both exist. before/after: (x1, y1, x2, y2) in displayed-photo pixels.
    """

    kind: EditKind
    region: str
    label: str | None
    new_label: str | None = None
    iou: float | None = None
    moved: bool = False
    before: Corners | None = None
    after: Corners | None = None

    @property
    def box_class(self) -> str:
        """The class the edit counts under: the predicted class, or the new class of an added box."""
        return str((self.label if self.kind.on_prediction else self.new_label) or "?")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a review's `meta["operations"]`: what is implied is left out (the
        new class when kept, the corners when unmoved, `moved` but on a relabelled box)."""
        out: dict[str, Any] = {"op": self.kind.value, "region": self.region, "label": self.label}
        if self.new_label is not None and self.new_label != self.label:
            out["new_label"] = self.new_label
        if self.iou is not None:
            out["iou"] = round(self.iou, 4)
        if self.moved and self.kind is EditKind.RELABELLED:
            out["moved"] = True
        if self.before is not None:
            out["before"] = [round(v, 2) for v in self.before]
        if self.after is not None and self.after != self.before:
            out["after"] = [round(v, 2) for v in self.after]
        return out

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> EditOp:
        """An edit from its stored form (`to_dict`), what it leaves out restored: a predicted box not
        deleted keeps its class and corners unless they are stored, and a moved box is `moved`.
        Every key but "op" may be absent (hand-written and older rows)."""
        kind = EditKind.parse(stored["op"])
        label = stored.get("label")  # values as stored (JSON strings, numbers or null)
        before = _corners(stored.get("before"))
        kept = kind is not EditKind.DELETED
        new_label = stored.get("new_label", label if kept else None)
        after = _corners(stored["after"]) if "after" in stored else (before if kept else None)
        iou = stored.get("iou")
        moved = kind is EditKind.MOVED or bool(stored.get("moved"))
        return cls(kind, str(stored.get("region", "")), label, new_label, iou, moved, before, after)

    def as_stored(self) -> EditOp:
        """This edit as it reads back from the store (IoU and corners rounded as `to_dict` stores them)."""
        return EditOp.from_dict(self.to_dict())


def _corners(values: Sequence[float] | None) -> Corners | None:
    """Stored corners as a tuple, numbers as stored (an int stays an int, so it is stored back alike)."""
    if values is None:
        return None
    x1, y1, x2, y2 = values
    return (x1, y1, x2, y2)


def count_edits(ops: Iterable[EditOp]) -> dict[str, int]:
    """{kind: count} over every EditKind, plus `predicted` (boxes the model proposed): a review's
    stored `meta["edits"]`."""
    counts = {k.value: 0 for k in EditKind}
    for op in ops:
        counts[op.kind.value] += 1
    counts["predicted"] = sum(counts[k.value] for k in EditKind if k.on_prediction)
    return counts
