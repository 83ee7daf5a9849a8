"""Okta's published rate limits: per-minute windows per endpoint family and org-wide.

Okta counts requests per endpoint family in one-minute windows that reset together and
reports them in ``X-Rate-Limit-Limit``, ``X-Rate-Limit-Remaining`` and
``X-Rate-Limit-Reset`` (epoch seconds of the window's end). Past the limit it answers
429 with error E0000047 until the window resets. Concurrent requests beyond the org's
cap are refused the same way, with limit and remaining both 0.

``time_scale`` shortens the window (60 s / scale) for fast tests; at the default of 1
the limits are Okta's. Below one-second windows the reset header carries milliseconds,
a deviation from Okta that only scaled runs see.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field

__all__ = ["ENTERPRISE_LIMITS", "Decision", "RateLimiter", "family_of"]

# requests per minute, Okta's published Enterprise table
ENTERPRISE_LIMITS: dict[str, int] = {
    "users_list_create": 600,  # GET/POST /api/v1/users
    "user_get": 1000,  # GET /api/v1/users/{id or login}
    "user_update": 600,  # POST/PUT/DELETE /api/v1/users/{id}, lifecycle
    "user_other": 600,  # /api/v1/users/{id}/... other sub-resources
    "groups": 600,  # /api/v1/groups
    "group_one": 600,  # /api/v1/groups/{id} and its members
    "logs": 50,  # /api/v1/logs (120 on Workforce Identity)
    "org": 5200,  # every /api/v1 request
}
CONCURRENCY = 75

_RULES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/v1/users/?$"), "users_list_create"),
    ("POST", re.compile(r"^/api/v1/users/?$"), "users_list_create"),
    ("GET", re.compile(r"^/api/v1/users/[^/]+/?$"), "user_get"),
    ("*", re.compile(r"^/api/v1/users/[^/]+/?$"), "user_update"),
    ("*", re.compile(r"^/api/v1/users/[^/]+/lifecycle/"), "user_update"),
    ("*", re.compile(r"^/api/v1/users/[^/]+/"), "user_other"),
    ("*", re.compile(r"^/api/v1/groups/?$"), "groups"),
    ("*", re.compile(r"^/api/v1/groups/[^/]+"), "group_one"),
    ("*", re.compile(r"^/api/v1/logs"), "logs"),
]


def family_of(method: str, path: str) -> str | None:
    """The rate-limit family of a request, or None for paths Okta does not limit here."""
    for rule_method, pattern, family in _RULES:
        if rule_method in ("*", method) and pattern.match(path):
            return family
    return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # epoch seconds

    def headers(self) -> dict[str, str]:
        reset = str(int(self.reset)) if float(self.reset).is_integer() else f"{self.reset:.3f}"
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": reset,
        }


@dataclass
class RateLimiter:
    limits: dict[str, int] = field(default_factory=lambda: dict(ENTERPRISE_LIMITS))
    time_scale: float = 1.0
    concurrency: int = CONCURRENCY

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._in_flight = 0
        self.refused = 0

    @property
    def window(self) -> float:
        return 60.0 / self.time_scale

    def _reset_header(self, window_index: int) -> float:
        end = (window_index + 1) * self.window
        return float(math.ceil(end)) if self.window >= 1 else round(end, 3)

    def acquire(self, family: str, now: float | None = None) -> Decision:
        """Count one request in its family and the org; refuse it past either limit."""
        now = time.time() if now is None else now
        index = int(now // self.window)
        with self._lock:
            if self._in_flight >= self.concurrency:
                self.refused += 1
                return Decision(False, 0, 0, self._reset_header(index))
            fam_key, org_key = (family, index), ("org", index)
            fam_used, org_used = self._counts.get(fam_key, 0), self._counts.get(org_key, 0)
            limit = self.limits[family]
            if fam_used >= limit or org_used >= self.limits["org"]:
                self.refused += 1
                return Decision(False, limit, 0, self._reset_header(index))
            self._counts[fam_key] = fam_used + 1
            self._counts[org_key] = org_used + 1
            self._in_flight += 1
            if len(self._counts) > 64:  # forget old windows
                for key in [k for k in self._counts if k[1] < index]:
                    del self._counts[key]
            return Decision(True, limit, limit - fam_used - 1, self._reset_header(index))

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
