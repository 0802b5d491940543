"""Connect to Label Studio and turn every SDK or network failure into one LabelStudioError with a fix.

The URL comes from --url, annotator.toml ([review] url) or the workspace's own server
(server.json); the token from LABEL_STUDIO_API_KEY (a legacy token or a personal access token)
or, for the workspace's own server only, its 0600 credentials file. The token never appears
in a message: every message passes through `_scrub`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotator.errors import LabelStudioError
from annotator.store import Workspace
from review_queue.labelstudio.server import credentials_path, read_credentials, read_server_info

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"  # what a self-run Label Studio serves files under
T = TypeVar("T")

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)  # the request never reached the server
CHECK_TIMEOUT_S = 10.0  # the first request (who am I?): a server that cannot answer it this fast is hung
_RETRY_STATUS_ANY = (500, 502, 503, 504)
_RETRY_STATUS_UNSENT = (502, 503, 504)  # a proxy answered: the server did not act on it


@dataclass
class ReviewClient:
    """An SDK client with bounded retries and error mapping.

    document_root: the server's LOCAL_FILES_DOCUMENT_ROOT when known (our own server), used to
    build photo URLs; None means "the image root's parent", what `annotator review serve` uses.
    """

    url: str
    sdk: LabelStudio
    _token: str
    document_root: Path | None = None
    local_log: Path | None = None
    tries: int = 4
    backoff_s: float = 0.25

    def __repr__(self) -> str:
        return f"ReviewClient(url={self.url!r})"

    def call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        idempotent: bool = True,
        missing: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run one SDK call. Transport errors and 5xx are retried `tries` times with backoff;
        a non-idempotent call (creating things) only when the request surely did not arrive.
        A timeout is never retried: it has already waited the whole timeout once."""
        for attempt in range(self.tries):
            last = attempt == self.tries - 1
            try:
                return fn(*args, **kwargs)
            except httpx.TimeoutException as exc:
                raise self._transport_error(what, exc) from None
            except httpx.TransportError as exc:
                if last or not (idempotent or isinstance(exc, _NOT_SENT)):
                    raise self._transport_error(what, exc) from None
            except ApiError as exc:
                status = exc.status_code or 0
                retry_on = _RETRY_STATUS_ANY if idempotent else _RETRY_STATUS_UNSENT
                if last or status not in retry_on:
                    raise self._api_error(what, exc, missing) from None
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def task_pages(
        self,
        project_id: int,
        *,
        fields: str = "task_only",
        include: str | None = None,
        query: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[list[Any]]:
        """The project's tasks, one page (a list of SDK task objects) per request."""

        def fetch(page: int) -> list[Any]:
            pager = self.sdk.tasks.list(
                project=project_id, fields=fields, include=include, query=query, page=page, page_size=page_size
            )
            return list(pager.items or [])

        return self._pages(project_id, fetch, page_size)

    def _pages(self, project_id: int, fetch: Callable[[int], list[Any]], page_size: int) -> Iterator[list[Any]]:
        """Pages 1, 2, ... of a task listing until a short one, each fetched through `call` (retried, errors
        mapped); Label Studio answers 404 for a page past the end, which ends the listing."""
        page = 1
        while True:

            def one(p: int = page) -> list[Any]:
                try:
                    return fetch(p)
                except ApiError as exc:
                    if exc.status_code == 404 and p > 1:  # Label Studio's way of saying "no more pages"
                        return []
                    raise

            items = self.call(f"listing the tasks of project {project_id}", one)
            if items:
                yield items
            if len(items) < page_size:
                return
            page += 1

    def request_json(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One API request whose JSON this client encodes and decodes itself (plain dicts and lists):
        the SDK's typed models cost ~0.6 ms per task each way, more than Label Studio takes to answer
        (reading 2,000 tasks: 1.2 s). Goes through the SDK's HTTP client (its auth, one keep-alive
        connection); a non-2xx answer raises the SDK's ApiError, so `call` retries and maps it as usual."""
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        response = self.sdk._client_wrapper.httpx_client.request(
            path,
            method=method,
            params=params,
            content=content,
            headers={"Content-Type": "application/json"} if content is not None else None,
        )
        if not 200 <= response.status_code < 300:
            try:
                detail: Any = response.json()
            except ValueError:
                detail = response.text
            raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=detail)
        return response.json() if response.content else None

    def task_rows(
        self, project_id: int, *, include: str, query: str | None = None, page_size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """The project's tasks as plain dicts with the fields in `include`, one page per request
        (like `task_pages`, without the SDK's models)."""

        def fetch(page: int) -> list[dict[str, Any]]:
            params = {"project": project_id, "fields": "task_only", "include": include, "query": query}
            # resolve_uri off: no storage links are signed for fields nobody reads here (~10% of the answer time)
            params.update(page=page, page_size=page_size, resolve_uri="false")  # (None values are left out)
            answer = self.request_json("GET", "api/tasks/", params=params)
            return list(answer.get("tasks") or []) if isinstance(answer, dict) else []

        return self._pages(project_id, fetch, page_size)

    def tasks_with_annotations(self, project_id: int, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every task of the project as a plain dict with its annotations and predictions (`fields=all`);
        none when the project is gone (404)."""

        def fetch(page: int) -> list[dict[str, Any]]:
            params = {"project": project_id, "fields": "all", "page_size": page_size, "page": page}
            try:
                answer = self.request_json("GET", "api/tasks/", params=params)
            except ApiError as exc:
                if exc.status_code == 404:
                    return []
                raise
            return list(answer.get("tasks") or []) if isinstance(answer, dict) else list(answer or [])

        return [task for page in self._pages(project_id, fetch, page_size) for task in page]

    def user_emails(self) -> dict[int, str]:
        """Every Label Studio user's email by user id (annotations name their author by id)."""
        users = self.call("listing users", self.sdk.users.list)
        return {int(u.id): str(u.email) for u in users}

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The task Label Studio's label stream serves next to this client's user (`GET
        /api/projects/{id}/next`: the project's sampling, e.g. uncertainty sampling), with its
        predictions; None when it has none left. Serving locks the task to the user until annotated."""
        what = f"asking project {project_id} for the next task"
        return self._request_or_none(what, "GET", f"api/projects/{project_id}/next")

    def annotate(self, task_id: int, result: list[dict[str, Any]], *, what: str, **fields: Any) -> Any:
        """Submit one annotation of `task_id` as this client's user (never retried once sent: it would be made
        twice). fields: Label Studio's other annotation fields (lead_time, completed_by, parent_prediction)."""
        return self.call(
            what,
            self.sdk.annotations.create,
            task_id,
            idempotent=False,
            result=result,
            was_cancelled=False,
            ground_truth=False,
            **fields,
        )

    def postpone(self, task_id: int) -> None:
        """Leave a task for later in this user's stream (Label Studio's "postpone": an empty draft)."""
        body = {"result": [], "was_postponed": True, "lead_time": 0}
        self._request_or_none(f"postponing task {task_id}", "POST", f"api/tasks/{task_id}/drafts", body=body)

    def _request_or_none(self, what: str, method: str, path: str, *, body: Any = None) -> Any:
        """One REST call the SDK has no method for, through `call` (a GET retried, errors mapped); None on 404."""

        def send() -> Any:
            try:
                return self.request_json(method, path, body=body)
            except ApiError as exc:
                if exc.status_code == 404:
                    return None
                raise

        return self.call(what, send, idempotent=method == "GET")

    def health(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- error messages --------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _transport_error(self, what: str, exc: Exception) -> LabelStudioError:
        if isinstance(exc, httpx.TimeoutException):
            msg = (
                f"Label Studio at {self.url} did not answer in time ({type(exc).__name__} while {what}); check "
                "that it is running and not overloaded (`annotator review serve`), then run the command again"
            )
        elif isinstance(exc, _NOT_SENT):
            msg = (
                f"Label Studio at {self.url} is not reachable ({type(exc).__name__} while {what}); "
                "start it with `annotator review serve`"
            )
        else:
            msg = (
                f"Label Studio at {self.url} stopped answering ({type(exc).__name__} while {what}); "
                "check that it is running (`annotator review serve`) and run the command again"
            )
        return LabelStudioError(self._scrub(msg))

    def _api_error(self, what: str, exc: ApiError, missing: str | None) -> LabelStudioError:
        status = exc.status_code or 0
        if status == 401:
            msg = (
                f"Label Studio at {self.url} refused the token ({what}); set {API_KEY_ENV} to a valid token "
                "(Account & Settings > Personal Access Token, or the legacy token) or unset it to use the "
                "workspace's own server"
            )
        elif status == 403:
            msg = (
                f"Label Studio at {self.url} does not allow this user to {what}; use an administrator's "
                f"token in {API_KEY_ENV}"
            )
        elif status == 404:
            msg = missing or (
                f"Label Studio at {self.url} has no such object ({what}): it was deleted, or this is another server"
            )
        elif status >= 500:
            where = f"see {self.local_log}" if self.local_log else "see the server's log"
            msg = (
                f"Label Studio at {self.url} failed with HTTP {status} while {what}; {where}, then run "
                "the command again"
            )
        else:
            msg = f"Label Studio at {self.url} rejected the request ({what}, HTTP {status}): {_body_text(exc)}"
        return LabelStudioError(self._scrub(msg))


def _body_text(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
        return str(detail)[:500]
    return str(body)[:200]


def connect(
    ws: Workspace,
    *,
    url: str | None = None,
    api_key: str | None = None,
    document_root: Path | None = None,
    timeout: float = 300.0,
) -> ReviewClient:
    """A client for the workspace's Label Studio; checks the server answers and accepts the token.

    document_root: where the server serves local files from; default: the workspace's own
    server's, else $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, else the image root's parent.
    """
    local = read_server_info(ws.root)
    local_log: Path | None = None
    if url is None:
        url = ws.config.label_studio_url or (local.url if local else None)
    if url is None:
        raise LabelStudioError(
            "no Label Studio to talk to: start one with `annotator review serve` or pass --url http://HOST:PORT"
        )
    url = url.rstrip("/")
    is_local = local is not None and local.url == url
    if is_local:
        assert local is not None
        local_log = Path(local.log)
        document_root = document_root or Path(local.document_root)
    elif document_root is None and os.environ.get(DOCUMENT_ROOT_ENV):
        document_root = Path(os.environ[DOCUMENT_ROOT_ENV])
    token = api_key or os.environ.get(API_KEY_ENV) or None
    if token is None and is_local:
        creds = read_credentials(ws.root)
        token = creds.token if creds else None
    if token is None:
        hint = f" ({credentials_path(ws.root)} only serves the workspace's own server)" if local else ""
        raise LabelStudioError(f"no token for Label Studio at {url}: set {API_KEY_ENV} to your token{hint}")
    try:
        # api_key must be explicit: the SDK reads LABEL_STUDIO_API_KEY once, at import time.
        sdk = LabelStudio(base_url=url, api_key=token, timeout=timeout, max_retries=0)
    except ApiError:  # an expired personal access token is refused before any request
        raise LabelStudioError(
            f"the token in {API_KEY_ENV} has expired; create a new Personal Access Token in "
            f"Label Studio at {url} (Account & Settings)"
        ) from None
    client = ReviewClient(url=url, sdk=sdk, _token=token, document_root=document_root, local_log=local_log)
    client.call(
        "checking the token", sdk.users.whoami, request_options={"timeout_in_seconds": min(timeout, CHECK_TIMEOUT_S)}
    )
    return client
