"""Label Studio accounts the tool acts as: simulated reviewers, the simulated adjudicator, readers.

Double review needs each reviewer to be served tasks by Label Studio as themselves (`/next` leaves
out only the tasks the *asking* user annotated), so every simulated person is a real Label Studio
user who signs up and logs in like a person would, and gets their own API token. Their password is
derived from the administrator's token (HMAC), so any workspace holding that token can log them in
again and nothing new is written to disk; the administrator's token already grants everything.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

from annotator.errors import LabelStudioError
from review_queue.labelstudio.client import ReviewClient
from review_queue.labelstudio.convert import SIMULATED_REVIEWER

SIMULATED_ADJUDICATOR = "simulated-adjudicator@annotator.local"


def simulated_reviewer(number: int) -> str:
    """The email of simulated reviewer `number` (1, 2, ...) of a double review."""
    return f"simulated-reviewer-{number}@annotator.local"


def is_simulated(email: str | None) -> bool:
    """A review made by one of the tool's simulated people, never by a real dermatologist."""
    text = str(email or "")
    return text == SIMULATED_REVIEWER or (text.startswith("simulated-") and text.endswith("@annotator.local"))


def _password(admin: ReviewClient, email: str) -> str:
    return hmac.new(admin._token.encode(), email.encode(), hashlib.sha256).hexdigest()[:32]


def client_as(admin: ReviewClient, email: str) -> ReviewClient:
    """A client acting as the Label Studio user `email` (signed up on first use), with their own token."""
    password = _password(admin, email)
    token = _login(admin.url, email, password, signup=False) or _login(admin.url, email, password, signup=True)
    if token is None:
        raise LabelStudioError(
            f"cannot sign up or log in the Label Studio user {email} at {admin.url}: sign-up may be closed "
            "(DISABLE_SIGNUP_WITHOUT_LINK) or the account exists with another password"
        )
    return ReviewClient(
        url=admin.url,
        sdk=type(admin.sdk)(base_url=admin.url, api_key=token, timeout=60.0, max_retries=0),
        _token=token,
        document_root=admin.document_root,
        local_log=admin.local_log,
    )


def _login(url: str, email: str, password: str, *, signup: bool) -> str | None:
    """Log in (or sign up) through Label Studio's web forms; the user's legacy API token, or None."""
    page = "/user/signup/" if signup else "/user/login/"
    try:
        with httpx.Client(base_url=url, timeout=30.0, follow_redirects=False) as web:
            web.get(page)
            csrf = web.cookies.get("csrftoken") or ""
            form = {"email": email, "password": password, "csrfmiddlewaretoken": csrf}
            answer = web.post(page, data=form, headers={"Referer": url + page, "X-CSRFToken": csrf})
            if answer.status_code not in (302, 303) or "sessionid" not in web.cookies:
                return None
            token = web.get("/api/current-user/token")
            if token.status_code != 200:
                return None
            return str(token.json().get("token") or "") or None
    except httpx.HTTPError as exc:
        raise LabelStudioError(f"Label Studio at {url} stopped answering while logging in {email} ({exc})") from None
