"""The Okta source, through the official SDK, against the emulator over HTTP."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from scimflow.errors import OktaAuthError, OktaPageError
from scimflow.okta.emulator.ratelimit import ENTERPRISE_LIMITS
from scimflow.okta.source import OktaSettings, OktaSource

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scimflow.okta.emulator.server import EmulatorServer

    from tests.support.fixtures import StartEmulator

pytestmark = pytest.mark.integration


T = TypeVar("T")


def run(
    server: EmulatorServer,
    coro_fn: Callable[[OktaSource], Awaitable[T]],
    *,
    token: str = "emulator-token",
    **settings: Any,
) -> tuple[T, OktaSource]:
    async def go() -> tuple[T, OktaSource]:
        async with OktaSource(OktaSettings(org_url=server.url, token=token, **settings)) as source:
            return await coro_fn(source), source

    return asyncio.run(go())


def test_export_pages_through_every_user_group_and_membership(okta_emulator: StartEmulator) -> None:
    server = okta_emulator(users=230, groups=12)
    d = server.state.directory
    export, _ = run(server, lambda s: s.export(), page_size=20)

    assert sorted(export.users["id"]) == sorted(d.users)  # deprovisioned users included
    assert export.users["id"].is_unique
    truth = d.users[d.user_ids[7]]
    row = export.users.set_index("id").loc[truth["id"]]
    assert row["login"] == truth["profile"]["login"]
    assert row["status"] == truth["status"]
    assert str(export.users["last_updated"].dtype) == "datetime64[ms, UTC]"
    assert sorted(export.groups["id"]) == sorted(d.groups)
    pairs = {(g, u) for g, us in d.members.items() for u in us}
    assert (
        set(zip(export.memberships["group_id"], export.memberships["user_id"], strict=True))
        == pairs
    )
    # many pages were needed: 20 users a page for the active list alone
    active = sum(u["status"] != "DEPROVISIONED" for u in d.users.values())
    assert export.requests >= -(-active // 20) + 1 + len(d.groups)


def test_a_long_export_paces_itself_instead_of_hitting_429(okta_emulator: StartEmulator) -> None:
    # users list: 8 requests a 1.5 s window; the export needs about 19 of them
    limits = {**ENTERPRISE_LIMITS, "users_list_create": 8}
    server = okta_emulator(users=150, groups=2, time_scale=40)
    server.state.limiter.limits = limits
    export, source = run(server, lambda s: s.export(), page_size=10, concurrency=2)
    assert len(export.users) == 150
    assert server.state.limiter.refused == 0, "the source bounced off the rate limit"
    assert source.pacer.waited > 0.5


def test_the_emulator_answers_429_with_okta_headers_when_pushed(
    okta_emulator: StartEmulator,
) -> None:
    import httpx

    server = okta_emulator(users=5, groups=1)
    server.state.limiter.limits = {**ENTERPRISE_LIMITS, "user_get": 2}
    uid = server.state.directory.user_ids[0]
    with httpx.Client(base_url=server.url, headers={"Authorization": "SSWS emulator-token"}) as c:
        codes = [c.get(f"/api/v1/users/{uid}") for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    refused = codes[-1]
    assert refused.json()["errorCode"] == "E0000047"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(refused.headers["X-Rate-Limit-Reset"]) > 0
    assert refused.headers["Date"]


def test_a_bad_token_is_a_clear_error_without_the_token(okta_emulator: StartEmulator) -> None:
    server = okta_emulator()
    with pytest.raises(OktaAuthError) as info:
        run(server, lambda s: s.export(), token="not-the-token-xyz")
    assert "token was refused (E0000011)" in str(info.value)
    assert "not-the-token-xyz" not in str(info.value)


def test_a_failed_page_in_the_middle_fails_the_export(okta_emulator: StartEmulator) -> None:
    from scimflow.okta.emulator.app import Fault

    server = okta_emulator(users=120, groups=2)
    server.state.faults.append(Fault(path="/api/v1/users", after=2, count=1, status=500))
    with pytest.raises(OktaPageError) as info:
        run(server, lambda s: s.export(), page_size=20)
    assert "GET /api/v1/users page" in str(info.value)
    assert info.value.status == 500


def test_hydration_returns_current_state_and_deleted_users_as_deprovisioned(
    okta_emulator: StartEmulator,
) -> None:
    server = okta_emulator(users=60, groups=2)
    d = server.state.directory
    since = d.now()
    active = [u for u in d.user_ids if d.users[u]["status"] == "ACTIVE"]
    moved, gone, untouched = active[0], active[1], active[2]
    d.update_profile(moved, {"department": "Research", "title": "Director"})
    d.lifecycle(gone, "deactivate")
    d.delete_user(gone)

    frame, _source = run(
        server, lambda s: s.hydrate_users([moved, gone, untouched], changed_since=since)
    )
    rows = frame.set_index("id")
    assert list(frame["id"]) == [moved, gone, untouched]
    assert rows.loc[moved, "department"] == "Research"
    assert rows.loc[gone, "status"] == "DEPROVISIONED" and bool(rows.loc[gone, "deleted"])
    assert rows.loc[untouched, "status"] == "ACTIVE" and not bool(rows.loc[untouched, "deleted"])


def test_hydration_picks_a_search_for_many_changes(okta_emulator: StartEmulator) -> None:
    server = okta_emulator(users=400, groups=2)
    d = server.state.directory
    since = d.now()
    changed = [u for u in d.user_ids if d.users[u]["status"] == "ACTIVE"][:300]
    for uid in changed:
        d.update_profile(uid, {"title": "Architect"})

    frame, source = run(server, lambda s: s.hydrate_users(changed, changed_since=since))
    assert len(frame) == 300 and set(frame["title"]) == {"Architect"}
    # 300 changes in 2 search pages, not 300 GETs
    assert source.pacer.requests <= 3
    assert server.state.requests.get("GET /api/v1/users", 0) == source.pacer.requests

    frame, source = run(server, lambda s: s.hydrate_users(changed[:5]))  # no time: a GET each
    assert source.pacer.requests == 5


def test_system_log_window_follows_next_to_the_end(okta_emulator: StartEmulator) -> None:
    server = okta_emulator(users=30, groups=3)
    d = server.state.directory
    before = [d.create_user(d.random_profile()) for _ in range(3)]
    since = d.now()
    inside = [d.create_user(d.random_profile()) for _ in range(40)]
    until = d.now()
    after = d.create_user(d.random_profile())

    events, source = run(server, lambda s: s.system_log(since, until, limit=7))
    created = [e["target"][0]["id"] for e in events if e["eventType"] == "user.lifecycle.create"]
    assert created == inside  # exactly the window, in published order
    assert not set([*before, after]) & {e["target"][0]["id"] for e in events}
    assert source.pacer.requests >= len(events) // 7


def test_group_hydration_with_members_and_deleted_groups(okta_emulator: StartEmulator) -> None:
    server = okta_emulator(users=40, groups=4)
    d = server.state.directory
    kept, renamed, gone = d.group_ids[:3]
    d.update_group(renamed, {"name": "Renamed-Team"})
    d.delete_group(gone)
    newcomer = d.user_ids[-1]
    d.add_member(kept, newcomer)

    (groups, members), _ = run(server, lambda s: s.hydrate_groups([kept, renamed, gone]))
    rows = groups.set_index("id")
    assert rows.loc[renamed, "name"] == "Renamed-Team"
    assert bool(rows.loc[gone, "deleted"]) and not bool(rows.loc[kept, "deleted"])
    got = set(zip(members["group_id"], members["user_id"], strict=True))
    assert got == {(g, u) for g in (kept, renamed) for u in d.members[g]}
    assert (kept, newcomer) in got


def test_system_log_polling_query_always_has_a_next_link(okta_emulator: StartEmulator) -> None:
    import httpx

    server = okta_emulator(users=5, groups=1)
    d = server.state.directory
    since = d.now()
    for _ in range(3):
        d.update_profile(d.user_ids[0], {"title": "Engineer"})
    with httpx.Client(base_url=server.url, headers={"Authorization": "SSWS emulator-token"}) as c:
        page = c.get("/api/v1/logs", params={"since": since, "limit": 2})
        links = page.headers.get_list("link")
        assert [('rel="self"' in links[0]), ('rel="next"' in links[-1])] == [True, True]
        assert len(page.json()) == 2
        nxt = links[-1].split(";")[0].strip("<>")
        second = c.get(nxt)
        assert len(second.json()) == 1
        empty = c.get(second.headers.get_list("link")[-1].split(";")[0].strip("<>"))
        assert empty.json() == []  # caught up: an empty page, and still a next link to poll
        assert 'rel="next"' in empty.headers.get_list("link")[-1]
        d.update_profile(d.user_ids[0], {"title": "Director"})
        later = c.get(empty.headers.get_list("link")[-1].split(";")[0].strip("<>"))
        assert [e["eventType"] for e in later.json()] == ["user.account.update_profile"]
        # a bounded query ends: no next link after its last page
        bounded = c.get("/api/v1/logs", params={"since": since, "until": d.now(), "limit": 10})
        assert len(bounded.json()) == 4
        assert not any('rel="next"' in link for link in bounded.headers.get_list("link"))
