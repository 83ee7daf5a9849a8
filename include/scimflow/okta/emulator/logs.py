"""The emulator's System Log endpoint, ``/api/v1/logs``."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scimflow.okta.emulator._http import (
    ApiGuard,
    dump,
    links,
    list_response,
    page_limit,
    predicate,
)
from scimflow.okta.emulator.directory import Directory, okta_time

__all__ = ["SystemLogApi"]


class SystemLogApi:
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def routes(self, guard: ApiGuard) -> list[Route]:
        return [Route("/api/v1/logs", guard(self.logs), methods=["GET"])]

    async def logs(self, request: Request) -> Response:
        """Bounded (``until``) or polling (``since`` alone) queries, ascending by default.

        A polling query always has a ``next`` link, even past the last event; a bounded
        one has it only while more events remain.
        """
        d = self.d
        limit = page_limit(request, 100, 1000)
        params = request.query_params
        until = params.get("until")
        since = params.get("since") or okta_time(datetime.now(UTC) - timedelta(days=7))
        keep = predicate(request)
        after = params.get("after")
        with d.lock:
            start = int(after) if after and after.isdigit() else None
            events = d.log
            if start is None:
                start = bisect.bisect_left(d.published, since)
            out: list[dict[str, Any]] = []
            i = start
            while i < len(events) and len(out) < limit:
                event = events[i]
                i += 1
                if until is not None and event["published"] >= until:
                    i = len(events)
                    break
                if keep is None or keep(event):
                    out.append(event)
            more = i < len(events) and (until is None or events[i]["published"] < until)
            payload = dump(out)
        nxt = str(i) if (more or until is None) else None
        return list_response(payload, links(request, nxt))
