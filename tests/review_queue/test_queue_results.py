"""The review queue's typed seams, without a server: push and pull results round-trip through the JSON
a round stores, every project kind is described once, and only the client touches the SDK's insides."""

from __future__ import annotations

import ast
from pathlib import Path

from annotator.classes import ClassTable
from review_queue.labelstudio.project import PROJECT_KINDS, REVIEW
from review_queue.queue import PullResult, PushResult

REPO = Path(__file__).resolve().parents[2]


def test_a_push_result_reads_back_from_its_json_and_an_older_row_without_conflicts_still_loads():
    pushed = PushResult(7, "round-1", created=3, adopted=1, replaced=2, kept_annotated=0, up_to_date=4, conflicts=1)
    assert PushResult.from_dict(pushed.to_dict()) == pushed
    older = {k: v for k, v in pushed.to_dict().items() if k != "conflicts"}
    assert PushResult.from_dict(older).conflicts == 0


def test_a_pull_result_writes_stored_and_reads_back_without_it():
    pulled = PullResult(7, tasks=5, current=3, history=1, already_pulled=2, skipped=1, issues=[{"task_id": 1}])
    row = pulled.to_dict()
    assert row["stored"] == 4
    assert PullResult.from_dict(row) == pulled


def test_every_project_kind_has_its_own_title_and_id_key_and_only_the_review_project_is_keyed():
    kinds = list(PROJECT_KINDS.values())
    titles = [k.fields(ClassTable(), "T", key="k")["title"] for k in kinds]
    assert len(set(titles)) == len(kinds) and len({k.id_key for k in kinds}) == len(kinds)
    assert [k for k in kinds if k.keyed] == [REVIEW]


def test_only_the_label_studio_client_touches_the_sdks_private_attributes():
    touching = []
    for package in ("annotator", "training", "review_queue", "bootstrap", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr == "_client_wrapper":
                    touching.append(path.relative_to(REPO).as_posix())
    assert set(touching) <= {"review_queue/labelstudio/client.py"}


def test_the_transport_does_not_import_the_double_review_rules():
    for path in (REPO / "review_queue" / "labelstudio").glob("*.py"):
        imported = {node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
        assert "review_queue.adjudication" not in imported, path.name
