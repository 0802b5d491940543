"""The review queue as the loop sees it: push a round's predictions, pull reviewers' work back (and
settle double reviews), say how many reviews wait unpulled and where the review stands. Label Studio
is the one implementation today (`review_queue.labelstudio`: the transport); a second annotation
server would implement the same protocol and return the same typed results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from annotator.store import Workspace

if TYPE_CHECKING:
    from review_queue.labelstudio.client import ReviewClient
    from review_queue.status import ReviewStatus

Progress = Callable[[str, int, int], None]  # (step, done, total)


@dataclass(frozen=True)
class PushResult:
    """What a push did: stored with the round (`to_dict`, its JSON) and printed by `review push --json`."""

    project_id: int
    model_version: str | None
    created: int  # tasks imported now
    adopted: int  # tasks an interrupted push had created, now recorded
    replaced: int  # untouched tasks whose prediction was replaced by a newer round's
    kept_annotated: int  # tasks with a newer prediction, left alone because a reviewer already worked on them
    up_to_date: int  # tasks already carrying the current prediction
    conflicts: int = 0  # photos with an open label conflict, served before every model prediction
    control: int = 0  # new tasks served without prediction (the effort study's draw-from-scratch arm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushResult:
        """A push result stored as `to_dict` wrote it (a key added since takes its default)."""
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class PullResult:
    """What a pull stored: `to_dict` is its JSON (with `stored`), printed by `review pull --json`."""

    project_id: int
    tasks: int  # tasks with any annotation (submitted or skipped) in the export
    current: int  # annotations stored as the photo's current label
    history: int  # annotations stored as history (superseded by a later one on the same task)
    already_pulled: int
    skipped: int  # skipped ("cancelled") annotations: counted, never stored as labels
    issues: list[dict[str, Any]] = field(default_factory=list)
    issues_file: str | None = None
    fixed: list[dict[str, Any]] = field(default_factory=list)  # boxes clipped or dropped in stored reviews
    full: bool = True  # a full re-sync (else only tasks changed since the last pull were exported)
    reason: str = ""  # why a full pull was made, or "incremental"
    deleted: list[dict[str, Any]] = field(default_factory=list)  # stored reviews since deleted in Label Studio

    @property
    def stored(self) -> int:
        return self.current + self.history

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stored": self.stored}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PullResult:
        """A pull result as `to_dict` wrote it (`stored` is recomputed)."""
        return cls(**_known_fields(cls, data))


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (derived keys such as `stored` left out)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


class ReviewQueue(Protocol):
    """Where dermatologists review predictions. Every call is idempotent and safe to rerun."""

    url: str

    def push(self, ws: Workspace) -> PushResult:
        """Serve every photo whose current label is a model's, most uncertain first; never touch
        a task a reviewer has worked on."""
        ...

    def pull(self, ws: Workspace) -> PullResult:
        """Store every new or edited review as a `reviewed` label version with its edit operations,
        then settle double reviews (merge agreeing ones, send the others to adjudication)."""
        ...

    def pending(self, ws: Workspace) -> int:
        """Reviews on the server not yet pulled into the workspace."""
        ...

    def status(self, ws: Workspace) -> ReviewStatus:
        """Pushed, reviewed, excluded and remaining photos, and the correction statistic."""
        ...


class LabelStudioQueue:
    """The review queue on a Label Studio server (the workspace's own or one given by URL)."""

    def __init__(self, client: ReviewClient) -> None:
        self.client = client
        self.url: str = client.url

    def push(self, ws: Workspace) -> PushResult:
        from review_queue.labelstudio.push import push

        return push(ws, self.client)

    def pull(self, ws: Workspace, *, full: bool = False, progress: Progress | None = None) -> PullResult:
        """The transport's pull, then the double-review rules (`review_queue.adjudication.settle`);
        full: re-read every annotated task, not only those changed since the last pull."""
        from review_queue.adjudication import settle
        from review_queue.labelstudio.pull import pull

        result = pull(ws, self.client, full=full, progress=progress)
        settled = settle(ws, self.client)
        if settled.merged or settled.adjudicated:
            ws.sync_voc_mirror()  # the merged and adjudicated labels (a kill before this: the next writer repairs it)
        return result

    def pending(self, ws: Workspace) -> int:
        from review_queue.labelstudio.pull import pending_annotations

        return pending_annotations(ws, self.client)

    def status(self, ws: Workspace) -> ReviewStatus:
        from review_queue.status import review_status

        return review_status(ws, self.client)


def open_queue(ws: Workspace, *, url: str | None = None, document_root: Path | None = None) -> ReviewQueue:
    """Connect to the workspace's review server (checks that it answers and accepts the token)."""
    from review_queue.labelstudio.client import connect

    return LabelStudioQueue(connect(ws, url=url, document_root=document_root))
