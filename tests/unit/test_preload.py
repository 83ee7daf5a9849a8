"""plugins/scimflow_preload.py: heavy imports in the scheduler only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "scimflow_preload.py"

SCRIPT = """
import importlib.util, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
spec = importlib.util.spec_from_file_location("scimflow_preload", {plugin!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(sorted(n for n in module.PRELOAD if n in sys.modules))
"""


def run_as(*argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(plugin=str(PLUGIN)), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.strip()


def test_the_scheduler_gets_every_module_preloaded() -> None:
    loaded = run_as("/venv/bin/airflow", "scheduler")
    assert "'great_expectations'" in loaded and "'okta.client'" in loaded
    assert "'scimflow.stream.batch'" in loaded


def test_any_other_process_loads_nothing() -> None:
    assert run_as("/venv/bin/airflow", "api-server") == "[]"
    assert run_as("/venv/bin/airflow", "triggerer") == "[]"
