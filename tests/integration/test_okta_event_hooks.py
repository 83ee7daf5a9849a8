"""Event Hook delivery from the emulator to a real HTTP endpoint on loopback."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import BackgroundServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scimflow.okta.emulator.server import EmulatorServer

    from tests.support.fixtures import StartEmulator

pytestmark = pytest.mark.integration

SECRET = "hook-secret-value"


class HookEndpoint:
    """A hook receiver that records what Okta sends and answers as it is told."""

    def __init__(self) -> None:
        self.verifications: list[dict[str, str]] = []
        self.posts: list[dict[str, Any]] = []
        self.answers: list[int | float] = []  # per POST: a status, or a delay in seconds (float)

        async def hook(request: Request) -> Response:
            if request.method == "GET":
                self.verifications.append(dict(request.headers))
                return JSONResponse(
                    {"verification": request.headers["x-okta-verification-challenge"]}
                )
            body = await request.json()
            self.posts.append({"headers": dict(request.headers), "body": body})
            answer = self.answers.pop(0) if self.answers else 200
            if isinstance(answer, float):
                await asyncio.sleep(answer)
                return Response(status_code=200)
            return Response(status_code=answer)

        app = Starlette(routes=[Route("/okta/hooks", hook, methods=["GET", "POST"])])
        self.server = BackgroundServer(app, name="hook-endpoint")

    @property
    def url(self) -> str:
        return f"{self.server.url}/okta/hooks"

    def events(self) -> list[dict[str, Any]]:
        return [e for p in self.posts for e in p["body"]["data"]["events"]]


@pytest.fixture()
def endpoint() -> Iterator[HookEndpoint]:
    ep = HookEndpoint()
    with ep.server:
        yield ep


def configure(server: EmulatorServer, endpoint: HookEndpoint, **settings: Any) -> httpx.Response:
    body = {"url": endpoint.url, "auth_value": SECRET, "batch_wait": 0.05, **settings}
    return httpx.post(
        f"{server.url}/emulator/hooks", json=body, headers={"Authorization": "SSWS emulator-token"}
    )


def test_verification_then_batched_deliveries_with_the_auth_header(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator(users=20, groups=2)
    assert configure(server, endpoint, batch_size=10).status_code == 200
    assert len(endpoint.verifications) == 1
    d = server.state.directory
    for _ in range(25):
        d.update_profile(d.user_ids[0], {"title": "Engineer"})
    assert server.state.hooks.flush(10)

    assert all(p["headers"]["authorization"] == SECRET for p in endpoint.posts)
    body = endpoint.posts[0]["body"]
    assert body["eventType"] == "com.okta.event_hook" and body["cloudEventsVersion"] == "0.1"
    assert all(1 <= len(p["body"]["data"]["events"]) <= 10 for p in endpoint.posts)
    assert len(endpoint.posts) >= 3
    got = endpoint.events()
    assert [e["uuid"] for e in got] == [e["uuid"] for e in d.log[-25:]]  # in order: reorder is off
    assert {e["eventType"] for e in got} == {"user.account.update_profile"}
    assert got[0]["target"][0]["id"] == d.user_ids[0]


def test_a_failed_verification_is_refused(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator()
    bad = configure(server, endpoint, url=endpoint.url.replace("/okta/hooks", "/nowhere"))
    assert bad.status_code == 400
    assert "verification failed" in bad.json()["errorSummary"]


def test_at_least_once_and_out_of_order(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator(users=40, groups=2)
    configure(server, endpoint, batch_size=8, duplicate_rate=0.3, reorder=True, seed=7)
    d = server.state.directory
    for uid in d.user_ids[:30]:
        d.update_profile(uid, {"title": "Analyst"})
    assert server.state.hooks.flush(15)

    sent = [e["uuid"] for e in d.log[-30:]]
    got = [e["uuid"] for e in endpoint.events()]
    assert set(got) == set(sent)  # every event at least once
    assert len(got) > len(sent)  # some more than once
    assert server.state.hooks.stats()["duplicates_sent"] == len(got) - len(sent)
    first_seen = list(dict.fromkeys(got))
    assert first_seen != sent  # not in published order


def test_a_5xx_or_a_timeout_is_retried_once_and_a_4xx_is_not(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator(users=10, groups=1)
    configure(server, endpoint, batch_size=100, timeout=1.0)
    d = server.state.directory
    hooks = server.state.hooks

    endpoint.answers[:] = [503, 200]  # fails, retried, delivered
    d.update_profile(d.user_ids[0], {"title": "A"})
    assert hooks.flush(10)
    assert len(endpoint.posts) == 2 and hooks.stats()["retries"] == 1

    endpoint.answers[:] = [1.5, 200]  # times out (1 s here, 3 s by default), retried
    d.update_profile(d.user_ids[0], {"title": "B"})
    assert hooks.flush(10)
    assert len(endpoint.posts) == 4 and hooks.stats()["retries"] == 2

    endpoint.answers[:] = [400]  # a 4xx is not retried: the hook loses the batch
    d.update_profile(d.user_ids[0], {"title": "C"})
    assert hooks.flush(10)
    assert len(endpoint.posts) == 5
    stats = hooks.stats()
    assert stats["retries"] == 2 and stats["batches_failed"] == 1

    endpoint.answers[:] = [500, 500]  # fails twice: given up after one retry
    d.update_profile(d.user_ids[0], {"title": "D"})
    assert hooks.flush(10)
    assert len(endpoint.posts) == 7 and hooks.stats()["batches_failed"] == 2


def test_dropped_deliveries_stay_in_the_system_log(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator(users=10, groups=1)
    configure(server, endpoint, drop=True)
    d = server.state.directory
    before = len(d.log)
    for _ in range(5):
        d.update_profile(d.user_ids[1], {"title": "Consultant"})
    assert server.state.hooks.flush(5)
    assert endpoint.posts == []
    assert server.state.hooks.stats()["events_dropped"] == 5
    assert len(d.log) == before + 5


def test_churn_mutates_like_an_organisation(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    from scimflow.okta.emulator.churn import ChurnDriver

    server = okta_emulator(users=200, groups=10)
    configure(server, endpoint, batch_size=50)
    d = server.state.directory
    before = len(d.log)
    driver = ChurnDriver(d, rate=2000, seed=3)
    assert driver.run(count=300) == 300
    assert server.state.hooks.flush(20)
    new = d.log[before:]
    kinds = {e["eventType"] for e in new}
    assert {
        "user.account.update_profile",
        "user.lifecycle.create",
        "user.lifecycle.deactivate",
    } <= kinds
    assert {"group.user_membership.add", "group.user_membership.remove"} <= kinds
    assert driver.mutations + driver.failed == 300
    assert {e["uuid"] for e in endpoint.events()} == {e["uuid"] for e in new}
    # every mutation moved lastUpdated forward: timestamps are strictly increasing
    published = [e["published"] for e in new]
    assert published == sorted(published) and len(set(published)) == len(published)


def test_okta_write_endpoints_mutate_and_notify(
    okta_emulator: StartEmulator, endpoint: HookEndpoint
) -> None:
    server = okta_emulator(users=5, groups=1)
    configure(server, endpoint)
    d = server.state.directory
    gid = d.group_ids[0]
    with httpx.Client(base_url=server.url, headers={"Authorization": "SSWS emulator-token"}) as c:
        created = c.post(
            "/api/v1/users",
            params={"activate": "true"},
            json={
                "profile": {
                    "firstName": "Hedy",
                    "lastName": "Lamarr",
                    "login": "hedy@example.com",
                    "email": "hedy@example.com",
                }
            },
        ).json()
        uid = created["id"]
        assert created["status"] == "ACTIVE"
        dup = c.post("/api/v1/users", json={"profile": {"login": "HEDY@example.com"}})
        assert dup.status_code == 400 and dup.json()["errorCode"] == "E0000001"
        assert c.put(f"/api/v1/groups/{gid}/users/{uid}").status_code == 204
        updated = c.post(f"/api/v1/users/{uid}", json={"profile": {"title": "Inventor"}}).json()
        assert (
            updated["profile"]["title"] == "Inventor"
            and updated["lastUpdated"] > created["lastUpdated"]
        )
        assert c.post(f"/api/v1/users/{uid}/lifecycle/suspend").status_code == 200
        bad = c.post(f"/api/v1/users/{uid}/lifecycle/suspend")  # already suspended
        assert bad.status_code == 400
        assert c.post(f"/api/v1/users/{uid}/lifecycle/deactivate").status_code == 200
        assert c.delete(f"/api/v1/users/{uid}").status_code == 204
        gone = c.get(f"/api/v1/users/{uid}")
        assert gone.status_code == 404 and gone.json()["errorCode"] == "E0000007"
    assert server.state.hooks.flush(10)
    types = [e["eventType"] for e in endpoint.events() if uid in {t["id"] for t in e["target"]}]
    assert types == [
        "user.lifecycle.create",
        "user.lifecycle.activate",
        "group.user_membership.add",
        "user.account.update_profile",
        "user.lifecycle.suspend",
        "user.lifecycle.deactivate",
        "user.lifecycle.delete.initiated",
    ]
    assert uid not in d.members[gid]
