"""The import rule of docs/architecture.md, checked on every module's source (imports inside
functions included): the core `annotator` <- `training`, `review_queue` <- `bootstrap` <- the
CLI shell (`annotator/cli/`). A stage that reaches sideways or upwards fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("annotator", "training", "review_queue", "bootstrap")

# What each layer may import from the project (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "training": {"core"},
    "review_queue": {"core"},
    "bootstrap": {"core", "training", "review_queue"},
    "shell": {"core", "training", "review_queue", "bootstrap"},
}


def layer_of_module(module: str) -> str | None:
    """The layer a dotted module name belongs to (None: not the project's)."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if top == "annotator":
        return "shell" if module == "annotator.cli" or module.startswith("annotator.cli.") else "core"
    return top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module a file imports, with relative imports resolved against its own name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = ".".join(package[: len(package) - node.level + 1] + ([source] if source else []))
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def project_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def violations(path: Path, module: str) -> list[str]:
    own = layer_of_module(module)
    assert own is not None, module
    out = []
    for imported in sorted(imported_modules(path, module)):
        layer = layer_of_module(imported)
        if layer is not None and layer != own and layer not in ALLOWED[own]:
            out.append(f"{module} ({own}) imports {imported} ({layer})")
    return out


def test_every_package_module_is_checked() -> None:
    names = {module_name(p) for p in project_modules()}
    assert {
        "annotator.store",
        "annotator.cli",
        "training.detectors.base",
        "review_queue.queue",
        "bootstrap.rounds",
    } <= names


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_keeps_the_import_rule(path: Path) -> None:
    assert violations(path, module_name(path)) == []


def test_the_checker_catches_a_sideways_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a training module reaching into the review queue is reported,
    through an absolute import inside a function and a relative one."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import annotator.store\n\n\ndef f():\n    from review_queue.labelstudio import push\n"
        "    from ..bootstrap import rounds\n"
    )
    assert violations(probe, "training.detectors.probe") == [
        "training.detectors.probe (training) imports review_queue.labelstudio (review_queue)",
        "training.detectors.probe (training) imports review_queue.labelstudio.push (review_queue)",
    ]
    assert violations(probe, "bootstrap.probe") == []


def test_core_may_not_import_the_shell(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from annotator.cli.common import handle_errors\n")
    assert violations(probe, "annotator.store") == [
        "annotator.store (core) imports annotator.cli.common (shell)",
        "annotator.store (core) imports annotator.cli.common.handle_errors (shell)",
    ]
