"""The fault-injecting proxy, in front of a small echo server started by the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fault_proxy import METHODS, SCIM_ERROR, BackgroundServer, FaultProxy


class Echo:
    """An upstream that answers what it received, and counts what it received."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=METHODS)])
        self.server = BackgroundServer(app, name="echo-upstream")

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.seen.append((request.method, request.url.path))
        status = {"POST": 201, "DELETE": 204}.get(request.method, 200)
        status = int(request.query_params.get("status", status))
        # like scim2-server (HTTP/1.0, no keep-alive): a new connection for each request
        headers = {"X-Upstream": "echo", "Connection": "close"}
        if status == 204:
            return Response(status_code=204, headers=headers)
        response = JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "params": dict(request.query_params),
                "body": body.decode(),
                "headers": dict(request.headers),
            },
            status_code=status,
            headers=headers,
        )
        response.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        return response


def _bind(sock: socket.socket) -> int:
    sock.bind(("127.0.0.1", 0))
    return int(sock.getsockname()[1])


@pytest.fixture()
def upstream() -> Iterator[Echo]:
    echo = Echo()
    with echo.server:
        yield echo


@pytest.fixture()
def proxy(upstream: Echo) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=upstream.server.url) as proxy:
        yield proxy


@pytest.fixture()
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=10) as client:
        yield client


# -- forwarding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status"),
    [("GET", 200), ("POST", 201), ("PUT", 200), ("PATCH", 200), ("DELETE", 204)],
)
def test_forwards_method_path_query_body_and_status(
    method: str, status: int, client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    filter_ = 'userName eq "ann smith"'
    body = b'{"userName": "ann"}'
    r = client.request(method, "/v2/Users/u1", params={"filter": filter_}, content=body)
    assert r.status_code == status
    assert r.headers["x-upstream"] == "echo"
    assert upstream.seen == [(method, "/v2/Users/u1")]
    if status != 204:
        echoed = r.json()
        assert echoed["method"] == method
        assert echoed["query"] == r.request.url.query.decode()
        assert echoed["params"] == {"filter": filter_}
        assert echoed["body"] == body.decode()
    else:
        assert r.content == b""
    assert proxy.stats()["forwarded"] == 1
    assert proxy.log == [(method, "/v2/Users/u1", status)]


def test_forwards_the_path_as_sent_and_other_statuses(client: httpx.Client) -> None:
    # %2F must reach the upstream encoded: decoded, it would be a different path
    r = client.get("/v2/Users/a%2Fb", params={"status": "404"})
    assert r.status_code == 404
    assert r.json()["raw_path"] == "/v2/Users/a%2Fb"


def test_rewrites_host_and_drops_hop_by_hop_headers(client: httpx.Client, upstream: Echo) -> None:
    r = client.get(
        "/v2/Users",
        headers={
            "Authorization": "Bearer t",
            "X-Custom": "kept",
            "Proxy-Authorization": "Basic secret",
            "Connection": "keep-alive, X-Per-Hop",
            "X-Per-Hop": "dropped",
        },
    )
    seen = r.json()["headers"]
    assert seen["host"] == upstream.server.url.removeprefix("http://")
    assert seen["authorization"] == "Bearer t"
    assert seen["x-custom"] == "kept"
    assert "proxy-authorization" not in seen
    assert "x-per-hop" not in seen
    # the response: the upstream's headers (both cookies), but not its Connection: close
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert r.headers.get("connection") != "close"
    assert int(r.headers["content-length"]) == len(r.content)


def test_upstream_down_is_a_502() -> None:
    with (
        socket.socket() as closed,  # bound, not listening: connections are refused
        FaultProxy(upstream=f"http://127.0.0.1:{_bind(closed)}") as proxy,
        httpx.Client(base_url=proxy.url, trust_env=False) as client,
    ):
        r = client.get("/v2/Users")
        assert r.status_code == 502
        assert "ConnectError" in r.text
        stats = proxy.stats()
    assert stats["upstream_errors"] == 1
    assert stats["forwarded"] == 0
    assert stats["injected"] == {}


# -- fail_next ------------------------------------------------------------------------------


def test_fail_next_answers_503_with_retry_after_and_a_scim_error(
    client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    proxy.fail_next(2, status=503, retry_after=7)
    for _ in range(2):
        r = client.post("/v2/Users", json={"userName": "ann"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "7"
        assert r.headers["content-type"] == "application/scim+json"
        assert r.json() == {"schemas": [SCIM_ERROR], "status": "503", "detail": "injected fault"}
    assert upstream.count == 0
    assert client.post("/v2/Users", json={"userName": "ann"}).status_code == 201
    assert upstream.count == 1
    stats = proxy.stats()
    assert stats["injected"] == {503: 2}
    assert stats["forwarded"] == 1
    assert [status for _, _, status in stats["log"]] == [503, 503, 201]


def test_fail_next_only_hits_matching_requests(
    client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    proxy.fail_next(1, status=429, methods=("post",), path_contains="/Groups")
    assert client.get("/v2/Groups").status_code == 200
    assert client.post("/v2/Users", json={}).status_code == 201
    r = client.post("/v2/Groups", json={})
    assert r.status_code == 429
    assert "retry-after" not in r.headers
    assert r.json()["status"] == "429"
    assert client.post("/v2/Groups", json={}).status_code == 201
    assert upstream.seen == [("GET", "/v2/Groups"), ("POST", "/v2/Users"), ("POST", "/v2/Groups")]


def test_fail_next_rules_add_up_oldest_first(client: httpx.Client, proxy: FaultProxy) -> None:
    proxy.fail_next(1, status=500)
    proxy.fail_next(2, status=503)
    assert [client.get("/v2/Users").status_code for _ in range(4)] == [500, 503, 503, 200]


def test_fail_next_html_and_text_bodies(client: httpx.Client, proxy: FaultProxy) -> None:
    proxy.fail_next(1, status=503, body="html")
    r = client.get("/v2/Users")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>503 Service Unavailable</title>" in r.text
    proxy.fail_next(1, status=500)  # auto: not a SCIM error but a line of text
    r = client.get("/v2/Users")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "injected fault: 500 Internal Server Error\n"


# -- fail_rate ------------------------------------------------------------------------------


def _statuses(client: httpx.Client, n: int) -> list[tuple[int, str | None]]:
    out = []
    for i in range(n):
        r = client.get(f"/v2/Users/{i}")
        out.append((r.status_code, r.headers.get("retry-after")))
    return out


def test_fail_rate_is_deterministic_for_a_seed_and_near_the_rate(
    client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    proxy.fail_rate(0.3, seed=42)
    first = _statuses(client, 200)
    proxy.fail_rate(0.3, seed=42)
    second = _statuses(client, 200)
    assert first == second
    failed = [(status, retry) for status, retry in first if status != 200]
    assert 40 <= len(failed) <= 80
    assert {status for status, _ in failed} == {500, 502, 503, 429}
    assert all((retry == "0") == (status == 429) for status, retry in failed)
    # every request that did not fail reached the upstream, and no other one
    assert upstream.count == 2 * (200 - len(failed))
    proxy.fail_rate(0.3, seed=43)
    assert _statuses(client, 50) != first[:50]


def test_fail_rate_matches_methods_and_sets_retry_after(
    client: httpx.Client, proxy: FaultProxy
) -> None:
    proxy.fail_rate(1.0, statuses=(429,), retry_after=3, methods=("POST",))
    assert client.get("/v2/Users").status_code == 200
    r = client.post("/v2/Users", json={})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    proxy.fail_rate(0)
    assert client.post("/v2/Users", json={}).status_code == 201


# -- fail_after_forward ---------------------------------------------------------------------


def test_fail_after_forward_writes_upstream_but_answers_502(
    client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    proxy.fail_after_forward(1)
    assert client.get("/v2/Users").status_code == 200  # not a POST: untouched
    r = client.post("/v2/Users", json={"userName": "ann"})
    assert r.status_code == 502
    assert upstream.seen == [("GET", "/v2/Users"), ("POST", "/v2/Users")]
    assert client.post("/v2/Users", json={"userName": "ann"}).status_code == 201
    assert upstream.count == 3
    stats = proxy.stats()
    assert stats["forwarded"] == 3
    assert stats["injected"] == {502: 1}
    assert [status for _, _, status in stats["log"]] == [200, 502, 201]


# -- delay ----------------------------------------------------------------------------------


def test_delay_makes_a_client_time_out_then_requests_pass(
    proxy: FaultProxy, upstream: Echo
) -> None:
    proxy.delay(1.5, n=1)
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v2/Users")
        assert time.monotonic() - started < 1.0
        # the delayed request did reach the upstream: only its answer is late
        assert upstream.count == 1
        started = time.monotonic()
        assert client.get("/v2/Users").status_code == 200
        assert time.monotonic() - started < 1.0


def test_delay_holds_back_matching_answers(client: httpx.Client, proxy: FaultProxy) -> None:
    proxy.delay(0.8, methods=("POST",))
    started = time.monotonic()
    assert client.get("/v2/Users").status_code == 200
    assert time.monotonic() - started < 0.6
    started = time.monotonic()
    assert client.post("/v2/Users", json={}).status_code == 201
    assert time.monotonic() - started >= 0.8
    assert proxy.log[-1] == ("POST", "/v2/Users", 201)


def test_stop_does_not_wait_for_a_pending_delay(upstream: Echo) -> None:
    proxy = FaultProxy(upstream=upstream.server.url)
    with proxy, httpx.Client(base_url=proxy.url, trust_env=False, timeout=0.2) as client:
        proxy.delay(30)
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v2/Users")
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert not proxy.running
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError):
        client.get(proxy.url + "/v2/Users")


# -- clear, stats ---------------------------------------------------------------------------


def test_clear_removes_every_rule(client: httpx.Client, proxy: FaultProxy) -> None:
    proxy.fail_next(5, status=503)
    proxy.fail_rate(1.0, statuses=(500,))
    proxy.fail_after_forward(5)
    proxy.delay(5, path_contains="/Users")
    assert client.get("/v2/Groups").status_code == 503  # the rules were in force
    proxy.clear()
    started = time.monotonic()
    assert client.get("/v2/Users").status_code == 200
    assert client.post("/v2/Users", json={}).status_code == 201
    assert time.monotonic() - started < 2
    assert proxy.stats()["injected"] == {503: 1}  # clear() keeps the counters


def test_log_keeps_the_last_requests(upstream: Echo) -> None:
    with (
        FaultProxy(upstream=upstream.server.url, log_size=3) as proxy,
        httpx.Client(base_url=proxy.url, trust_env=False) as client,
    ):
        for i in range(5):
            client.get(f"/v2/Users/{i}")
        assert proxy.log == [("GET", f"/v2/Users/{i}", 200) for i in (2, 3, 4)]
        assert proxy.stats()["requests"] == 5
        proxy.reset_stats()
        assert proxy.stats() == {
            "requests": 0,
            "forwarded": 0,
            "injected": {},
            "upstream_errors": 0,
            "log": [],
        }


def test_rejects_bad_rules(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="rate"):
        proxy.fail_rate(1.5)
    with pytest.raises(ValueError, match="body"):
        proxy.fail_next(1, body="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must"):
        proxy.fail_next(-1)


# -- bending SCIM ---------------------------------------------------------------------------


def test_ignore_paging_forwards_list_requests_without_start_index(
    client: httpx.Client, proxy: FaultProxy, upstream: Echo
) -> None:
    query = {"filter": 'userName eq "a b"', "startIndex": "3", "count": "2"}
    assert client.get("/v2/Users", params=query).json()["params"] == query  # not yet
    proxy.ignore_paging()
    seen = client.get("/v2/Users", params=query).json()
    assert seen["params"] == {"filter": 'userName eq "a b"', "count": "2"}
    # a write is not a list read: its query is left alone
    assert client.post("/v2/Users", params=query, json={}).json()["params"] == query
    proxy.clear()
    assert client.get("/v2/Users", params=query).json()["params"] == query


class Lenient:
    """An upstream whose filters match everything: the proxy's case-sensitive rule must
    keep only what a clause matches exactly."""

    USERS = (
        {"id": "1", "userName": "Ann@Example.com", "externalId": "00u1"},
        {"id": "2", "userName": "bob@example.com", "externalId": "00u2"},
        {"id": "3", "userName": 'quo"te\\d', "externalId": "00u3"},
    )

    def __init__(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=METHODS)])
        self.server = BackgroundServer(app, name="lenient-upstream")

    async def handle(self, request: Request) -> Response:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(self.USERS),
            "itemsPerPage": len(self.USERS),
            "startIndex": 1,
            "Resources": list(self.USERS),
        }
        return JSONResponse(body, media_type="application/scim+json")


@pytest.fixture()
def lenient_client() -> Iterator[tuple[httpx.Client, FaultProxy]]:
    lenient = Lenient()
    with (
        lenient.server,
        FaultProxy(upstream=lenient.server.url) as proxy,
        httpx.Client(base_url=proxy.url, trust_env=False, timeout=10) as client,
    ):
        yield client, proxy


def _found(client: httpx.Client, path: str, filter_: str) -> tuple[list[str], int]:
    r = client.get(path, params={"filter": filter_})
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert body["itemsPerPage"] == len(body["Resources"])
    return [u["id"] for u in body["Resources"]], body["totalResults"]


def test_case_sensitive_user_names_keeps_exact_matches_only(
    lenient_client: tuple[httpx.Client, FaultProxy],
) -> None:
    client, proxy = lenient_client
    assert _found(client, "/v2/Users", 'userName eq "ann@example.com"') == (["1", "2", "3"], 3)
    proxy.case_sensitive_user_names()
    assert _found(client, "/v2/Users", 'userName eq "ann@example.com"') == ([], 0)
    assert _found(client, "/v2/Users", 'userName eq "Ann@Example.com"') == (["1"], 1)
    assert _found(client, "/v2/Users", 'USERNAME EQ "Ann@Example.com"') == (["1"], 1)
    # clauses joined with or: each compared exactly (externalId too)
    either = 'externalId eq "00u2" or userName eq "ANN@example.com" or externalId eq "00U1"'
    assert _found(client, "/v2/Users", either) == (["2"], 1)
    # an escaped value is compared unescaped
    assert _found(client, "/v2/Users", r'userName eq "quo\"te\\d"') == (["3"], 1)
    # other filters, and other paths, pass unchanged
    assert _found(client, "/v2/Users", 'externalId eq "nobody"') == (["1", "2", "3"], 3)
    assert _found(client, "/v2/Users", 'userName sw "a"') == (["1", "2", "3"], 3)
    assert _found(client, "/v2/Groups", 'userName eq "x"') == (["1", "2", "3"], 3)
    proxy.clear()
    assert _found(client, "/v2/Users", 'userName eq "ann@example.com"') == (["1", "2", "3"], 3)
