"""The seams stay as issue 19 set them: no function in the packages grows past a screen, and only the Label
Studio client touches the SDK's private parts. Each check is run on a made-up source first, so it can fail."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotator", "training", "review_queue", "bootstrap")
MAX_BODY_LINES = 80
SDK_CLIENT = Path("review_queue/labelstudio/client.py")


def _sources() -> list[Path]:
    return sorted(p.relative_to(ROOT) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def long_functions(source: str, limit: int = MAX_BODY_LINES) -> list[tuple[str, int]]:
    """(name, body lines) of every function whose body, after its signature and docstring, exceeds `limit`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1:
            body = body[1:]  # the docstring
        lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1
        if lines > limit:
            found.append((node.name, lines))
    return found


def private_sdk_uses(source: str) -> list[str]:
    """Reaches into the Label Studio SDK's private parts: `._client_wrapper`, `.httpx_client`, or any
    `sdk._name` / `x.sdk._name`."""
    uses = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        owner_name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
        private = node.attr.startswith("_") and not node.attr.startswith("__")
        if node.attr in ("_client_wrapper", "httpx_client") or (private and owner_name == "sdk"):
            uses.append(f"line {node.lineno}: .{node.attr}")
    return uses


def test_the_checks_can_fail():
    long = "def f():\n    '''doc'''\n" + "    x = 1\n" * (MAX_BODY_LINES + 1)
    assert long_functions(long) == [("f", MAX_BODY_LINES + 1)]
    assert long_functions("def g():\n    '''doc'''\n" + "    x = 1\n" * MAX_BODY_LINES) == []
    assert private_sdk_uses("c.sdk._client_wrapper.httpx_client.request('GET', '/')")
    assert private_sdk_uses("sdk._token")
    assert not private_sdk_uses("client.sdk.projects.get(1)")


@pytest.mark.parametrize("path", _sources(), ids=str)
def test_no_function_body_longer_than_a_screen(path: Path):
    assert long_functions((ROOT / path).read_text()) == [], f"{path}: split these into named steps"


def test_only_the_label_studio_client_touches_the_sdks_private_parts():
    offenders = {
        str(path): uses
        for path in _sources()
        if path != SDK_CLIENT and (uses := private_sdk_uses((ROOT / path).read_text()))
    }
    assert offenders == {}
    assert private_sdk_uses((ROOT / SDK_CLIENT).read_text()), "the client is where the SDK's internals are reached"
