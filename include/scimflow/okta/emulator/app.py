"""The emulator's HTTP API: Okta's Management API subset, System Log, and emulator controls.

Served by uvicorn (``scimflow okta-emulator serve``). Every ``/api/v1`` request needs
``Authorization: SSWS <token>`` (the SDK's ``SSWS<token>`` too), is counted by the rate
limiter and answers with its headers. Lists page with ``limit``/``after`` and ``Link``
headers, ``rel="self"`` first and ``rel="next"`` last, as Okta sends them. Errors carry
Okta's error bodies. ``/emulator/*`` drives the emulator itself (Event Hook target,
churn, delivery switches); ``/healthz`` answers without a token.
"""

from __future__ import annotations

import bisect
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scimflow.okta.emulator.directory import Directory, EmulatorError, okta_time
from scimflow.okta.emulator.filters import FilterError, compile_filter
from scimflow.okta.emulator.hooks import HookDeliverer, HookSettings
from scimflow.okta.emulator.ratelimit import RateLimiter, family_of

__all__ = ["EmulatorState", "build_app"]

Handler = Callable[[Request], Awaitable[Response]]


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


def _error(
    status: int, code: str, summary: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + uuid.uuid4().hex[:19],
        "errorCauses": [],
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise EmulatorError(
            400, "E0000001", f"Api validation failed: limit: {raw!r} is not a number"
        ) from exc
    return max(1, min(value, maximum))


def _links(
    request: Request, next_after: str | None, extra: dict[str, str] | None = None
) -> list[str]:
    base = str(request.base_url).rstrip("/") + request.url.path
    links = [f'<{request.url}>; rel="self"']
    if next_after is not None:
        params = {k: v for k, v in request.query_params.items() if k != "after"}
        params.update(extra or {})
        params["after"] = next_after
        links.append(f'<{base}?{urlencode(params)}>; rel="next"')
    return links


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _list_response(payload: str, links: list[str]) -> Response:
    resp = Response(payload, media_type="application/json")
    for link in links:
        resp.headers.append("Link", link)
    return resp


def _predicate(request: Request) -> Callable[[dict[str, Any]], bool] | None:
    preds = []
    for key in ("search", "filter"):
        expr = request.query_params.get(key)
        if expr:
            try:
                preds.append(compile_filter(expr))
            except FilterError as exc:
                raise EmulatorError(400, "E0000031", f"Invalid search criteria. {exc}") from exc
    q = request.query_params.get("q")
    if q:
        ql = q.lower()

        def q_match(o: dict[str, Any]) -> bool:
            p = o.get("profile", {})
            return any(
                str(p.get(k, "")).lower().startswith(ql)
                for k in ("firstName", "lastName", "email", "name")
            )

        preds.append(q_match)
    if not preds:
        return None
    return lambda o: all(p(o) for p in preds)


def build_app(state: EmulatorState) -> Starlette:
    d = state.directory

    def api(handler: Handler, *, limited: bool = True) -> Handler:
        """Auth, rate limit and Okta's error shape around one handler."""

        async def wrapped(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            token = auth[4:].strip() if auth[:4].upper() == "SSWS" else ""
            if not token or not hmac.compare_digest(token.encode(), state.token.encode()):
                return _error(401, "E0000011", "Invalid token provided")
            if not limited:
                try:
                    return await handler(request)
                except EmulatorError as exc:
                    return _error(exc.status, exc.code, exc.summary)
            family = family_of(request.method, request.url.path)
            decision = state.limiter.acquire(family or "org")
            if not decision.allowed:
                return _error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    decision.headers(),
                )
            fault = state.fault_for(request.method, request.url.path)
            try:
                if fault is not None:
                    raise EmulatorError(
                        fault.status, "E0000009", "Internal Server Error (injected fault)"
                    )
                resp = await handler(request)
            except EmulatorError as exc:
                resp = _error(exc.status, exc.code, exc.summary)
            finally:
                state.limiter.release()
            resp.headers.update(decision.headers())
            return resp

        return wrapped

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as exc:
            raise EmulatorError(400, "E0000003", "The request body was not well-formed.") from exc
        if not isinstance(data, dict):
            raise EmulatorError(400, "E0000003", "The request body was not well-formed.")
        return data

    # -- users ------------------------------------------------------------------
    async def list_users(request: Request) -> Response:
        limit = _limit(request, 200, 200)
        keep = _predicate(request)
        if keep is None:  # as in Okta, a plain list leaves out deprovisioned users

            def keep(u: dict[str, Any]) -> bool:
                return bool(u["status"] != "DEPROVISIONED")

        with d.lock:
            items, nxt = d.page(
                d.user_ids, d.users, after=request.query_params.get("after"), limit=limit, keep=keep
            )
            payload = _dump(items)
        return _list_response(payload, _links(request, nxt))

    async def create_user(request: Request) -> Response:
        data = await body(request)
        activate = request.query_params.get("activate", "true").lower() == "true"
        uid = d.create_user(
            dict(data.get("profile") or {}), status="ACTIVE" if activate else "STAGED"
        )
        return JSONResponse(d.get_user(uid))

    async def get_user(request: Request) -> Response:
        return JSONResponse(d.get_user(request.path_params["uid"]))

    async def update_user(request: Request) -> Response:
        data = await body(request)
        user = d.update_profile(
            d.get_user(request.path_params["uid"])["id"], dict(data.get("profile") or {})
        )
        return JSONResponse(user)

    async def delete_user(request: Request) -> Response:
        d.delete_user(d.get_user(request.path_params["uid"])["id"])
        return Response(status_code=204)

    async def user_lifecycle(request: Request) -> Response:
        d.lifecycle(d.get_user(request.path_params["uid"])["id"], request.path_params["action"])
        return JSONResponse({})

    async def user_groups(request: Request) -> Response:
        with d.lock:
            user = d.get_user(request.path_params["uid"])
            gids = d.user_groups.get(user["id"], set())
            items = [d.groups[g] for g in sorted(gids)]
            payload = _dump(items)
        return _list_response(payload, _links(request, None))

    # -- groups -----------------------------------------------------------------
    async def list_groups(request: Request) -> Response:
        limit = _limit(request, 10000, 10000)
        keep = _predicate(request)
        with d.lock:
            items, nxt = d.page(
                d.group_ids,
                d.groups,
                after=request.query_params.get("after"),
                limit=limit,
                keep=keep,
            )
            payload = _dump(items)
        return _list_response(payload, _links(request, nxt))

    async def create_group(request: Request) -> Response:
        data = await body(request)
        profile = data.get("profile") or {}
        gid = d.create_group(str(profile.get("name") or ""), str(profile.get("description") or ""))
        return JSONResponse(d.get_group(gid))

    async def get_group(request: Request) -> Response:
        return JSONResponse(d.get_group(request.path_params["gid"]))

    async def update_group(request: Request) -> Response:
        data = await body(request)
        return JSONResponse(
            d.update_group(request.path_params["gid"], dict(data.get("profile") or {}))
        )

    async def delete_group(request: Request) -> Response:
        d.delete_group(request.path_params["gid"])
        return Response(status_code=204)

    async def group_users(request: Request) -> Response:
        limit = _limit(request, 1000, 1000)
        with d.lock:
            d.get_group(request.path_params["gid"])
            ids = sorted(d.members[request.path_params["gid"]])
            items, nxt = d.page(ids, d.users, after=request.query_params.get("after"), limit=limit)
            payload = _dump(items)
        return _list_response(payload, _links(request, nxt))

    async def group_member(request: Request) -> Response:
        gid, uid = request.path_params["gid"], request.path_params["uid"]
        if request.method == "PUT":
            d.add_member(gid, uid)
        else:
            d.remove_member(gid, uid)
        return Response(status_code=204)

    # -- System Log -----------------------------------------------------------------
    async def logs(request: Request) -> Response:
        """Bounded (``until``) or polling (``since`` alone) queries, ascending by default.

        A polling query always has a ``next`` link, even past the last event; a bounded
        one has it only while more events remain.
        """
        limit = _limit(request, 100, 1000)
        params = request.query_params
        until = params.get("until")
        since = params.get("since") or okta_time(datetime.now(UTC) - timedelta(days=7))
        keep = _predicate(request)
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
            payload = _dump(out)
        nxt = str(i) if (more or until is None) else None
        return _list_response(payload, _links(request, nxt))

    # -- emulator controls ----------------------------------------------------------
    async def healthz(_request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "users": len(d.users),
                "groups": len(d.groups),
                "rate_limited": state.limiter.refused,  # 429s answered so far
            }
        )

    async def hooks_config(request: Request) -> Response:
        data = await body(request)
        try:
            settings = HookSettings(**data)
        except (TypeError, ValueError) as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        ok = await state.hooks.configure(settings)
        if not ok:
            raise EmulatorError(400, "E0000001", "Event hook verification failed")
        return JSONResponse({"verified": True})

    async def hooks_stats(_request: Request) -> Response:
        return JSONResponse(state.hooks.stats())

    async def churn(request: Request) -> Response:
        from scimflow.okta.emulator.churn import ChurnDriver

        data = await body(request)
        if state.churn is not None:
            state.churn.stop()
        try:
            state.churn = ChurnDriver(
                d, rate=float(data.get("rate", 1.0)), seed=int(data.get("seed", 0))
            )
        except ValueError as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        state.churn.start(duration=float(data["seconds"]) if data.get("seconds") else None)
        return JSONResponse({"started": True})

    async def mutate(request: Request) -> Response:
        """Run ``count`` mutations of one churn ``action`` now; for load tests and benchmarks."""
        from scimflow.okta.emulator.churn import ChurnDriver

        data = await body(request)
        driver = ChurnDriver(d, rate=1.0, seed=int(data.get("seed", 0)))
        action = getattr(driver, str(data.get("action", "")), None)
        if action is None or str(data.get("action")) not in driver.action_names():
            raise EmulatorError(
                400, "E0000001", f"Api validation failed: action: one of {driver.action_names()}"
            )
        since = d.now()
        before = len(d.log)
        for _ in range(int(data.get("count", 1))):
            with d.lock:
                try:
                    action()
                except EmulatorError:
                    continue
        changed = sorted(
            {t["id"] for e in d.log[before:] for t in e["target"] if t["type"] == "User"}
        )
        return JSONResponse({"since": since, "events": len(d.log) - before, "user_ids": changed})

    async def faults(request: Request) -> Response:
        data = await body(request)
        try:
            state.faults.append(Fault(**data))
        except TypeError as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        return JSONResponse({"faults": len(state.faults)})

    async def churn_stop(_request: Request) -> Response:
        done = state.churn.stop() if state.churn is not None else 0
        return JSONResponse({"stopped": True, "mutations": done})

    routes = [
        Route("/healthz", healthz),
        Route("/api/v1/users", api(list_users), methods=["GET"]),
        Route("/api/v1/users", api(create_user), methods=["POST"]),
        Route("/api/v1/users/{uid}", api(get_user), methods=["GET"]),
        Route("/api/v1/users/{uid}", api(update_user), methods=["POST", "PUT"]),
        Route("/api/v1/users/{uid}", api(delete_user), methods=["DELETE"]),
        Route("/api/v1/users/{uid}/lifecycle/{action}", api(user_lifecycle), methods=["POST"]),
        Route("/api/v1/users/{uid}/groups", api(user_groups), methods=["GET"]),
        Route("/api/v1/groups", api(list_groups), methods=["GET"]),
        Route("/api/v1/groups", api(create_group), methods=["POST"]),
        Route("/api/v1/groups/{gid}", api(get_group), methods=["GET"]),
        Route("/api/v1/groups/{gid}", api(update_group), methods=["PUT"]),
        Route("/api/v1/groups/{gid}", api(delete_group), methods=["DELETE"]),
        Route("/api/v1/groups/{gid}/users", api(group_users), methods=["GET"]),
        Route("/api/v1/groups/{gid}/users/{uid}", api(group_member), methods=["PUT", "DELETE"]),
        Route("/api/v1/logs", api(logs), methods=["GET"]),
        Route("/emulator/hooks", api(hooks_config, limited=False), methods=["POST"]),
        Route("/emulator/hooks/stats", api(hooks_stats, limited=False), methods=["GET"]),
        Route("/emulator/churn", api(churn, limited=False), methods=["POST"]),
        Route("/emulator/churn", api(churn_stop, limited=False), methods=["DELETE"]),
        Route("/emulator/faults", api(faults, limited=False), methods=["POST"]),
        Route("/emulator/mutate", api(mutate, limited=False), methods=["POST"]),
    ]
    return Starlette(routes=routes)
