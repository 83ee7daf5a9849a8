"""The local SCIM targets accept a user and give it back, and demand their token."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Email, Name, SearchRequest, User

pytestmark = pytest.mark.integration


def _client(server) -> SyncSCIMClient:  # type: ignore[no-untyped-def]
    http = httpx2.Client(
        base_url=server.address, headers={"Authorization": f"Bearer {server.token()}"}
    )
    client = SyncSCIMClient(http)
    client.discover()
    return client


def test_create_and_read_back_a_user(scim_targets) -> None:
    client = _client(scim_targets[0])
    user = User(
        user_name="grace.hopper@example.com",
        external_id="00u-test-grace",
        name=Name(given_name="Grace", family_name="Hopper"),
        emails=[Email(value="grace.hopper@example.com", type="work", primary=True)],
        active=True,
    )
    created = client.create(user)
    assert created.id

    back = client.query(User, created.id)
    assert back.user_name == "grace.hopper@example.com"
    assert back.external_id == "00u-test-grace"
    assert back.name.family_name == "Hopper"
    assert back.active is True

    found = client.query(
        User, query_parameters=SearchRequest(filter='userName eq "grace.hopper@example.com"')
    )
    assert [r.id for r in found.resources] == [created.id]

    # targets are independent stores: the other one has never seen this user
    other = _client(scim_targets[1])
    none = other.query(
        User, query_parameters=SearchRequest(filter='userName eq "grace.hopper@example.com"')
    )
    assert none.total_results == 0


def test_a_wrong_token_is_refused(scim_targets) -> None:
    resp = httpx.get(f"{scim_targets[0].address}/Users", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401
