"""Every DAG file imports cleanly, does no I/O at parse time, and follows the house rules."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import pytest

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DAG

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def test_there_are_dag_files() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS}"


def test_every_dag_file_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    parsed_files = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert parsed_files == {p.name for p in DAG_FILES}


def test_parsing_does_no_network_connection_or_variable_lookup() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    with (
        mock.patch.object(BaseHook, "get_connection") as get_connection,
        mock.patch.object(Variable, "get") as variable_get,
        mock.patch.object(socket.socket, "connect") as connect,
        mock.patch.object(socket.socket, "connect_ex") as connect_ex,
        mock.patch.object(socket, "getaddrinfo") as getaddrinfo,
        mock.patch("os.environ.get", wraps=__import__("os").environ.get) as env_get,
    ):
        bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert bag.dags, "nothing was parsed"
    assert get_connection.call_count == 0
    assert variable_get.call_count == 0
    assert connect.call_count == 0
    assert connect_ex.call_count == 0
    assert getaddrinfo.call_count == 0
    # no connection or variable read through the environment either
    looked_up = [c.args[0] for c in env_get.call_args_list if c.args]
    assert not [k for k in looked_up if str(k).startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]


def _dag_call_keywords(path: Path) -> set[str]:
    """Keywords passed to ``@dag(...)`` / ``DAG(...)`` in a file: catchup must be said there."""
    import ast

    keywords: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ("dag", "DAG"):
                keywords |= {k.arg for k in node.keywords if k.arg}
    return keywords


def _dags(dagbag: DagBag) -> list[DAG]:
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_every_dag_follows_the_house_rules(dagbag: DagBag) -> None:
    problems: list[str] = []
    for dag in _dags(dagbag):
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        if not (dag.doc_md and dag.doc_md.strip()):
            problems.append(f"{dag.dag_id}: no doc_md")
        if "catchup" not in _dag_call_keywords(Path(dag.fileloc)):
            problems.append(f"{dag.dag_id}: catchup not explicit")
        for t in dag.tasks:
            if not t.owner or t.owner == "airflow":
                problems.append(f"{dag.dag_id}.{t.task_id}: no owner")
            if t.retries is None or t.retries < 2:
                problems.append(f"{dag.dag_id}.{t.task_id}: retries {t.retries} < 2")
    assert problems == []


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_no_heavy_library_at_module_level(path: Path) -> None:
    """Heavy clients (Okta SDK, GX, pandas, Kafka) load inside tasks, never at parse."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in top_level
        for a in n.names
    }
    heavy = {"okta", "great_expectations", "pandas", "confluent_kafka", "sqlalchemy", "httpx"}
    assert not {n.split(".")[0] for n in names} & heavy
