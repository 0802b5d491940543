"""Double review settled: agreeing photos merged, disagreeing ones adjudicated in Label Studio.

Runs after every pull of the review queue (`settle`: the queue's step after the transport's pull, in
`review_queue.queue`). A photo has a double review when two different reviewers submitted a review
of it in the review project (push asked for two, `overlap`). Then:
- the two reviews agree (box F1 >= [review] adjudicate_below_f1 of annotator.toml, default 1.0 =
  every box matched at IoU 0.5 with its class, and both or neither excluded the photo): the merged
  label (`review_queue.agreement.merge`: mean corners of each matched pair) becomes current;
- else the photo goes to the adjudication project in the same Label Studio, with both reviews as
  predictions named "review by <email>"; the adjudicator's annotation, pulled by the next `settle`,
  becomes current. Until then the later review is current (pull's rule).
The merged or adjudicated version is a `reviewed` version whose provenance names both reviewers (and
the adjudicator) and the ids of the two reviews, which stay in the history with everything else.
Its edit operations are the diff from the prediction the first review started from to the final
label, and its lead time the sum of every person's lead time on the photo, so the correction
statistic and the measured time count the photo once, at its full cost.
The agreement figures of every double-reviewed photo are written to reports/agreement.json.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from annotator.boxes import match_boxes
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace, now_iso
from annotator.types import Box, LabelVersion, Source
from review_queue.agreement import AgreementSummary, PhotoAgreement, compare, merge, summarise
from review_queue.constants import MATCH_IOU
from review_queue.corrections import diff_regions
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import IMAGE_TAG, PHOTO_FIELD, box_to_result, local_file_url, parse_result
from review_queue.labelstudio.project import (
    ADJUDICATION,
    create_project,
    document_prefix,
    ensure_photo_storage,
    import_tasks,
    stored_project_id,
)
from review_queue.review_meta import Adjudication, ReviewMeta, Settled, SettleKind

ADJUDICATION_TASKS_KEY = "review.adjudication_tasks"  # JSON {photo: {"task": id, "reviews": [a, b]}}
AGREEMENT_FILE = "agreement.json"
REVIEWS_FIELD = "reviews"  # task data: the two review version ids, "a,b"
MERGED = SettleKind.MERGED
ADJUDICATED = SettleKind.ADJUDICATED


@dataclass(frozen=True)
class DoubleReview:
    """A photo's two reviews by different reviewers (the first two who reviewed it)."""

    photo: str
    a: LabelVersion
    b: LabelVersion

    @property
    def ids(self) -> list[int]:
        return [int(self.a.id or 0), int(self.b.id or 0)]

    def agreement(self) -> PhotoAgreement:
        return compare(
            self.photo,
            str(self.a.reviewer),
            self.a.boxes,
            str(self.b.reviewer),
            self.b.boxes,
            excluded_a=self.a.excluded,
            excluded_b=self.b.excluded,
        )


@dataclass(frozen=True)
class SettleResult:
    double_reviewed: int
    merged: int  # merged now
    sent_to_adjudication: int  # pushed to the adjudication project now
    adjudicated: int  # adjudications stored now
    awaiting_adjudication: int
    adjudication_project_id: int | None
    agreement: AgreementSummary | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["agreement"] = self.agreement.to_dict() if self.agreement else None
        return out


# ---- reading the store ---------------------------------------------------------------------


def double_reviews(ws: Workspace, project_id: int | None = None) -> list[DoubleReview]:
    """Every photo with reviews by two different reviewers in the review project (latest per reviewer)."""
    pid = project_id if project_id is not None else stored_project_id(ws)
    out: list[DoubleReview] = []
    for path in ws.store.labels.paths_reviewed_by_several(2):  # photo by photo: not every current label (8,000: ~0.8 s)
        current = ws.store.labels.current_label(path)
        if current is None or current.source is not Source.REVIEWED:
            continue  # a later manual label (XML that won) is current: not ours to settle
        latest: dict[str, LabelVersion] = {}
        for version in ws.store.labels.history(path):
            if version.source is not Source.REVIEWED or not version.reviewer:
                continue
            meta = ReviewMeta.from_dict(version.meta)
            if meta.settled is not None or (pid is not None and meta.project_id != pid):
                continue
            if meta.annotation_id is None or meta.conflict:
                continue
            latest[version.reviewer] = version  # history is oldest first: the last one wins
        if len(latest) >= 2:
            first, second = sorted(latest.values(), key=lambda v: _first_seen(ws, path, v))[:2]
            out.append(DoubleReview(path, first, second))
    return out


def _first_seen(ws: Workspace, path: str, version: LabelVersion) -> int:
    """Reviewers in the order their first review of the photo was stored."""
    return min(int(v.id or 0) for v in ws.store.labels.history(path) if v.reviewer == version.reviewer)


def agreement_summary(ws: Workspace) -> AgreementSummary:
    """The agreement figures of every double-reviewed photo in the store."""
    pairs = [d.agreement() for d in double_reviews(ws)]
    return summarise(pairs, ws.config.class_table.names, min_f1=ws.config.adjudicate_below_f1)


def _settled(ws: Workspace, review: DoubleReview) -> SettleKind | None:
    for version in ws.store.labels.history(review.photo):
        settled = ReviewMeta.from_dict(version.meta).settled
        if settled is not None and list(settled.reviews) == review.ids:
            return settled.kind
    return None


# ---- the final label -------------------------------------------------------------------------


def _final_version(
    ws: Workspace,
    review: DoubleReview,
    boxes: Sequence[Box],
    *,
    kind: SettleKind,
    excluded: bool,
    adjudication: Adjudication | None = None,
    updated_at: str | None = None,
) -> LabelVersion:
    """The settled label: `boxes` diffed against the prediction the first review started from.

    updated_at: the adjudicator's annotation's time (default: the later review's)."""
    a, b = ReviewMeta.from_dict(review.a.meta), ReviewMeta.from_dict(review.b.meta)
    predicted = [
        (op.region, Box(op.label, *op.before))
        for op in a.operations or ()
        if op.label is not None and op.before is not None
    ]
    ops = diff_regions(predicted, _regions(predicted, boxes))
    lead_times = [a.lead_time, b.lead_time, adjudication.lead_time if adjudication else None]
    reviewers = (str(review.a.reviewer), str(review.b.reviewer))
    meta = ReviewMeta(
        project_id=a.project_id,
        prediction_version_id=a.prediction_version_id,
        updated_at=updated_at if adjudication else max(str(a.updated_at or ""), str(b.updated_at or "")),
        lead_time=round(sum(t for t in lead_times if t is not None), 2),
        simulated=a.simulated and b.simulated,
        operations=tuple(ops) if predicted or a.operations is not None else None,
        settled=Settled(kind, tuple(review.ids), reviewers, round(review.agreement().f1, 4), adjudication),
    )
    who = " + ".join(reviewers) + (f" / {adjudication.adjudicator}" if adjudication else "")
    return LabelVersion(
        image_path=review.photo,
        source=Source.REVIEWED,
        boxes=tuple(boxes),
        round=review.a.round,
        model_version=review.a.model_version,
        reviewer=who,
        excluded=excluded,
        meta=meta.to_dict(),
    )


def _regions(predicted: Sequence[tuple[str, Box]], boxes: Sequence[Box]) -> list[tuple[str, Box]]:
    """Final boxes with the predicted region ids they overlap (so the diff pairs kept boxes)."""
    ids = [f"f{i}" for i in range(len(boxes))]
    for i, j, _ in match_boxes(list(boxes), [b for _, b in predicted], iou_threshold=MATCH_IOU, class_aware=False):
        ids[i] = predicted[j][0]
    return list(zip(ids, boxes, strict=True))


# ---- settle ---------------------------------------------------------------------------------


def settle(ws: Workspace, client: ReviewClient | None) -> SettleResult:
    """Store adjudications, merge agreeing double reviews, send disagreeing ones to adjudication."""
    adjudicated = pull_adjudications(ws, client) if client is not None else 0
    reviews = double_reviews(ws)
    min_f1 = ws.config.adjudicate_below_f1
    merged = 0
    to_adjudicate: list[DoubleReview] = []
    queued = _adjudication_tasks(ws)
    for review in reviews:
        if _settled(ws, review):
            continue
        pair = review.agreement()
        if pair.agrees(min_f1):
            version = _final_version(ws, review, merge(pair), kind=MERGED, excluded=review.a.excluded)
            ws.store.labels.add_label_version(version)
            merged += 1
        elif (queued.get(review.photo) or {}).get("reviews") != review.ids:
            to_adjudicate.append(review)
    sent = push_adjudications(ws, client, to_adjudicate) if client is not None and to_adjudicate else 0
    queued = _adjudication_tasks(ws)
    awaiting = sum(1 for r in reviews if not _settled(ws, r) and (queued.get(r.photo) or {}).get("reviews") == r.ids)
    summary = summarise([r.agreement() for r in reviews], ws.config.class_table.names, min_f1=min_f1)
    result = SettleResult(
        double_reviewed=len(reviews),
        merged=merged,
        sent_to_adjudication=sent,
        adjudicated=adjudicated,
        awaiting_adjudication=awaiting,
        adjudication_project_id=adjudication_project_id(ws),
        agreement=summary,
    )
    if reviews:
        atomic_write_text(
            ws.reports_dir / AGREEMENT_FILE,
            json.dumps({"written_at": now_iso(), **result.to_dict()}, indent=2, default=str) + "\n",
        )
    return result


# ---- the adjudication project ---------------------------------------------------------------


def adjudication_project_id(ws: Workspace) -> int | None:
    """The adjudication project's id, None before a disagreement made it."""
    return stored_project_id(ws, ADJUDICATION)


def _adjudication_tasks(ws: Workspace) -> dict[str, dict[str, Any]]:
    return dict(json.loads(ws.store.get_meta(ADJUDICATION_TASKS_KEY) or "{}"))


def ensure_adjudication_project(ws: Workspace, client: ReviewClient) -> int:
    """The adjudication project (created on first use) with the photo folder attached."""
    pid = adjudication_project_id(ws)
    if pid is not None:
        return pid
    pid = int(create_project(ws, client, ADJUDICATION).id)
    ws.store.set_meta(ADJUDICATION.id_key, str(pid))
    ensure_photo_storage(ws, client, pid)
    return pid


def push_adjudications(ws: Workspace, client: ReviewClient, reviews: Sequence[DoubleReview]) -> int:
    """One adjudication task per disagreeing photo, both reviews as predictions named by reviewer."""
    pid = ensure_adjudication_project(ws, client)
    prefix = document_prefix(ws, client)
    records = {r.path: r for r in ws.store.labels.images()}
    payload = []
    for review in reviews:
        record = records[review.photo]

        def prediction(
            version: LabelVersion, tag: str, review: DoubleReview = review, record: Any = record
        ) -> dict[str, Any]:
            return {
                "model_version": f"review by {version.reviewer}",
                "score": round(review.agreement().f1, 4),
                "result": [
                    box_to_result(b, record.width, record.height, f"{tag}{i}") for i, b in enumerate(version.boxes)
                ],
            }

        payload.append(
            {
                "data": {
                    IMAGE_TAG: local_file_url(str(prefix / review.photo)),
                    PHOTO_FIELD: review.photo,
                    REVIEWS_FIELD: ",".join(str(i) for i in review.ids),
                    "reviewers": f"{review.a.reviewer} vs {review.b.reviewer}",
                },
                "predictions": [prediction(review.a, "a"), prediction(review.b, "b")],
            }
        )
    ids = import_tasks(client, pid, payload, what=f"{len(payload)} adjudication tasks", rerun="annotator review pull")
    queued = _adjudication_tasks(ws)
    for review, task_id in zip(reviews, ids, strict=True):
        queued[review.photo] = {"task": int(task_id), "reviews": review.ids}
    ws.store.set_meta(ADJUDICATION_TASKS_KEY, json.dumps(queued))
    return len(payload)


def pull_adjudications(ws: Workspace, client: ReviewClient) -> int:
    """Store each new adjudicator annotation as the photo's current label; how many were stored."""
    pid = adjudication_project_id(ws)
    if pid is None:
        return 0
    pulled = ws.store.review.pulled_annotations()
    records = {r.path: r for r in ws.store.labels.images()}
    emails: dict[int, str] | None = None
    stored = 0
    for task in client.tasks_with_annotations(pid):
        data = task.get("data") or {}
        record = records.get(str(data.get(PHOTO_FIELD)))
        ids = [int(x) for x in str(data.get(REVIEWS_FIELD) or "").split(",") if x]
        submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if record is None or len(ids) != 2 or not submitted:
            continue
        ann = max(submitted, key=lambda a: (a.get("updated_at") or "", a["id"]))
        if pulled.get(int(ann["id"]), "\0") == ann.get("updated_at"):
            continue
        a, b = ws.store.labels.version(ids[0]), ws.store.labels.version(ids[1])
        parsed = parse_result(
            ann.get("result") or [], width=record.width, height=record.height, classes=ws.config.class_table
        )
        if a is None or b is None or parsed.problems:
            continue  # a review gone from the store, or an unreadable box: left for a person to fix
        if emails is None:
            emails = client.user_emails()
        who = ann.get("completed_by")
        adjudicator = who.get("email") if isinstance(who, dict) else emails.get(int(who or 0), f"user {who}")
        adjudication = Adjudication(str(adjudicator), pid, task["id"], ann["id"], ann.get("lead_time"))
        version = _final_version(
            ws,
            DoubleReview(record.path, a, b),
            [box for _, box in parsed.regions],
            kind=ADJUDICATED,
            excluded=bool(parsed.excluded),
            adjudication=adjudication,
            updated_at=ann.get("updated_at"),
        )
        with ws.store.transaction():
            version_id = ws.store.labels.add_label_version(version)
            ws.store.review.record_pulled(int(ann["id"]), record.path, version_id, ann.get("updated_at"))
        stored += 1
    return stored
