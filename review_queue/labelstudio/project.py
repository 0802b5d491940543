"""The workspace's Label Studio projects: every kind described once (`ProjectKind`: review,
adjudication, reader study), made by one function; find or create the review project, attach the
photo folder, build photo URLs.

Project ids live in the store's meta table (`review.project_id` and each kind's key); the labeling
configs (`convert`) and the reviewers' instructions (here) are made from the workspace's class table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.classes import ClassTable
from annotator.errors import LabelStudioError
from annotator.fsutil import is_within
from annotator.store import Workspace
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import labeling_config, readers_labeling_config

PROJECT_KEY = "review.project_id"
PENDING_KEY = "review.creating_project"  # the key of a project being created, until its id is stored
ADJUDICATION_PROJECT_KEY = "review.adjudication_project_id"
READERS_PROJECT_KEY = "review.readers_project_id"
ACCEPTANCE_AUDIT_PROJECT_KEY = "review.acceptance_audit_project_id"
LABEL_AUDIT_PROJECT_KEY = "review.label_audit_project_id"
SAMPLING = "Uncertainty sampling"


# ---- what the reviewers read -----------------------------------------------------------------


def review_instructions(classes: ClassTable) -> str:
    """What a dermatologist sees before and during the review (HTML)."""
    keys = "".join(
        f"<li><b>{classes.describe(n).hotkey}</b> {n}: {classes.describe(n).full_name}</li>" for n in classes.names
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


def adjudication_instructions(classes: ClassTable) -> str:
    """What the adjudicator reads (HTML; the same for every class table)."""
    return (
        "<h3>Adjudication: two dermatologists disagreed on this photo</h3>"
        "<p>Each review is shown as a prediction named <i>review by</i> its reviewer. Compare them, start from "
        "the one closer to right, correct its boxes and classes as in a normal review, and press <b>Submit</b>. "
        "Your annotation becomes the photo's label; both reviews stay in its history.</p>"
    )


def readers_instructions(classes: ClassTable) -> str:
    """What a reader of the blinded reader study reads (HTML; the same for every class table)."""
    return (
        "<h3>Reader study (blinded)</h3>"
        "<p>Each photo is from the held-out test set. No model's answer and no other reader's answer is shown. "
        "Tick every lesion type you see in the photo (or <b>no lesion</b>), optionally box the lesions, and "
        "press <b>Submit</b>. Your reads are scored against the reference labels like the models are.</p>"
    )


def acceptance_audit_instructions(classes: ClassTable) -> str:
    """What an auditor reads (HTML): box every lesion from scratch; no model's boxes are shown."""
    return (
        "<h3>Acceptance audit (blind)</h3>"
        "<p>These photos were drawn at random from those whose model labels would be accepted without a "
        "person looking. No model's boxes are shown, on purpose: box <b>every</b> pigmented lesion yourself, "
        "with its class, as you would on a new photo. Your boxes are compared with the model's; the share of "
        "photos where they differ decides whether the rest may be accepted. Your boxes also become the photo's "
        "label.</p><p>Use <b>Skip</b> only if you cannot judge the photo.</p>"
    )


def label_audit_instructions(classes: ClassTable) -> str:
    """What a senior reads in the label audit (HTML): a stored label the audit doubts, and the model's view."""
    return (
        "<h3>Label audit: a stored label that may hold a slip</h3>"
        "<p>These photos already have a label made or reviewed by a person. A model that never saw the photo "
        "disagrees with it; the note above the photo says how (<b>overlooked</b>: a lesion without a box; "
        "<b>swapped class</b>: a box whose class looks wrong; <b>badly located</b>: a box drawn loose or "
        "off). You start from the current label. The model's suggestion is listed as a second prediction: "
        "compare, then correct the label where it is wrong, or leave it as it is, and press <b>Submit</b>. "
        "Your annotation becomes the photo's label; the old one stays in its history.</p>"
        "<p>Use <b>Skip</b> only if you cannot judge the photo: its label then stays as it is.</p>"
    )


# ---- the kinds of project --------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectKind:
    """One kind of Label Studio project the tool makes, described once: what Label Studio is told
    when `create_project` makes one, and where the store keeps its id."""

    name: str  # the kind's key in PROJECT_KINDS
    what: str  # how messages name it ("the review project")
    title: str  # "{title}" is the workspace's project title (annotator.toml)
    description: str  # "{key}": a workspace key that lets a killed push find the project it made
    label_config: Callable[[ClassTable], str]
    instructions: Callable[[ClassTable], str]
    id_key: str  # the store's meta key holding the project's id
    show_predictions: bool  # the tasks' predictions are shown (False: a blinded study)
    sampling: str | None = None  # the order Label Studio serves tasks in; None: its default (sequential)
    read_by_all: bool = False  # every task asks for `reads` reads (overlap on all tasks); else one review a task

    @property
    def keyed(self) -> bool:
        """Its description carries the workspace key (a project made by a killed command is adopted)."""
        return "{key}" in self.description

    def settings(self, reads: int = 1) -> dict[str, Any]:
        """How many reviews Label Studio asks for per task."""
        if not self.read_by_all:
            return {"maximum_annotations": 1}
        return {"maximum_annotations": reads, "overlap_cohort_percentage": 100, "show_overlap_first": False}

    def fields(self, classes: ClassTable, project_title: str, *, reads: int = 1, key: str = "") -> dict[str, Any]:
        """The fields of Label Studio's create-project request."""
        fields: dict[str, Any] = {
            "title": self.title.format(title=project_title),
            "label_config": self.label_config(classes),
            "description": self.description.format(key=key),
            "expert_instruction": self.instructions(classes),
            "show_instruction": True,
            "show_collab_predictions": self.show_predictions,
            "show_skip_button": True,
            **self.settings(reads),
        }
        if self.sampling is not None:
            fields["sampling"] = self.sampling
        return fields


REVIEW = ProjectKind(
    name="review",
    what="the review project",
    title="{title}",
    description="Pigmented skin lesion boxes: check the model's proposals (workspace key {key})",
    label_config=labeling_config,
    instructions=review_instructions,
    id_key=PROJECT_KEY,
    show_predictions=True,
    sampling=SAMPLING,
)
ADJUDICATION = ProjectKind(
    name="adjudication",
    what="the adjudication project",
    title="{title} adjudication",
    description="Photos whose two reviews disagree: decide the label",
    label_config=labeling_config,
    instructions=adjudication_instructions,
    id_key=ADJUDICATION_PROJECT_KEY,
    show_predictions=True,
)
READERS = ProjectKind(
    name="readers",
    what="the readers' project",
    title="{title} reader study",
    description="Reader study: the test photos, blinded (no predictions)",
    label_config=readers_labeling_config,
    instructions=readers_instructions,
    id_key=READERS_PROJECT_KEY,
    show_predictions=False,
    read_by_all=True,
)
ACCEPTANCE_AUDIT = ProjectKind(
    name="acceptance-audit",
    what="the acceptance audit project",
    title="{title} acceptance audit",
    description="Acceptance audit: photos drawn at random from those finalize would accept, boxed blind",
    label_config=labeling_config,
    instructions=acceptance_audit_instructions,
    id_key=ACCEPTANCE_AUDIT_PROJECT_KEY,
    show_predictions=False,
)
LABEL_AUDIT = ProjectKind(
    name="label-audit",
    what="the label audit project",
    title="{title} label audit",
    description="Label audit: stored labels a model out of sample disagrees with, worst first",
    label_config=labeling_config,
    instructions=label_audit_instructions,
    id_key=LABEL_AUDIT_PROJECT_KEY,
    show_predictions=True,
)
# Every kind of project the tool makes in Label Studio.
PROJECT_KINDS: dict[str, ProjectKind] = {
    kind.name: kind for kind in (REVIEW, ADJUDICATION, READERS, ACCEPTANCE_AUDIT, LABEL_AUDIT)
}


def create_project(
    ws: Workspace, client: ReviewClient, kind: ProjectKind, *, reads: int = 1, key: str | None = None
) -> Any:
    """Make a project of `kind` in Label Studio (the one way any kind is made; the caller records its id).
    Never retried once sent: a retry could make a second project.

    reads: reviews asked per task (`read_by_all` kinds); key: the workspace key of a `keyed` kind."""
    if kind.keyed != (key is not None):
        raise ValueError(f"creating {kind.what}: a workspace key is {'needed' if kind.keyed else 'not taken'}")
    fields = kind.fields(ws.config.class_table, ws.config.project_title, reads=reads, key=key or "")
    return client.call(f"creating {kind.what}", client.sdk.projects.create, idempotent=False, **fields)


def ensure_side_project(ws: Workspace, client: ReviewClient, kind: ProjectKind, *, reads: int = 1) -> int:
    """The workspace's project of `kind` (an audit, the reader study): made on first use, its id stored, the photo
    folder attached."""
    pid = stored_project_id(ws, kind)
    if pid is None:
        pid = int(create_project(ws, client, kind, reads=reads).id)
        ws.store.set_meta(kind.id_key, str(pid))
        ensure_photo_storage(ws, client, pid)
    return pid


def stored_project_id(ws: Workspace, kind: ProjectKind = REVIEW) -> int | None:
    """The id of the workspace's project of `kind`, None before it is made."""
    value = ws.store.get_meta(kind.id_key)
    return int(value) if value else None


def require_project_id(ws: Workspace) -> int:
    pid = stored_project_id(ws)
    if pid is None:
        raise LabelStudioError("nothing was pushed to Label Studio yet: run `annotator review push` first")
    return pid


def get_project(client: ReviewClient, project_id: int, *, missing: str | None = None) -> Any:
    """The project `project_id` (missing: the message when it is gone; default: the review project's)."""
    return client.call(
        f"reading project {project_id}",
        client.sdk.projects.get,
        project_id,
        missing=missing
        or (
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
        ws.store.review.forget_tasks(pid)
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
    project = create_project(ws, client, REVIEW, key=key)
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
