"""The workspace's Label Studio project: find or create it, attach the photo folder, build photo URLs.

The project id lives in the store's meta table (`review.project_id`); the labeling config and
the reviewers' instructions are made here from the workspace's class table.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.errors import LabelStudioError
from annotator.fsutil import is_within
from annotator.store import Workspace
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import labeling_config

PROJECT_KEY = "review.project_id"
PENDING_KEY = "review.creating_project"  # the key of a project being created, until its id is stored
SAMPLING = "Uncertainty sampling"


def instructions(ws: Workspace) -> str:
    """What a dermatologist sees before and during the review (HTML)."""
    table = ws.config.class_table
    keys = "".join(
        f"<li><b>{table.describe(n).hotkey}</b> {n}: {table.describe(n).full_name}</li>" for n in table.names
    )
    return (
        "<h3>Reviewing the model's lesion boxes</h3>"
        "<p>Each face photo comes with the boxes the model proposed. The queue serves the photos the model "
        "is least sure about first. Check every box:</p><ul>"
        "<li><b>Right</b>: leave it as it is.</li>"
        "<li><b>Badly placed</b>: drag its corners so it just encloses the pigmented area.</li>"
        "<li><b>Wrong class</b>: select it and press the class key.</li>"
        "<li><b>No lesion there</b>: select it and press Backspace.</li>"
        "<li><b>Missed lesion</b>: press the class key, then drag a box around it.</li></ul>"
        "<p>One box per lentigo and per cafe-au-lait spot; one box per cluster region for freckles and "
        "Hori's nevus (for example one per cheek); one box per melasma patch; one box around the whole nevus "
        "of Ota patch. Class keys:</p><ul>" + keys + "</ul>"
        "<p>If the photo cannot be judged (blurred, badly lit) or is not a benign pigmented lesion case, tick "
        "<b>blurred</b> or <b>atypical</b> under <i>Exclude this photo?</i>: it is left out of training.</p>"
        "<p>Press <b>Submit</b> when the boxes are right. Use <b>Skip</b> only if you cannot decide.</p>"
    )


def stored_project_id(ws: Workspace) -> int | None:
    value = ws.store.get_meta(PROJECT_KEY)
    return int(value) if value else None


def require_project_id(ws: Workspace) -> int:
    pid = stored_project_id(ws)
    if pid is None:
        raise LabelStudioError("nothing was pushed to Label Studio yet: run `annotator review push` first")
    return pid


def get_project(client: ReviewClient, project_id: int) -> Any:
    return client.call(
        f"reading project {project_id}",
        client.sdk.projects.get,
        project_id,
        missing=(
            f"project {project_id} is not on Label Studio at {client.url}: it was deleted or "
            "this is another server; run `annotator review push --new-project` to start "
            "a new one (photos are pushed again)"
        ),
    )


def ensure_project(ws: Workspace, client: ReviewClient, *, new: bool = False) -> Any:
    """The workspace's project (created on first use, or when `new`)."""
    pid = stored_project_id(ws)
    if pid is not None and not new:
        return get_project(client, pid)
    if pid is not None:
        ws.store.forget_tasks(pid)
    key = None if new else (ws.store.get_meta(PENDING_KEY) or None)
    if key is not None:  # a push was killed between creating the project and storing its id: adopt it
        adopted = _project_with_key(client, key)
        if adopted is not None:
            with ws.store.transaction():
                ws.store.set_meta(PROJECT_KEY, str(adopted.id))
                ws.store.set_meta(PENDING_KEY, "")
            return adopted
    key = uuid.uuid4().hex[:12]
    ws.store.set_meta(PENDING_KEY, key)
    project = client.call(
        "creating the review project",
        client.sdk.projects.create,
        idempotent=False,
        title=ws.config.project_title,
        label_config=labeling_config(ws.config.class_table),
        description=f"Pigmented skin lesion boxes: check the model's proposals (workspace key {key})",
        expert_instruction=instructions(ws),
        show_instruction=True,
        show_collab_predictions=True,
        sampling=SAMPLING,
        maximum_annotations=1,
        show_skip_button=True,
    )
    with ws.store.transaction():
        ws.store.set_meta(PROJECT_KEY, str(project.id))
        ws.store.set_meta(PENDING_KEY, "")
    return project


def _project_with_key(client: ReviewClient, key: str) -> Any:
    projects = client.call("listing projects", lambda: list(client.sdk.projects.list()))
    return next((p for p in projects if key in (p.description or "")), None)


def ensure_photo_storage(ws: Workspace, client: ReviewClient, project_id: int) -> None:
    """Attach the image root as a local-files storage (needed to serve the photos; never synced).

    Label Studio then serves ANY file under the image root to every logged-in reviewer, following
    links: so a workspace inside the image root (its database, the server's credentials) or a link
    leading out of it is refused, at every push."""
    check_served_folder(ws)
    folder = str(Path(ws.image_root).resolve())
    storages = client.call("listing the project's storages", client.sdk.import_storage.local.list, project=project_id)
    if any(str(s.path).rstrip("/") == folder for s in storages):
        return
    client.call(
        "attaching the photo folder",
        client.sdk.import_storage.local.create,
        idempotent=False,
        project=project_id,
        path=folder,
        title="photos",
        use_blob_urls=True,
    )


def check_served_folder(ws: Workspace) -> None:
    """Refuse to let Label Studio serve the image root when that would serve more than photos."""
    image_root = Path(ws.image_root).resolve()
    if is_within(ws.root, image_root):
        raise LabelStudioError(
            f"the workspace {ws.root} is inside the image folder {image_root}: Label Studio would "
            "serve its database and the server's credentials to every reviewer; move the "
            "workspace out of the image folder and push again"
        )
    link = _link_leaving(image_root)
    if link is not None:
        raise LabelStudioError(
            f"{link} is a link to {link.resolve()}, outside the image folder {image_root}: Label "
            "Studio would serve what it leads to to every reviewer; replace the link with the "
            "files themselves (or remove it) and push again"
        )


def _link_leaving(root: Path) -> Path | None:
    """The first link under `root` (files and folders; linked folders are not entered) that leads outside it."""
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as listing:
                for entry in listing:
                    if entry.is_symlink():
                        if not is_within(Path(entry.path), root):
                            return Path(entry.path)
                    elif entry.is_dir():
                        stack.append(Path(entry.path))
        except OSError:
            continue  # an unreadable folder is not served either
    return None


def document_prefix(ws: Workspace, client: ReviewClient) -> PurePosixPath:
    """The image root's path under the server's LOCAL_FILES_DOCUMENT_ROOT: photo `rel` is served as prefix/rel."""
    root = Path(client.document_root) if client.document_root else Path(ws.image_root).resolve().parent
    image_root = Path(ws.image_root).resolve()
    try:
        return PurePosixPath(image_root.relative_to(root.resolve()).as_posix())
    except ValueError:
        raise LabelStudioError(
            f"Label Studio serves files under {root}, but the photos are in {image_root}; "
            "start the workspace's own server with `annotator review serve`"
        ) from None


def set_overlap(client: ReviewClient, project: Any, *, reviewers: int, fraction: float = 1.0) -> Any:
    """Ask for `reviewers` independent reviews on `fraction` of the tasks (Label Studio's
    maximum_annotations and overlap_cohort_percentage; Label Studio draws which tasks at random).
    Each reviewer's label stream (`/next`) shows only their own annotation; new tasks take the setting."""
    if reviewers < 1 or not 0.0 < fraction <= 1.0:
        raise LabelStudioError(f"--reviewers must be at least 1 and --overlap in (0, 1] (got {reviewers}, {fraction})")
    percent = round(100 * fraction)
    if project.maximum_annotations == reviewers and (reviewers == 1 or project.overlap_cohort_percentage == percent):
        return project
    return client.call(
        "asking for several reviews per task",
        client.sdk.projects.update,
        project.id,
        maximum_annotations=reviewers,
        overlap_cohort_percentage=percent,
        show_overlap_first=False,
    )


def import_tasks(
    client: ReviewClient, project_id: int, payload: list[dict[str, Any]], *, what: str, rerun: str
) -> list[int]:
    """Bulk-import task payloads into a project and return their new task ids, in payload order.

    what: the tasks, as the progress and error messages name them ("12 conflict tasks");
    rerun: the command that recovers if Label Studio answers with the wrong number of ids.
    """
    response = client.call(
        f"importing {what} into project {project_id}",
        client.request_json,  # not the SDK's import_tasks: its encoder walks every value (0.35 ms a task)
        "POST",
        f"api/projects/{project_id}/import",
        params={"return_task_ids": "true"},
        body=payload,
        idempotent=False,
    )
    ids = [int(t) for t in ((response or {}).get("task_ids") or [])]
    if len(ids) != len(payload):
        raise LabelStudioError(
            f"Label Studio returned {len(ids)} task ids for {len(payload)} imported {what}; run `{rerun}` again"
        )
    return ids
