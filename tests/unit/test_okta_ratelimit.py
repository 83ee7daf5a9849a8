from __future__ import annotations

import asyncio

import pytest
from scimflow.okta.emulator.ratelimit import ENTERPRISE_LIMITS, RateLimiter, family_of
from scimflow.okta.source import RatePacer


@pytest.mark.parametrize(
    ("method", "path", "family"),
    [
        ("GET", "/api/v1/users", "users_list_create"),
        ("POST", "/api/v1/users", "users_list_create"),
        ("GET", "/api/v1/users/00u1", "user_get"),
        ("POST", "/api/v1/users/00u1", "user_update"),
        ("POST", "/api/v1/users/00u1/lifecycle/deactivate", "user_update"),
        ("GET", "/api/v1/users/00u1/groups", "user_other"),
        ("GET", "/api/v1/groups", "groups"),
        ("GET", "/api/v1/groups/00g1/users", "group_one"),
        ("GET", "/api/v1/logs", "logs"),
    ],
)
def test_families_follow_okta_table(method: str, path: str, family: str) -> None:
    assert family_of(method, path) == family


def test_the_published_enterprise_limits() -> None:
    assert ENTERPRISE_LIMITS["users_list_create"] == 600
    assert ENTERPRISE_LIMITS["user_get"] == 1000
    assert ENTERPRISE_LIMITS["logs"] == 50
    assert ENTERPRISE_LIMITS["org"] == 5200


def test_a_window_allows_its_limit_then_refuses_until_reset() -> None:
    limiter = RateLimiter(limits={**ENTERPRISE_LIMITS, "logs": 3})
    t = 120.0  # the start of a minute window
    decisions = []
    for _ in range(4):
        d = limiter.acquire("logs", now=t + 1)
        decisions.append(d)
        if d.allowed:
            limiter.release()
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].headers() == {
        "X-Rate-Limit-Limit": "3",
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Reset": "180",
    }
    # the next window starts fresh
    assert limiter.acquire("logs", now=181).allowed
    assert limiter.refused == 1


def test_the_org_wide_limit_caps_every_family() -> None:
    limiter = RateLimiter(limits={**ENTERPRISE_LIMITS, "org": 2})
    assert limiter.acquire("users_list_create", now=0).allowed
    assert limiter.acquire("groups", now=0).allowed
    assert not limiter.acquire("logs", now=0).allowed


def test_concurrency_cap() -> None:
    limiter = RateLimiter(concurrency=2)
    assert limiter.acquire("groups", now=0).allowed
    assert limiter.acquire("groups", now=0).allowed
    refused = limiter.acquire("groups", now=0)
    assert not refused.allowed and refused.limit == 0 and refused.remaining == 0
    limiter.release()
    assert limiter.acquire("groups", now=0).allowed


def test_time_scale_shortens_the_window() -> None:
    limiter = RateLimiter(limits={**ENTERPRISE_LIMITS, "logs": 1}, time_scale=60)
    assert limiter.window == 1.0
    assert limiter.acquire("logs", now=10.2).allowed
    limiter.release()
    assert not limiter.acquire("logs", now=10.9).allowed
    assert limiter.acquire("logs", now=11.0).allowed


def test_the_pacer_waits_for_the_reset_when_the_budget_is_spent() -> None:
    pacer = RatePacer(reserve=0)

    async def scenario() -> float:
        await pacer.before("users")
        # the server says: nothing left, window resets in 0.3 s
        pacer.after(
            "users",
            {
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": "1000.3",
                "Date": "Thu, 01 Jan 1970 00:16:40 GMT",
            },
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await pacer.before("users")
        return loop.time() - t0

    waited = asyncio.run(scenario())
    assert 0.25 <= waited < 1.5
    assert pacer.requests == 2


def test_the_pacer_does_not_wait_with_budget_left() -> None:
    pacer = RatePacer(reserve=2)

    async def scenario() -> None:
        await pacer.before("users")
        pacer.after(
            "users",
            {"X-Rate-Limit-Remaining": "10", "X-Rate-Limit-Reset": "9999999999", "Date": None},
        )
        await pacer.before("users")

    asyncio.run(scenario())
    assert pacer.waited == 0.0
