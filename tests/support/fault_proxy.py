"""A fault-injecting HTTP reverse proxy, for tests that show transient errors are survived.

``FaultProxy`` sits between a client and a real server (a SCIM server, say) and forwards
every request, unless a rule says otherwise: it can answer a request itself with an error
(``fail_next``, ``fail_rate``), forward it and then tell the client it failed
(``fail_after_forward``: the write happened, the client saw a 502), or hold an answer back
(``delay``). Rules are thread-safe and may be changed while the proxy runs::

    with FaultProxy(upstream="http://127.0.0.1:18081") as proxy:
        proxy.fail_next(2, status=503, retry_after=1)
        target = ScimTarget(base_url=proxy.url + "/v2", ...)

A request is checked, in this order, against the ``fail_next`` rules (the oldest one that
matches and has budget left answers it), then the ``fail_rate`` rule, then the
``fail_after_forward`` rules; the first ``delay`` rule that matches then holds back whatever
answer results (after the upstream answered, when the request was forwarded).

It can also bend SCIM as some real servers do: ``ignore_paging`` (every list request gets
the first page, whatever page it asked for) and ``case_sensitive_user_names`` (a
``userName eq`` filter only finds the login in the case it was asked).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import BackgroundServer

__all__ = ["BackgroundServer", "FaultBody", "FaultProxy"]

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# httpx sets Host and Content-Length for the upstream request; uvicorn frames the answer.
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}

#: The body of an injected answer: ``auto`` is a SCIM Error for 429 and 503 and a line of
#: text otherwise; ``html`` is the kind of page a real load balancer answers.
FaultBody = Literal["auto", "scim", "html", "text", "empty"]
_BODIES = ("auto", "scim", "html", "text", "empty")


@dataclass
class _Match:
    methods: frozenset[str] | None
    path_contains: str | None

    def __call__(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: str | None
    body: FaultBody


@dataclass
class _Counted:
    match: _Match
    remaining: int | None  # None: unlimited
    fault: _Fault | None = None
    seconds: float = 0.0

    def take(self, method: str, path: str) -> bool:
        if self.remaining == 0 or not self.match(method, path):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass
class _Rate:
    match: _Match
    rate: float
    statuses: tuple[int, ...]
    rng: random.Random
    retry_after: str | None
    body: FaultBody


@dataclass(frozen=True)
class _Decision:
    inject: _Fault | None
    after_forward: _Fault | None
    delay: float
    ignore_paging: bool = False
    case_sensitive: bool = False


# a SCIM filter that is one or more ``attr eq "value"`` joined with ``or`` (RFC 7644 §3.4.2.2)
_EQ = r'([A-Za-z][\w.:$-]*)\s+eq\s+"((?:[^"\\]|\\.)*)"'
_EQ_CLAUSE = re.compile(_EQ, re.IGNORECASE)
_EQ_DISJUNCTION = re.compile(rf"\s*{_EQ}(?:\s+or\s+{_EQ})*\s*", re.IGNORECASE)


def _eq_clauses(filter_: str | None) -> list[tuple[str, str]]:
    """The (attribute, value) of a filter made of ``eq`` clauses joined with ``or``; []
    for any other filter."""
    if not filter_ or not _EQ_DISJUNCTION.fullmatch(filter_):
        return []
    return [(m.group(1), re.sub(r"\\(.)", r"\1", m.group(2))) for m in _EQ_CLAUSE.finditer(filter_)]


def _without_start_index(query: str, page_size: int | None = None) -> str:
    """The query without ``startIndex``; ``count`` capped at ``page_size`` when given (a
    server with a page size of its own)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() != "startindex"]
    if page_size is not None:
        kept = [
            (k, str(min(int(v), page_size)) if k.lower() == "count" and v.isdigit() else v)
            for k, v in kept
        ]
    return query if kept == pairs else urlencode(kept, quote_via=quote)


def _matches_exactly(resource: dict[str, Any], clauses: list[tuple[str, str]]) -> bool:
    """Whether one clause matches a top-level attribute of ``resource``, case included."""
    by_name = {str(k).lower(): v for k, v in resource.items()}
    return any(by_name.get(attr.lower()) == value for attr, value in clauses)


def _keep_exact(content: bytes, clauses: list[tuple[str, str]]) -> bytes:
    """A ListResponse with only the resources that one clause matches exactly;
    ``totalResults`` less those taken out (of this page: right for a one-page answer)."""
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), list):
        return content
    resources = body["Resources"]
    kept = [r for r in resources if isinstance(r, dict) and _matches_exactly(r, clauses)]
    body["Resources"] = kept
    if isinstance(body.get("totalResults"), int):
        body["totalResults"] = max(0, body["totalResults"] - (len(resources) - len(kept)))
    if "itemsPerPage" in body:
        body["itemsPerPage"] = len(kept)
    return json.dumps(body).encode()


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    return frozenset(m.upper() for m in methods)


def _retry_after(value: float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value < 0:
        raise ValueError("retry_after must not be negative")
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_body(body: str) -> None:
    if body not in _BODIES:
        raise ValueError(f"body must be one of {_BODIES}, not {body!r}")


def _fault_response(fault: _Fault) -> Response:
    status = fault.status
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    kind = fault.body
    if kind == "auto":
        kind = "scim" if status in (429, 503) else "text"
    content: bytes
    media_type: str | None
    if kind == "scim":
        error = {"schemas": [SCIM_ERROR], "status": str(status), "detail": "injected fault"}
        content, media_type = json.dumps(error).encode(), "application/scim+json"
    elif kind == "html":
        title = f"{status} {phrase}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
        content, media_type = page.encode(), "text/html; charset=utf-8"
    elif kind == "text":
        content, media_type = f"injected fault: {status} {phrase}\n".encode(), "text/plain"
    else:
        content, media_type = b"", None
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return Response(content, status_code=status, headers=headers, media_type=media_type)


def _filtered(
    raw: Iterable[tuple[bytes, bytes]], drop: frozenset[str]
) -> list[tuple[bytes, bytes]]:
    """The headers but ``drop`` and those the Connection header names (RFC 9110, 7.6.1)."""
    raw = list(raw)
    named = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    return [
        (name, value)
        for name, value in raw
        if (lower := name.decode("latin-1").lower()) not in drop and lower not in named
    ]


class FaultProxy:
    """A reverse proxy to ``upstream`` that injects failures (see the module docstring).

    ``proxy.url`` has the upstream's path layout: ``upstream + "/v2/Users"`` is
    ``proxy.url + "/v2/Users"``. The answers the proxy gives itself are logged and counted
    under ``injected``; a forwarded request that the upstream could not answer gets 502
    (504 on a timeout) and counts under ``upstream_errors``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
        log_size: int = 1000,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._lock = threading.Lock()
        self._fail_next: list[_Counted] = []
        self._rate: _Rate | None = None
        self._after_forward: list[_Counted] = []
        self._delays: list[_Counted] = []
        self._ignore_paging: _Match | None = None
        self._page_size: int | None = None
        self._case_sensitive: _Match | None = None
        self._requests = 0
        self._forwarded = 0
        self._upstream_errors = 0
        self._injected: Counter[int] = Counter()
        self._log: deque[tuple[str, str, int]] = deque(maxlen=log_size)
        self._stopping = threading.Event()
        self._client: httpx.Client | None = None
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=METHODS)])
        self._server = BackgroundServer(app, host=host, name="fault-proxy")

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy's base URL (``http://127.0.0.1:PORT``), once started."""
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> None:
        # trust_env=False: loopback traffic must never go through an HTTP(S)_PROXY.
        self._client = httpx.Client(trust_env=False, follow_redirects=False)
        try:
            self._server.start()
        except BaseException:
            self._client.close()
            raise

    def stop(self) -> None:
        self._stopping.set()  # cuts delays short, so that uvicorn need not wait for them
        self._server.stop()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- rules ------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | str | None = None,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
        body: FaultBody = "auto",
    ) -> None:
        """Answer the next ``n`` matching requests with ``status``, without forwarding them.

        Calls add up: each is a rule of its own, used up oldest first.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        _check_body(body)
        rule = _Counted(
            _Match(_methods(methods), path_contains),
            n,
            fault=_Fault(status, _retry_after(retry_after), body),
        )
        with self._lock:
            self._fail_next.append(rule)

    def fail_rate(
        self,
        rate: float,
        statuses: Iterable[int] = (500, 502, 503, 429),
        seed: int = 0,
        methods: Iterable[str] | None = None,
        retry_after: float | str | None = 0,
        path_contains: str | None = None,
        body: FaultBody = "auto",
    ) -> None:
        """Fail each matching request with probability ``rate``, with one of ``statuses``.

        The choices come from ``random.Random(seed)``: the same requests in the same order
        fail the same way. 429 answers carry ``Retry-After: retry_after`` (None: none).
        Replaces an earlier ``fail_rate``; ``fail_rate(0)`` turns it off.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        statuses = tuple(statuses)
        if not statuses:
            raise ValueError("statuses must not be empty")
        _check_body(body)
        rule = _Rate(
            _Match(_methods(methods), path_contains),
            rate,
            statuses,
            random.Random(seed),
            _retry_after(retry_after),
            body,
        )
        with self._lock:
            self._rate = rule

    def fail_after_forward(
        self,
        n: int = 1,
        methods: Iterable[str] | None = ("POST",),
        status: int = 502,
        path_contains: str | None = None,
        body: FaultBody = "auto",
    ) -> None:
        """Forward the next ``n`` matching requests, but answer the client ``status``.

        The upstream acts on the request (a POST creates its resource) while the client
        sees a failure: a retried POST then meets 409 Conflict.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        _check_body(body)
        rule = _Counted(
            _Match(_methods(methods), path_contains), n, fault=_Fault(status, None, body)
        )
        with self._lock:
            self._after_forward.append(rule)

    def delay(
        self,
        seconds: float,
        n: int | None = None,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Hold back the answers to the next ``n`` matching requests (all: ``n=None``).

        A forwarded request reaches the upstream at once; only its answer waits, so a
        client that times out has still made its change.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if n is not None and n < 0:
            raise ValueError("n must not be negative")
        rule = _Counted(_Match(_methods(methods), path_contains), n, seconds=seconds)
        with self._lock:
            self._delays.append(rule)

    def ignore_paging(
        self, path_contains: str | None = None, *, page_size: int | None = None
    ) -> None:
        """From now on, answer as a server that ignores ``startIndex``: GET requests are
        forwarded without it, so the upstream sends the first page whichever page was asked
        for; ``count`` is kept, and so is the upstream's true ``totalResults``.
        ``page_size`` caps ``count`` as a server with its own page size does.
        ``clear()`` turns it off.
        """
        with self._lock:
            self._ignore_paging = _Match(frozenset({"GET"}), path_contains)
            self._page_size = page_size

    def case_sensitive_user_names(self, path_contains: str | None = "/Users") -> None:
        """From now on, compare userName case-sensitively in filters, as some servers do.

        To a GET whose filter is ``attr eq "value"`` clauses joined with ``or``, one of
        them on userName, the upstream's answer keeps only the resources that a clause
        matches exactly, case included; ``totalResults`` drops by as many (exact for an
        answer of one page). Other filters pass unchanged. ``clear()`` turns it off.
        """
        with self._lock:
            self._case_sensitive = _Match(frozenset({"GET"}), path_contains)

    def clear(self) -> None:
        """Remove every rule (the counters and the log stay: see ``reset_stats``)."""
        with self._lock:
            self._fail_next.clear()
            self._rate = None
            self._after_forward.clear()
            self._delays.clear()
            self._ignore_paging = None
            self._case_sensitive = None

    # -- counters ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``requests``, ``forwarded``, ``injected`` (by status), ``upstream_errors``, ``log``."""
        with self._lock:
            return {
                "requests": self._requests,
                "forwarded": self._forwarded,
                "injected": dict(self._injected),
                "upstream_errors": self._upstream_errors,
                "log": list(self._log),
            }

    @property
    def log(self) -> list[tuple[str, str, int]]:
        """(method, path, status the client got) of the last requests, oldest first."""
        with self._lock:
            return list(self._log)

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = self._forwarded = self._upstream_errors = 0
            self._injected.clear()
            self._log.clear()

    # -- serving ----------------------------------------------------------------------------

    def _decide(self, method: str, path: str) -> _Decision:
        with self._lock:
            self._requests += 1
            inject = next((r.fault for r in self._fail_next if r.take(method, path)), None)
            self._fail_next = [r for r in self._fail_next if r.remaining]
            rate = self._rate
            if (
                inject is None
                and rate is not None
                and rate.match(method, path)
                and rate.rng.random() < rate.rate
            ):
                status = rate.rng.choice(rate.statuses)
                retry_after = rate.retry_after if status == 429 else None
                inject = _Fault(status, retry_after, rate.body)
            after_forward = None
            if inject is None:
                after_forward = next(
                    (r.fault for r in self._after_forward if r.take(method, path)), None
                )
                self._after_forward = [r for r in self._after_forward if r.remaining]
            delay = next((r.seconds for r in self._delays if r.take(method, path)), 0.0)
            self._delays = [r for r in self._delays if r.remaining != 0]
            paging, case = self._ignore_paging, self._case_sensitive
            return _Decision(
                inject,
                after_forward,
                delay,
                ignore_paging=paging is not None and paging(method, path),
                case_sensitive=case is not None and case(method, path),
            )

    async def _handle(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        decision = self._decide(method, path)
        body = await request.body()
        if decision.inject is not None:
            response = _fault_response(decision.inject)
            injected = True
        else:
            response, reached = await run_in_threadpool(self._forward, request, body, decision)
            # an upstream that did not answer already makes a 502 (or 504): leave it be
            injected = decision.after_forward is not None and reached
            if injected and decision.after_forward is not None:
                response = _fault_response(decision.after_forward)
        await self._sleep(decision.delay)
        with self._lock:
            if injected:
                self._injected[response.status_code] += 1
            self._log.append((method, path, response.status_code))
        return response

    def _forward(self, request: Request, body: bytes, decision: _Decision) -> tuple[Response, bool]:
        """Send the request upstream: (the answer for the client, whether upstream answered)."""
        assert self._client is not None
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + raw_path.decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        if decision.ignore_paging:
            query = _without_start_index(query, self._page_size)
        if query:
            url += "?" + query
        clauses: list[tuple[str, str]] = []
        if decision.case_sensitive:
            clauses = _eq_clauses(request.query_params.get("filter"))
            if not any(attr.lower() == "username" for attr, _ in clauses):
                clauses = []
        headers = _filtered(request.headers.raw, _REQUEST_DROP)
        has_body = bool(body) or "content-length" in request.headers
        upstream_request = httpx.Request(
            request.method,
            url,
            headers=headers,
            content=body if has_body else None,
            extensions={"timeout": self._timeout},
        )
        try:
            upstream = self._client.send(upstream_request, stream=True)
            try:
                if clauses and upstream.status_code == 200:
                    # decoded, to be filtered: sent on without a Content-Encoding
                    content = _keep_exact(upstream.read(), clauses)
                else:
                    # raw: the body as the upstream encoded it, to match its Content-Encoding
                    content = b"".join(upstream.iter_raw())
            finally:
                upstream.close()
        except httpx.HTTPError as exc:
            with self._lock:
                self._upstream_errors += 1
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            message = f"fault proxy: upstream error: {type(exc).__name__}: {exc}\n"
            return Response(message, status_code=status, media_type="text/plain"), False
        with self._lock:
            self._forwarded += 1
        head = request.method == "HEAD"
        response = Response(content, status_code=upstream.status_code)
        # a HEAD answer has no body but keeps the length the upstream announced
        drop = _RESPONSE_DROP - {"content-length"} if head else _RESPONSE_DROP
        if clauses and upstream.status_code == 200:
            drop = drop | {"content-encoding"}
        own = [] if head else [h for h in response.raw_headers if h[0] == b"content-length"]
        response.raw_headers = _filtered(upstream.headers.raw, drop) + own
        return response, True

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
