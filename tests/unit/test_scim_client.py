"""The SCIM client against an in-process fake server (httpx2's MockTransport): its one
retry layer, its rate limit, reads that come out short, filtered lookups, and logins
that a server compares case-sensitively."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from scimflow.errors import (
    ScimConflictError,
    ScimIncompleteReadError,
    ScimTransientError,
)
from scimflow.scim.client import ScimTarget, last_status, open_client
from scimflow.scim.config import TargetConfig

BASE = "https://scim.example.test/v2"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_CLAUSE = re.compile(r'(\w+) eq "((?:[^"\\]|\\.)*)"')


@dataclass
class FakeScim:
    """A SCIM server in memory, with the ways real ones bend the protocol."""

    users: list[dict[str, Any]] = field(default_factory=list)
    filtering: bool = True
    or_filters: bool = True
    case_sensitive: bool = False  # userName compared case-sensitively in filters
    ignore_start_index: bool = False
    ignore_count: bool = False
    extra_total: int = 0  # totalResults claims this many more than there are
    omit_total: bool = False
    # (method, path) → statuses to answer before serving normally
    faults: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def add(self, n: int, *, start: int = 0) -> None:
        for i in range(start, start + n):
            self.users.append(
                {"id": f"s{i}", "userName": f"user{i}@x.test", "externalId": f"00u{i}"}
            )

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def requests(self, method: str, path: str, *, filtered: bool | None = None) -> int:
        return sum(
            1
            for m, p, q in self.seen
            if m == method and p == path and (filtered is None or ("filter" in q) == filtered)
        )

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v2")
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        self.seen.append((request.method, path, query))
        pending = self.faults.get((request.method, path))
        if pending:
            status = pending.pop(0)
            headers = {"Retry-After": "7"} if status == 429 else {}
            return httpx2.Response(
                status, headers=headers, json={"detail": "ann@x.test is secret", "status": status}
            )
        if path == "/ServiceProviderConfig":
            return httpx2.Response(
                200,
                json={
                    "patch": {"supported": True},
                    "filter": {"supported": self.filtering, "maxResults": 200},
                },
            )
        if request.method == "POST" and path == "/Users":
            body = json.loads(request.content)
            if any(u["userName"].lower() == body["userName"].lower() for u in self.users):
                return httpx2.Response(409, json={"detail": "uniqueness"})
            user = {**body, "id": f"s{len(self.users) + 1000}"}
            self.users.append(user)
            return httpx2.Response(201, json=user)
        if request.method == "GET" and path == "/Users":
            return self._list(query)
        return httpx2.Response(404, json={"detail": "no such thing"})

    def _list(self, query: dict[str, str]) -> httpx2.Response:
        found = self.users
        if "filter" in query:
            if not self.filtering:
                return httpx2.Response(400, json={"detail": "filtering is not supported"})
            clauses = _CLAUSE.findall(query["filter"])
            if len(clauses) > 1 and not self.or_filters:
                return httpx2.Response(400, json={"scimType": "invalidFilter"})
            found = [u for u in found if any(self._match(u, a, v) for a, v in clauses)]
        start = 1 if self.ignore_start_index else int(query.get("startIndex", 1))
        count = len(found) if self.ignore_count else int(query.get("count", 100))
        page = found[start - 1 : start - 1 + count]
        body: dict[str, Any] = {"schemas": [LIST], "Resources": page, "startIndex": start}
        if not self.omit_total:
            body["totalResults"] = len(found) + self.extra_total
        return httpx2.Response(200, json=body)

    def _match(self, user: dict[str, Any], attr: str, raw: str) -> bool:
        value = re.sub(r"\\(.)", r"\1", raw)
        have = user.get(attr)
        if not isinstance(have, str):
            return False
        if attr == "userName" and not self.case_sensitive:
            return have.lower() == value.lower()
        return have == value


@pytest.fixture()
def fake() -> FakeScim:
    server = FakeScim()
    server.add(7)
    return server


def client(fake: FakeScim, **kw: Any) -> ScimTarget:
    kw.setdefault("sleep", lambda _s: None)
    target = ScimTarget("crm", BASE, transport=fake.transport(), **kw)
    target.discover()
    return target


@pytest.fixture()
def sleeps() -> list[float]:
    return []


# -- one retry layer --------------------------------------------------------------------------


def test_a_read_is_retried_up_to_max_attempts_and_each_retry_logged_once(
    fake: FakeScim, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    target = client(fake, max_attempts=3, sleep=sleeps.append)
    fake.faults[("GET", "/Users/s1")] = [503] * 10
    with (
        caplog.at_level(logging.WARNING, logger="scimflow.scim.client"),
        pytest.raises(ScimTransientError) as raised,
    ):
        target.get("Users", "s1")
    assert fake.requests("GET", "/Users/s1") == 3
    assert len(sleeps) == 2
    assert raised.value.status == 503
    assert raised.value.reason.endswith("after 3 attempts")
    assert "crm" in str(raised.value) and "GET /Users/s1" in str(raised.value)
    retries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split("; ")[0] for r in retries] == [
        "crm: GET /Users/s1: HTTP 503, attempt 1 of 3",
        "crm: GET /Users/s1: HTTP 503, attempt 2 of 3",
    ]
    assert all("retrying in" in r.getMessage() for r in retries)
    # never the answer's body (which may name a person)
    assert not any("secret" in r.getMessage() or "ann@" in r.getMessage() for r in retries)


def test_a_write_is_retried_by_the_client_and_retry_after_is_honoured(
    fake: FakeScim, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    target = client(fake, sleep=sleeps.append)
    fake.faults[("POST", "/Users")] = [502, 429]
    with caplog.at_level(logging.WARNING, logger="scimflow.scim.client"):
        created = target.create("Users", {"userName": "new@x.test"})
    assert created["userName"] == "new@x.test"
    assert fake.requests("POST", "/Users") == 3
    assert last_status() == 201
    assert len(sleeps) == 2 and sleeps[1] >= 7  # the 429's Retry-After: 7
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "HTTP 429, attempt 2 of 5; retrying in 7.00 s" in messages[1]


def test_a_write_retried_after_a_lost_answer_meets_409_and_is_not_retried_again(
    fake: FakeScim,
) -> None:
    target = client(fake)
    fake.users.append({"id": "dup", "userName": "dup@x.test"})
    fake.faults[("POST", "/Users")] = [503]
    with pytest.raises(ScimConflictError):
        target.create("Users", {"userName": "dup@x.test"})
    assert fake.requests("POST", "/Users") == 2
    assert last_status() == 409


def test_a_network_failure_is_retried_and_named_by_its_type(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        raise httpx2.ConnectError("connection refused", request=request)

    target = ScimTarget(
        "crm", BASE, transport=httpx2.MockTransport(refuse), max_attempts=2, sleep=sleeps.append
    )
    with (
        caplog.at_level(logging.WARNING, logger="scimflow.scim.client"),
        pytest.raises(ScimTransientError, match="after 2 attempts") as raised,
    ):
        target.discover()
    assert len(calls) == 2
    assert raised.value.status is None
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "network: ConnectError, attempt 1 of 2" in record.getMessage()


def test_max_attempts_one_means_no_retry(fake: FakeScim, sleeps: list[float]) -> None:
    target = client(fake, max_attempts=1, sleep=sleeps.append)
    fake.faults[("GET", "/Users/s1")] = [500]
    with pytest.raises(ScimTransientError, match=r"after 1 attempt$"):
        target.get("Users", "s1")
    assert sleeps == [] and fake.requests("GET", "/Users/s1") == 1
    with pytest.raises(ValueError, match="max_attempts"):
        ScimTarget("crm", BASE, max_attempts=0)


# -- the rate limit ---------------------------------------------------------------------------


def test_every_request_waits_for_the_rate_limit_reads_writes_and_retries(fake: FakeScim) -> None:
    unlimited = client(fake)
    started = time.monotonic()
    for _ in range(7):
        list(unlimited.list_resources("Users"))
    assert time.monotonic() - started < 0.5

    limited = client(fake, requests_per_second=3)  # discover took one of the first second's 3
    fake.faults[("POST", "/Users")] = [503]  # the retry is a request too
    started = time.monotonic()
    limited.create("Users", {"userName": "a@x.test"})  # 2 requests
    list(limited.list_resources("Users"))  # 1: the first second's 3 are used
    limited.create("Users", {"userName": "b@x.test"})  # the second second
    assert time.monotonic() - started >= 0.8
    assert fake.requests("POST", "/Users") == 3


# -- reads that come out short ----------------------------------------------------------------


def test_a_server_ignoring_start_index_raises_instead_of_a_short_list(fake: FakeScim) -> None:
    fake.ignore_start_index = True
    target = client(fake)
    with pytest.raises(ScimIncompleteReadError) as raised:
        list(target.list_resources("Users", page_size=3))
    error = raised.value
    assert (error.target, error.what, error.read, error.total) == ("crm", "GET /Users", 3, 7)
    assert str(error).startswith("crm: GET /Users: read 3 resources of the 7")
    assert "ignores startIndex/count" in str(error)
    assert fake.requests("GET", "/Users") == 2  # stopped at the repeated page


def test_pages_adding_up_to_less_than_total_results_raise(fake: FakeScim) -> None:
    fake.extra_total = 2
    target = client(fake)
    with pytest.raises(ScimIncompleteReadError) as raised:
        list(target.list_resources("Users", page_size=3))
    assert (raised.value.read, raised.value.total) == (7, 9)
    assert "ran out before its totalResults" in raised.value.reason


@pytest.mark.parametrize(
    ("bend", "requests"),
    [
        ({}, 3),  # honest paging: 3 + 3 + 1
        ({"ignore_count": True, "ignore_start_index": True}, 1),  # everything at once
        ({"omit_total": True}, 3),  # no totalResults: a short page is the last
    ],
)
def test_complete_reads_end_normally(fake: FakeScim, bend: dict[str, bool], requests: int) -> None:
    for key, value in bend.items():
        setattr(fake, key, value)
    target = client(fake)
    users = list(target.list_resources("Users", page_size=3))
    assert sorted(u["id"] for u in users) == sorted(f"s{i}" for i in range(7))
    assert fake.requests("GET", "/Users") == requests


def test_a_server_ignoring_paging_but_within_one_page_is_read_whole(fake: FakeScim) -> None:
    fake.ignore_start_index = True
    target = client(fake)
    assert len(list(target.list_resources("Users", page_size=10))) == 7


def test_without_total_results_a_repeated_full_page_raises(fake: FakeScim) -> None:
    fake.ignore_start_index, fake.omit_total = True, True
    target = client(fake)
    with pytest.raises(ScimIncompleteReadError, match=r"read 3 resources \(no totalResults\)"):
        list(target.list_resources("Users", page_size=3))


# -- the fallback reader: lookup_users --------------------------------------------------------


def test_lookup_users_reads_by_filter_in_chunks_and_dedupes(fake: FakeScim) -> None:
    fake.ignore_start_index = True  # the list cannot be read, filters can
    target = client(fake)
    keys = [(f"00u{i}", f"USER{i}@X.test") for i in range(7)]
    keys += [("00u9", "nobody@x.test"), ("00u1", ""), ("", "user2@x.test")]
    found = target.lookup_users(keys, chunk=3)
    assert sorted(u["id"] for u in found) == sorted(f"s{i}" for i in range(7))  # each once
    assert fake.requests("GET", "/Users", filtered=True) == 4  # 10 keys, 3 a request
    first = next(q["filter"] for m, p, q in fake.seen if "filter" in q)
    assert first == (
        'externalId eq "00u0" or externalId eq "00u1" or externalId eq "00u2" or '
        'userName eq "USER0@X.test" or userName eq "USER1@X.test" or userName eq "USER2@X.test"'
    )


def test_lookup_users_keeps_only_what_matches_and_escapes_values(fake: FakeScim) -> None:
    fake.users.append({"id": "q", "userName": 'o"brien\\x@x.test', "externalId": "00uq"})
    target = client(fake)
    found = target.lookup_users([("nope", 'O"Brien\\X@x.test')])
    assert [u["id"] for u in found] == ["q"]
    assert r'userName eq "O\"Brien\\X@x.test"' in fake.seen[-1][2]["filter"]


def test_lookup_users_asks_one_clause_a_request_when_or_is_refused(
    fake: FakeScim, caplog: pytest.LogCaptureFixture
) -> None:
    fake.or_filters = False
    target = client(fake)
    with caplog.at_level(logging.WARNING, logger="scimflow.scim.client"):
        found = target.lookup_users([("00u1", "user1@x.test"), ("00u3", "")])
        again = target.lookup_users([("00u4", ""), ("00u5", "")])
    assert sorted(u["id"] for u in found) == ["s1", "s3"]
    assert sorted(u["id"] for u in again) == ["s4", "s5"]
    # one refused or-filter, then 3 clauses one by one; the next lookup asks no or-filter
    filters = [q["filter"] for _, _, q in fake.seen if "filter" in q]
    assert len(filters) == 1 + 3 + 2
    assert [" or " in f for f in filters] == [True] + [False] * 5
    assert sum("refuses filters joined with 'or'" in r.getMessage() for r in caplog.records) == 1


def test_lookup_users_needs_a_server_that_filters(fake: FakeScim) -> None:
    fake.filtering = False
    target = client(fake)
    with pytest.raises(ScimIncompleteReadError, match=r"^crm: .*announces no filtering"):
        target.lookup_users([("00u1", "user1@x.test")])
    assert fake.requests("GET", "/Users") == 0


# -- 409 with a login in another case ----------------------------------------------------------


def test_find_user_resolves_a_login_in_another_case_reading_the_list_once(
    fake: FakeScim,
) -> None:
    fake.case_sensitive = True
    target = client(fake)
    with pytest.raises(ScimConflictError):
        target.create("Users", {"userName": "User3@X.test"})
    found = target.find_user("00uNEW", "User3@X.test")
    assert found is not None and found["id"] == "s3"
    assert fake.requests("GET", "/Users", filtered=False) == 1
    # a burst of them reads the list no more
    for i in (4, 5, 6):
        hit = target.find_user(None, f"USER{i}@x.TEST")
        assert hit is not None and hit["id"] == f"s{i}"
    assert target.find_user(None, "nobody@x.test") is None
    assert fake.requests("GET", "/Users", filtered=False) == 1
    # the exact case is found by the filter itself
    exact = target.find_user(None, "user2@x.test")
    assert exact is not None and exact["id"] == "s2"


def test_find_user_prefers_externalid_and_compares_it_exactly(fake: FakeScim) -> None:
    target = client(fake)
    found = target.find_user("00u5", "user1@x.test")
    assert found is not None and found["id"] == "s5"
    assert fake.requests("GET", "/Users", filtered=True) == 1
    assert target.find_user("00U5", None) is None


def test_two_logins_differing_in_case_only_are_ambiguous(fake: FakeScim) -> None:
    fake.case_sensitive = True
    fake.users += [{"id": "a1", "userName": "Ann@x.test"}, {"id": "a2", "userName": "ANN@x.test"}]
    target = client(fake)
    assert target.find_user(None, "ann@x.test") is None  # which one? neither: park
    exact = target.find_user(None, "ANN@x.test")
    assert exact is not None and exact["id"] == "a2"


def test_without_filtering_find_user_reads_the_list_again_only_on_a_miss(fake: FakeScim) -> None:
    fake.filtering = False
    target = client(fake)
    assert (target.find_user("00u1") or {}).get("id") == "s1"
    assert (target.find_user(None, "USER2@x.test") or {}).get("id") == "s2"
    assert fake.requests("GET", "/Users") == 1
    fake.add(1, start=7)  # created since the list was read
    assert (target.find_user("00u7") or {}).get("id") == "s7"
    assert fake.requests("GET", "/Users") == 2


def test_a_list_that_cannot_be_read_finds_nothing_rather_than_failing(fake: FakeScim) -> None:
    fake.case_sensitive, fake.ignore_start_index = True, True
    target = client(fake)
    target.capabilities = type(target.capabilities)(
        patch=True, bulk=False, filter=True, etag=False, max_results=3
    )
    assert target.find_user(None, "USER1@x.test") is None
    assert target.find_user(None, "USER2@x.test") is None
    assert fake.requests("GET", "/Users", filtered=False) == 2  # one page, its repeat: once


# -- open_client ------------------------------------------------------------------------------


def _config(auth: dict[str, Any], **kw: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {"name": "crm", "base_url": BASE, "auth": auth, "concurrency": 3, **kw}
    )


@pytest.fixture()
def recorded() -> Iterator[tuple[list[httpx2.Request], Callable[..., httpx2.MockTransport]]]:
    seen: list[httpx2.Request] = []

    def transport() -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            seen.append(request)
            return httpx2.Response(
                200, json={"filter": {"supported": True, "maxResults": 50}, "bulk": {}}
            )

        return httpx2.MockTransport(handle)

    yield seen, transport


def test_open_client_with_bearer_auth(
    recorded: tuple[list[httpx2.Request], Callable[..., httpx2.MockTransport]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen, transport = recorded
    monkeypatch.setenv("CRM_TOKEN", "t0ken")
    config = _config({"type": "bearer", "token": {"env": "CRM_TOKEN"}}, requests_per_second=7.0)
    target = open_client(config, transport=transport())
    assert (target.name, target.base_url, target.requests_per_second) == ("crm", BASE, 7.0)
    assert target.capabilities.filter and target.capabilities.max_results == 50
    (request,) = seen
    assert request.url.path == "/v2/ServiceProviderConfig"
    assert request.headers["Authorization"] == "Bearer t0ken"
    target.close()


def test_open_client_with_basic_auth(
    recorded: tuple[list[httpx2.Request], Callable[..., httpx2.MockTransport]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen, transport = recorded
    monkeypatch.setenv("CRM_PASSWORD", "pw")
    config = _config({"type": "basic", "username": "svc", "password": {"env": "CRM_PASSWORD"}})
    open_client(config, transport=transport()).close()
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"svc:pw").decode()


def test_the_executor_adds_no_retries_of_its_own(fake: FakeScim) -> None:
    """A read the executor makes (a deactivation on a server without PATCH reads the user
    first) is tried max_attempts times in all, by the client (before: the executor
    retried each of the client's up to 5 attempts 5 times, 25 in all)."""
    from scimflow.scim.apply import Executor
    from scimflow.scim.plan import Operation, Plan

    from tests.support.model_target import MemoryStore

    target = client(fake)
    target.capabilities = replace(target.capabilities, patch=False)
    fake.faults[("GET", "/Users/s1")] = [503] * 50
    op = Operation("deactivate", "User", "00u1", "s1", reason="left Okta")
    result = Executor(target, MemoryStore(), run_id="r", cause="c").apply(Plan("crm", (op,)))
    assert fake.requests("GET", "/Users/s1") == target.max_attempts == 5
    assert [okta_id for okta_id, _ in result.failed] == ["00u1"]
    assert "after 5 attempts" in result.failed[0][1]
