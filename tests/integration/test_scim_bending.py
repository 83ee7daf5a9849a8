"""The SCIM client against a real scim2-server that the fault proxy bends as some real
servers do: paging ignored, userName compared case-sensitively in filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from scimflow.errors import ScimConflictError, ScimIncompleteReadError
from scimflow.scim.client import USER_SCHEMA, ScimTarget

from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration


class Bent:
    """A fresh scim2-server tenant, reached directly and through a fault proxy."""

    def __init__(self, proxy: FaultProxy, target: ScimTarget, direct: httpx.Client) -> None:
        self.proxy = proxy
        self.target = target
        self.direct = direct

    def add_user(self, user_name: str, external_id: str) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": user_name, "externalId": external_id}
        r = self.direct.post("/Users", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def user_requests(self) -> int:
        return sum(
            1 for method, path, _ in self.proxy.log if (method, path[-6:]) == ("GET", "/Users")
        )


@pytest.fixture()
def bent(scim_tenant: tuple[str, str]) -> Iterator[Bent]:
    base_url, token = scim_tenant
    origin, path = base_url.rsplit("/", 2)[0], "/" + "/".join(base_url.rsplit("/", 2)[1:])
    auth = {"Authorization": f"Bearer {token}"}
    with (
        FaultProxy(upstream=origin) as proxy,
        httpx.Client(base_url=base_url, headers=auth, trust_env=False) as direct,
    ):
        target = ScimTarget("bent-app", proxy.url + path, headers=auth, sleep=lambda _s: None)
        target.discover()
        try:
            yield Bent(proxy, target, direct)
        finally:
            target.close()


def _ids(users: list[dict[str, Any]]) -> set[str]:
    return {str(u["id"]) for u in users}


def test_a_server_ignoring_paging_is_detected_and_read_by_filter(bent: Bent) -> None:
    ids = {bent.add_user(f"user{i}@example.com", f"00u{i}") for i in range(12)}
    assert _ids(list(bent.target.list_resources("Users", page_size=5))) == ids  # honest

    bent.proxy.ignore_paging()
    with pytest.raises(ScimIncompleteReadError) as raised:
        list(bent.target.list_resources("Users", page_size=5))
    error = raised.value
    assert (error.target, error.what, error.read, error.total) == ("bent-app", "GET /Users", 5, 12)
    assert str(error).startswith("bent-app: GET /Users: read 5 resources of the 12")
    # within one page, a server ignoring paging is read whole
    assert _ids(list(bent.target.list_resources("Users"))) == ids

    # the fallback: filtered reads, in chunks smaller than the users, logins in other cases
    keys = [(f"00u{i}", f"USER{i}@example.com") for i in range(12)]
    keys += [("00u99", "nobody@example.com")]
    found = bent.target.lookup_users(keys, chunk=5)
    assert _ids(found) == ids and len(found) == 12
    by_login = {u["userName"]: u["externalId"] for u in found}
    assert by_login == {f"user{i}@example.com": f"00u{i}" for i in range(12)}


def test_a_409_from_a_login_in_another_case_is_resolved(bent: Bent) -> None:
    existing = bent.add_user("Ann.Smith@Example.com", "00u1")
    other = bent.add_user("BOB.JONES@example.com", "00u2")
    bent.add_user("carol@example.com", "00u3")
    bent.proxy.case_sensitive_user_names()
    login = "ann.smith@EXAMPLE.com"
    # the bending is in force: through the proxy, the filter misses the login in this case
    query = {"filter": f'userName eq "{login}"'}
    through = httpx.get(
        bent.target.base_url + "/Users", params=query, headers=bent.direct.headers, trust_env=False
    )
    assert (through.json()["totalResults"], through.json()["Resources"]) == (0, [])
    assert bent.direct.get("/Users", params=query).json()["totalResults"] == 1

    with pytest.raises(ScimConflictError):
        bent.target.create("Users", {"schemas": [USER_SCHEMA], "userName": login})
    before = bent.user_requests()
    found = bent.target.find_user(None, login)
    assert found is not None and found["id"] == existing
    assert bent.user_requests() - before == 2  # the filter, then the users read once

    before = bent.user_requests()
    again = bent.target.find_user("00uX", "bob.jones@EXAMPLE.COM")
    assert again is not None and again["id"] == other
    assert bent.user_requests() - before == 2  # two filters; the index read no more
    assert bent.target.find_user(None, "dave@example.com") is None


def test_a_create_whose_answer_was_lost_is_retried_by_the_client_and_meets_409(
    bent: Bent,
) -> None:
    bent.proxy.fail_after_forward(1, methods=("POST",))
    login = "dora@example.com"
    with pytest.raises(ScimConflictError):
        bent.target.create("Users", {"schemas": [USER_SCHEMA], "userName": login})
    # the first POST landed though the client saw 502; the client's retry met 409
    assert [(m, s) for m, _, s in bent.proxy.log if m == "POST"] == [("POST", 502), ("POST", 409)]
    found = bent.target.find_user(None, login)
    assert found is not None and found["userName"] == login
    assert bent.direct.get("/Users").json()["totalResults"] == 1


# -- the engine against the bent server: converges, then plans nothing --------------------


def _reconcile(bent: Bent, store: Any, users: Any, scope: Any) -> Any:
    from scimflow.scim.config import TargetConfig
    from scimflow.scim.desired import Desired as DesiredState
    from scimflow.scim.reconcile import reconcile

    config = TargetConfig.model_validate(
        {
            "name": "bent-app",
            "base_url": "https://bent.example.test/v2",
            "auth": {"type": "bearer", "token": {"env": "BENT_TOKEN"}},
            "push_groups": False,
        }
    )
    return reconcile(
        config, DesiredState(users, None), store, bent.target, scope=scope, run_id="r", cause="t"
    )


def _writes(proxy: FaultProxy) -> int:
    return sum(1 for method, _, _ in proxy.log if method in ("POST", "PUT", "PATCH", "DELETE"))


def test_the_engine_converges_on_a_server_ignoring_paging_then_writes_nothing(
    bent: Bent, tmp_path: Any
) -> None:
    from scimflow.scim.reconcile import Full
    from scimflow.state.store import StateStore

    from tests.support.desired import desired_user

    users = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(12))}
    bent.proxy.ignore_paging(page_size=5)  # the first five, whichever page is asked for
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.migrate()
        first = _reconcile(bent, store, users, Full())
        assert first.results == {"create:applied": 12}
        # the second read meets the repeated page: read back by filter, never short
        writes = _writes(bent.proxy)
        second = _reconcile(bent, store, users, Full())
        assert second.planned == {} and second.writes == 0
        assert _writes(bent.proxy) == writes  # no write sent
        # by hand, behind scimflow's back: a user's links lost; still no duplicate
        store.drop_links("bent-app", "User", ["00u3"])
        third = _reconcile(bent, store, users, Full())
        assert third.results == {"link:linked": 1}
    total = bent.direct.get("/Users", params={"count": 100}).json()["totalResults"]
    assert total == 12


def test_the_engine_links_logins_a_server_compares_case_sensitively_then_writes_nothing(
    bent: Bent, tmp_path: Any
) -> None:
    from scimflow.scim.reconcile import Batch, Full
    from scimflow.state.store import StateStore

    from tests.support.desired import desired_user

    users = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(6))}
    for i in (1, 4):  # made by hand, the login in another case, no externalId of ours
        bent.add_user(f"USER{i}@EXAMPLE.COM", f"hand-{i}")
    bent.proxy.case_sensitive_user_names()
    batch = Batch(frozenset(users), frozenset())
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.migrate()
        # a batch does not read the target: two creates meet 409 and link the existing
        first = _reconcile(bent, store, users, batch)
        assert first.results == {"create:applied": 4, "create:linked": 2}, first.failed
        assert store.parked("bent-app") == []
        writes = _writes(bent.proxy)
        assert not _reconcile(bent, store, users, batch).planned
        assert not _reconcile(bent, store, users, Full()).planned
        assert _writes(bent.proxy) == writes
    listed = bent.direct.get("/Users", params={"count": 100}).json()["Resources"]
    assert len(listed) == 6
    assert {u["userName"].lower() for u in listed} == {f"user{i}@example.com" for i in range(6)}
