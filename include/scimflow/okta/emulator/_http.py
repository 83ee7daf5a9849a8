"""What every endpoint of the emulator shares: Okta's error bodies, paging with ``Link``
headers, ``search``/``filter``/``q`` predicates, JSON bodies, and :class:`ApiGuard`, the
SSWS authentication, rate limit and fault injection around each ``/api/v1`` handler."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from scimflow.okta.emulator.directory import EmulatorError
from scimflow.okta.emulator.filters import FilterError, compile_filter
from scimflow.okta.emulator.ratelimit import family_of
from scimflow.okta.emulator.state import EmulatorState

__all__ = [
    "ApiGuard",
    "Handler",
    "dump",
    "links",
    "list_response",
    "okta_error",
    "page_limit",
    "predicate",
    "read_body",
]

Handler = Callable[[Request], Awaitable[Response]]
Predicate = Callable[[dict[str, Any]], bool]


def okta_error(
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


def page_limit(request: Request, default: int, maximum: int) -> int:
    """The ``limit`` query parameter, clamped to 1..``maximum`` as Okta does."""
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


def links(
    request: Request, next_after: str | None, extra: dict[str, str] | None = None
) -> list[str]:
    """``Link`` headers: ``rel="self"`` first, ``rel="next"`` last while more remain."""
    base = str(request.base_url).rstrip("/") + request.url.path
    out = [f'<{request.url}>; rel="self"']
    if next_after is not None:
        params = {k: v for k, v in request.query_params.items() if k != "after"}
        params.update(extra or {})
        params["after"] = next_after
        out.append(f'<{base}?{urlencode(params)}>; rel="next"')
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def list_response(payload: str, link_headers: list[str]) -> Response:
    resp = Response(payload, media_type="application/json")
    for link in link_headers:
        resp.headers.append("Link", link)
    return resp


def predicate(request: Request) -> Predicate | None:
    """The request's ``search``, ``filter`` and ``q`` as one predicate (None: keep all)."""
    preds: list[Predicate] = []
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


async def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; Okta's E0000003 when it is not one."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise EmulatorError(400, "E0000003", "The request body was not well-formed.") from exc
    if not isinstance(data, dict):
        raise EmulatorError(400, "E0000003", "The request body was not well-formed.")
    return data


class ApiGuard:
    """Wraps a handler in SSWS auth, the rate limit, injected faults and Okta's error shape.

    ``limited=False`` (the emulator's own controls) keeps the auth and the error shape but
    is neither counted by the limiter nor subject to faults.
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        token = auth[4:].strip() if auth[:4].upper() == "SSWS" else ""
        return bool(token) and hmac.compare_digest(token.encode(), self.state.token.encode())

    def __call__(self, handler: Handler, *, limited: bool = True) -> Handler:
        state = self.state

        async def wrapped(request: Request) -> Response:
            if not self._authorised(request):
                return okta_error(401, "E0000011", "Invalid token provided")
            if not limited:
                try:
                    return await handler(request)
                except EmulatorError as exc:
                    return okta_error(exc.status, exc.code, exc.summary)
            family = family_of(request.method, request.url.path)
            decision = state.limiter.acquire(family or "org")
            if not decision.allowed:
                return okta_error(
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
                resp = okta_error(exc.status, exc.code, exc.summary)
            finally:
                state.limiter.release()
            resp.headers.update(decision.headers())
            return resp

        return wrapped
