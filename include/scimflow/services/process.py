"""Start, find and stop one detached local process, tracked by a PID file.

A service started by ``scimflow services up`` outlives the command: it runs in its own
session (so Ctrl-C in the shell does not reach it), writes to one log file, and is found
again by its PID file. A PID file whose process is gone, or whose PID now belongs to
another program, is treated as stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scimflow.errors import ServiceError

__all__ = ["ManagedProcess", "wait_until"]


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.25,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``check`` until it returns true (True) or ``timeout`` passes (False).

    ``alive`` is polled too: when it turns false the wait ends early with False, so a
    process that crashed at start is reported at once, not after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# Children started by this interpreter. Holding their Popen objects keeps them from being
# reported as "still running" when collected, and lets ``pid()`` reap one that exited.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


@dataclass(frozen=True)
class ManagedProcess:
    """One process of a service: its PID file, its log, and a marker to recognise it.

    ``marker`` is a string that must appear in the process's command line; it guards
    against a stale PID file whose number was reused by an unrelated process.
    """

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The PID of the running process, or None if it is not running."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        child = _CHILDREN.get(pid)
        if child is not None:
            # our own child: trust Popen (its command line may not be exec'd yet)
            if child.poll() is None:
                return pid
            del _CHILDREN[pid]
            return None
        return pid if self.marker in _cmdline(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start ``argv`` detached, with stdout and stderr appended to the log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                    user=user,
                    group=user,
                    extra_groups=[] if user else None,
                )
            except OSError as exc:
                raise ServiceError(self.name, f"cannot start {argv[0]}: {exc}") from exc
        _CHILDREN[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
        return proc.pid

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Stop the process group; escalate to SIGKILL after ``timeout``.

        Returns True if a running process was stopped, False if none was running.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        if not wait_until(lambda: not self.is_running(), timeout=timeout, interval=0.2):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            wait_until(lambda: not self.is_running(), timeout=10, interval=0.2)
        self.pid_file.unlink(missing_ok=True)
        return True

    def memory_bytes(self) -> int:
        """Memory of the process and all its descendants (0 if not running).

        Proportional set size where the kernel gives it, so pages shared by forked
        workers (Airflow's) are counted once in all, not once per worker; else RSS.
        """
        import psutil

        pid = self.pid()
        if pid is None:
            return 0
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for proc in tree:
            try:
                total += getattr(proc.memory_full_info(), "pss", 0) or proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
