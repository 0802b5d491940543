"""The review queue as the loop sees it: push a round's predictions, pull reviewers' work back,
say how many reviews wait unpulled and where the review stands. Label Studio is the one
implementation today (`review_queue.labelstudio`); a second annotation server would implement
the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from annotator.store import Workspace

if TYPE_CHECKING:
    from review_queue.status import ReviewStatus


class QueueResult(Protocol):
    """What push and pull return: a record the loop stores with the round (JSON-ready)."""

    def to_dict(self) -> dict[str, Any]: ...


class ReviewQueue(Protocol):
    """Where dermatologists review predictions. Every call is idempotent and safe to rerun."""

    url: str

    def push(self, ws: Workspace) -> QueueResult:
        """Serve every photo whose current label is a model's, most uncertain first; never touch
        a task a reviewer has worked on."""
        ...

    def pull(self, ws: Workspace) -> QueueResult:
        """Store every new or edited review as a `reviewed` label version with its edit operations."""
        ...

    def pending(self, ws: Workspace) -> int:
        """Reviews on the server not yet pulled into the workspace."""
        ...

    def status(self, ws: Workspace) -> ReviewStatus:
        """Pushed, reviewed, excluded and remaining photos, and the correction statistic."""
        ...


class LabelStudioQueue:
    """The review queue on a Label Studio server (the workspace's own or one given by URL)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.url: str = client.url

    def push(self, ws: Workspace) -> QueueResult:
        from review_queue.labelstudio.push import push

        return push(ws, self.client)

    def pull(self, ws: Workspace) -> QueueResult:
        from review_queue.labelstudio.pull import pull

        return pull(ws, self.client)

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
