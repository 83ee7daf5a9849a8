"""What one emulator process holds, and the faults it can be told to inject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimflow.okta.emulator.directory import Directory
from scimflow.okta.emulator.hooks import HookDeliverer
from scimflow.okta.emulator.ratelimit import RateLimiter

__all__ = ["EmulatorState", "Fault"]


class EmulatorState:
    """What one emulator process holds: the directory, its limiter, its hook deliverer."""

    def __init__(self, directory: Directory, *, token: str, limiter: RateLimiter) -> None:
        self.directory = directory
        self.token = token
        self.limiter = limiter
        self.hooks = HookDeliverer()
        directory.listeners.append(self.hooks.submit)
        self.churn: Any = None
        self.faults: list[Fault] = []
        self.requests: dict[str, int] = {}

    def fault_for(self, method: str, path: str) -> Fault | None:
        """Count a request to ``method path``; the fault it must suffer, if any."""
        key = f"{method} {path}"
        n = self.requests[key] = self.requests.get(key, 0) + 1
        for fault in self.faults:
            if fault.matches(method, path, n):
                fault.remaining -= 1
                return fault
        return None


@dataclass
class Fault:
    """Fail requests to one endpoint: from its ``after``-th request on, ``count`` times."""

    path: str
    status: int = 500
    method: str = "GET"
    after: int = 0
    count: int = 1
    remaining: int = -1

    def __post_init__(self) -> None:
        if self.remaining < 0:
            self.remaining = self.count

    def matches(self, method: str, path: str, n: int) -> bool:
        return self.remaining > 0 and method == self.method and path == self.path and n > self.after
