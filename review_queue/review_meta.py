"""The review metadata of a `reviewed` label version (`LabelVersion.meta`), as one typed record.

Two writers, one record: pull stores one Label Studio annotation (where it came from, its edit diff,
what the reviewer excluded, boxes the one rule fixed, the label conflict it decided), and settling a
double review stores the merged or adjudicated label (`Settled`). Readers in review_queue and
bootstrap go through `ReviewMeta.from_dict`; the stored dict is written by `to_dict` only, key for key
as before (a key the writer leaves out stays out; a key it writes is written even when null).

Stored keys, a pulled review: project_id, task_id, annotation_id, lead_time, created_at, updated_at,
parent_prediction, prediction_version_id, edits + operations (absent for a conflict's review),
simulated, then exclude_reasons, box_fixes, conflict, acceptance_audit, arm, label_audit and
label_audit_issue when there are any.
A settled double review: double_review, reviews, reviewers, project_id, prediction_version_id,
updated_at, lead_time, simulated, agreement_f1, the adjudication_* keys of an adjudicated one,
then operations + edits when the first review had a prediction to diff against.
`edits` is always `count_edits(operations)`, so it is written, never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from review_queue.edits import EditOp, count_edits
from review_queue.labelstudio.convert import BoxFix


class SettleKind(StrEnum):
    """How a double review was settled. Stored by value in `meta["double_review"]`."""

    MERGED = "merged"  # the two reviews agreed: their merged boxes
    ADJUDICATED = "adjudicated"  # they disagreed: the adjudicator's annotation


@dataclass(frozen=True)
class Adjudication:
    """The adjudicator's annotation that decided a disagreeing double review."""

    adjudicator: str
    project_id: int | None
    task_id: int | None
    annotation_id: int | None
    lead_time: float | None


@dataclass(frozen=True)
class Settled:
    """A double review settled: the two review versions (ids), their reviewers and agreement."""

    kind: SettleKind
    reviews: tuple[int, ...]
    reviewers: tuple[str, ...]
    agreement_f1: float
    adjudication: Adjudication | None = None  # set for ADJUDICATED


@dataclass(frozen=True)
class ReviewMeta:
    """What a reviewed label version records about its review (see the module docstring for the keys).

    operations: the edit diff from the prediction the review started from (None: none recorded, e.g.
    the review decided a label conflict, so its edits say nothing about the model). task_id ...
    parent_prediction: the pulled Label Studio annotation (None on a settled double review).
    """

    project_id: int | None = None
    prediction_version_id: int | None = None
    updated_at: str | None = None
    lead_time: float | None = None
    simulated: bool = False
    operations: tuple[EditOp, ...] | None = None
    task_id: int | None = None
    annotation_id: int | None = None
    created_at: str | None = None
    parent_prediction: int | None = None
    exclude_reasons: tuple[str, ...] = ()
    box_fixes: tuple[BoxFix, ...] = ()
    conflict: str | None = None
    settled: Settled | None = None
    acceptance_audit: str | None = None  # the audit plan (population digest) this blind review audits
    arm: str | None = None  # "control": drawn from scratch in the effort study (no prediction was shown)
    label_audit: int | None = None  # the label version the label audit doubted (this review decides it)
    label_audit_issue: str | None = None  # the issue kinds the audit showed ("overlooked; swapped class")

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> ReviewMeta:
        """The record of a stored meta; every key may be absent (older rows, hand-made versions)."""
        operations = meta.get("operations")
        return cls(
            project_id=_int(meta.get("project_id")),
            prediction_version_id=_int(meta.get("prediction_version_id")),
            updated_at=_str(meta.get("updated_at")),
            lead_time=_float(meta.get("lead_time")),
            simulated=bool(meta.get("simulated")),
            operations=None if operations is None else tuple(EditOp.from_dict(op) for op in operations),
            task_id=_int(meta.get("task_id")),
            annotation_id=_int(meta.get("annotation_id")),
            created_at=_str(meta.get("created_at")),
            parent_prediction=_int(meta.get("parent_prediction")),
            exclude_reasons=tuple(str(r) for r in meta.get("exclude_reasons") or ()),
            box_fixes=tuple(_box_fix(f) for f in meta.get("box_fixes") or ()),
            conflict=_str(meta.get("conflict")),
            settled=_settled(meta) if meta.get("double_review") else None,
            acceptance_audit=_str(meta.get("acceptance_audit")),
            arm=_str(meta.get("arm")),
            label_audit=_int(meta.get("label_audit")),
            label_audit_issue=_str(meta.get("label_audit_issue")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored dict, keys in the order each writer has always written them."""
        if self.settled is not None:
            return self._settled_dict(self.settled)
        out: dict[str, Any] = {
            "project_id": self.project_id,
            "task_id": self.task_id,
            "annotation_id": self.annotation_id,
            "lead_time": self.lead_time,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "parent_prediction": self.parent_prediction,
            "prediction_version_id": self.prediction_version_id,
        }
        if self.operations is not None:
            out["edits"] = count_edits(self.operations)
            out["operations"] = [op.to_dict() for op in self.operations]
        out["simulated"] = self.simulated
        if self.exclude_reasons:
            out["exclude_reasons"] = list(self.exclude_reasons)
        if self.box_fixes:
            out["box_fixes"] = [f.to_dict() for f in self.box_fixes]
        if self.conflict is not None:
            out["conflict"] = self.conflict
        if self.acceptance_audit is not None:
            out["acceptance_audit"] = self.acceptance_audit
        if self.arm is not None:
            out["arm"] = self.arm
        if self.label_audit is not None:
            out["label_audit"] = self.label_audit
        if self.label_audit_issue is not None:
            out["label_audit_issue"] = self.label_audit_issue
        return out

    def _settled_dict(self, settled: Settled) -> dict[str, Any]:
        """The stored dict of a merged or adjudicated double review."""
        out: dict[str, Any] = {
            "double_review": settled.kind.value,
            "reviews": list(settled.reviews),
            "reviewers": list(settled.reviewers),
            "project_id": self.project_id,
            "prediction_version_id": self.prediction_version_id,
            "updated_at": self.updated_at,
            "lead_time": self.lead_time,
            "simulated": self.simulated,
            "agreement_f1": settled.agreement_f1,
        }
        if settled.adjudication is not None:
            a = settled.adjudication
            out["adjudicator"] = a.adjudicator
            out["adjudication_project_id"] = a.project_id
            out["adjudication_task_id"] = a.task_id
            out["adjudication_annotation_id"] = a.annotation_id
            out["adjudication_lead_time"] = a.lead_time
        if self.operations is not None:
            out["operations"] = [op.to_dict() for op in self.operations]
            out["edits"] = count_edits(self.operations)
        return out


def _settled(meta: Mapping[str, Any]) -> Settled:
    adjudication = None
    if "adjudicator" in meta:
        adjudication = Adjudication(
            adjudicator=str(meta["adjudicator"]),
            project_id=_int(meta.get("adjudication_project_id")),
            task_id=_int(meta.get("adjudication_task_id")),
            annotation_id=_int(meta.get("adjudication_annotation_id")),
            lead_time=_float(meta.get("adjudication_lead_time")),
        )
    return Settled(
        kind=SettleKind(str(meta["double_review"])),
        reviews=tuple(int(i) for i in meta.get("reviews") or ()),
        reviewers=tuple(str(r) for r in meta.get("reviewers") or ()),
        agreement_f1=float(meta.get("agreement_f1") or 0.0),
        adjudication=adjudication,
    )


def _box_fix(stored: Mapping[str, Any]) -> BoxFix:
    return BoxFix(
        region=str(stored.get("region", "")),
        reason=str(stored.get("reason", "")),
        action=str(stored.get("action", "")),
        message=str(stored.get("message", "")),
        outside_px=float(stored.get("outside_px") or 0.0),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
