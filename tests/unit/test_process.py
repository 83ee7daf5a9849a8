"""ManagedProcess with real child processes: start, find, stale PID files, stop, escalate."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scimflow.errors import ServiceError
from scimflow.services.process import ManagedProcess, wait_until


def _proc(tmp_path: Path, marker: str = "scimflow-test-sleeper") -> ManagedProcess:
    return ManagedProcess(
        name="sleeper",
        pid_file=tmp_path / "run" / "sleeper.pid",
        log_file=tmp_path / "logs" / "sleeper.log",
        marker=marker,
    )


def _sleeper(ignore_term: bool = False) -> list[str]:
    code = "import signal, sys, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    return [sys.executable, "-c", code, "scimflow-test-sleeper"]


def test_start_find_and_stop(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    assert proc.pid() is None
    pid = proc.start(_sleeper())
    assert proc.pid() == pid
    assert proc.pid_file.read_text().strip() == str(pid)
    assert wait_until(lambda: "ready" in proc.log_tail(), timeout=10)
    # detached: its own session, so a Ctrl-C in the starting shell does not reach it
    assert os.getsid(pid) == pid
    assert proc.stop(timeout=10) is True
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert proc.stop() is False


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    proc.start(_sleeper(ignore_term=True))
    assert wait_until(lambda: "ready" in proc.log_tail(), timeout=10)
    t0 = time.monotonic()
    assert proc.stop(timeout=1.0) is True
    assert proc.pid() is None
    assert time.monotonic() - t0 < 10


def test_a_stale_pid_file_owned_by_another_program_reads_as_stopped(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = _proc(tmp_path)
        proc.pid_file.parent.mkdir(parents=True)
        proc.pid_file.write_text(f"{other.pid}\n")
        assert proc.pid() is None  # alive, but not ours: never signalled
        assert proc.stop() is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_garbage_pid_file_reads_as_stopped(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text("not a pid\n")
    assert proc.pid() is None


def test_a_missing_program_is_a_service_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="sleeper: cannot start"):
        _proc(tmp_path).start(["/nonexistent/program"])


def test_wait_until_stops_early_when_the_process_died() -> None:
    t0 = time.monotonic()
    assert wait_until(lambda: False, timeout=30, alive=lambda: False) is False
    assert time.monotonic() - t0 < 1


def test_exit_is_noticed(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    proc.start([sys.executable, "-c", "pass", "scimflow-test-sleeper"])
    assert wait_until(lambda: proc.pid() is None, timeout=10)
