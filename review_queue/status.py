"""Where the review stands, from the workspace store alone (works with the server down).

Counts pushed / reviewed / excluded / remaining photos, how often reviewers had to correct
the model (the one correction statistic of `review_queue.corrections`, over the current reviews)
and what the review cost against drawing the same photos from scratch (the one time model of
`review_queue.effort`), beside the lead times Label Studio measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from annotator.store import Workspace
from annotator.types import Source
from review_queue.adjudication import agreement_summary
from review_queue.agreement import AgreementSummary
from review_queue.corrections import CorrectionSummary, correction_summary
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.project import get_project, stored_project_id
from review_queue.review_meta import ReviewMeta


@dataclass(frozen=True)
class ServerCounts:
    """The review server's own view of the project (asked only on request)."""

    url: str
    tasks: int | None
    finished: int | None
    model_version: str | None


@dataclass(frozen=True)
class ReviewStatus:
    """The review at a glance. `corrections` covers the current reviews (excluded photos left out)."""

    project_id: int | None
    pushed: int  # photos with a review task
    reviewed: int  # photos whose current label is a review, excluded ones included
    excluded: int
    remaining: int  # photos with a task whose current label is still the model's
    simulated_reviews: int
    corrections: CorrectionSummary
    server: ServerCounts | None = None
    agreement: AgreementSummary | None = None  # photos reviewed twice (review_queue.agreement)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of `annotator review status --json`."""
        c = self.corrections
        out: dict[str, Any] = {
            "project_id": self.project_id,
            "pushed": self.pushed,
            "reviewed": self.reviewed,
            "excluded": self.excluded,
            "remaining": self.remaining,
            "edits": c.edits,
            "predicted_boxes": c.predicted_boxes,
            "correction_rate": c.correction_rate,
            "correction_rate_per_class": c.correction_rate_per_class,
            "edits_by_class": c.edits_per_class,
            "boxes_added_per_photo": c.added_per_photo,
            "effort_modelled": c.effort.to_dict(),
            "mean_lead_time_s": c.mean_lead_time_seconds,  # measured by Label Studio (simulated: the model's)
            "simulated_reviews": self.simulated_reviews,
        }
        if self.server is not None:
            out["server"] = asdict(self.server)
        if self.agreement is not None and self.agreement.overall.photos:
            out["agreement"] = self.agreement.to_dict()
        return out


def review_status(ws: Workspace, client: ReviewClient | None = None) -> ReviewStatus:
    """The review's state from the store; with a client, also the server's own task counts."""
    pid = stored_project_id(ws)
    tasks = ws.store.review.task_map(pid) if pid is not None else {}
    current = ws.store.labels.current_labels()
    reviewed = [v for v in current.values() if v.source is Source.REVIEWED]
    server = None
    if client is not None and pid is not None:
        project = get_project(client, pid)
        server = ServerCounts(
            url=client.url,
            tasks=project.task_number,
            finished=project.finished_task_number,
            model_version=project.model_version,
        )
    return ReviewStatus(
        project_id=pid,
        pushed=len(tasks),
        reviewed=len(reviewed),
        excluded=sum(1 for v in reviewed if v.excluded),
        remaining=sum(1 for p in tasks if p in current and current[p].source is Source.MODEL),
        simulated_reviews=sum(1 for v in reviewed if ReviewMeta.from_dict(v.meta).simulated),
        corrections=correction_summary(reviewed, sizes={r.path: (r.width, r.height) for r in ws.store.labels.images()}),
        server=server,
        agreement=agreement_summary(ws),
    )


def correction_lines(c: CorrectionSummary) -> list[str]:
    """The correction rate and the effort, as plain lines for `review status` (and anyone printing them)."""
    lines: list[str] = []
    if c.correction_rate is not None:
        lines.append(
            f"correction rate {c.correction_rate:.1%}: {c.corrected_boxes} of {c.predicted_boxes} predicted boxes "
            f"changed + {c.added_boxes} missed lesions added, over {c.predicted_boxes + c.added_boxes} boxes "
            "(excluded photos left out)"
        )
        lines += [f"  {label:>5}: {value:.1%}" for label, value in c.correction_rate_per_class.items()]
    elif c.photos:
        lines.append(f"correction rate unknown: the {c.photos} reviewed photos hold no box, predicted or drawn")
    e = c.effort
    if e.photos:
        lines.append(
            f"modelled effort on the same {e.photos} photos (review_queue.effort): reviewer "
            f"{e.reviewer_seconds_per_photo:.1f} s and {e.reviewer_operations_per_photo:.2f} box operations per photo, "
            f"drawing from scratch {e.scratch_seconds_per_photo:.1f} s and {e.scratch_operations_per_photo:.2f}"
        )
    if c.timed_photos and c.real_reviews:
        lines.append(
            f"measured by Label Studio (real reviewers' lead times): {c.mean_lead_time_seconds:.1f} s per photo "
            f"over {c.timed_photos} timed photos, {c.simulated_photos} of them simulated"
        )
    return lines
