"""The local SCIM targets accept a user and give it back, and demand their token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Email, Error, Name, SearchRequest, User

if TYPE_CHECKING:
    from scimflow.services import ScimServer

pytestmark = pytest.mark.integration


def _client(server: ScimServer) -> SyncSCIMClient:
    http = httpx2.Client(
        base_url=server.address, headers={"Authorization": f"Bearer {server.token()}"}
    )
    client = SyncSCIMClient(http)
    client.discover()
    return client


def _by_user_name(user_name: str) -> SearchRequest[Any]:
    """The search for one login (the filter is a string that pydantic parses)."""
    return SearchRequest.model_validate({"filter": f'userName eq "{user_name}"'})


def test_create_and_read_back_a_user(scim_targets: list[ScimServer]) -> None:
    client = _client(scim_targets[0])
    user: User[Any] = User(
        user_name="grace.hopper@example.com",
        external_id="00u-test-grace",
        name=Name(given_name="Grace", family_name="Hopper"),
        emails=[Email(value="grace.hopper@example.com", type=Email.Type.work, primary=True)],
        active=True,
    )
    # the client answers with models it builds from the schemas the server announced,
    # not scim2_models.User itself: what it returns is a resource, or an Error, or a dict
    created = client.create(user)
    assert not isinstance(created, Error | dict)
    assert created.id

    back = client.query(User, created.id)
    assert not isinstance(back, Error | dict)
    assert back.name is not None
    assert back.user_name == "grace.hopper@example.com"
    assert back.external_id == "00u-test-grace"
    assert back.name.family_name == "Hopper"
    assert back.active is True

    found = client.query(User, query_parameters=_by_user_name("grace.hopper@example.com"))
    assert not isinstance(found, Error | dict)
    assert [r.id for r in found.resources or []] == [created.id]

    # targets are independent stores: the other one has never seen this user
    other = _client(scim_targets[1])
    none = other.query(User, query_parameters=_by_user_name("grace.hopper@example.com"))
    assert not isinstance(none, Error | dict)
    assert none.total_results == 0


def test_a_wrong_token_is_refused(scim_targets: list[ScimServer]) -> None:
    resp = httpx.get(f"{scim_targets[0].address}/Users", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401
