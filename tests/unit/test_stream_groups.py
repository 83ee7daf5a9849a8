"""The engine's clean-up (scope Batch) of the groups of users deleted from Okta, against fakes."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from scimflow.errors import ScimRejectedError, ScimTransientError
from scimflow.scim.reconcile import _gone_memberships

from tests.support.model_target import MemoryStore


class Target:
    def __init__(self, groups: dict[str, list[str]] | Exception, *, filter: bool = True) -> None:
        self.capabilities = SimpleNamespace(filter=filter)
        self.groups = groups
        self.asked: list[str] = []

    def groups_with_member(self, scim_id: str) -> list[str]:
        self.asked.append(scim_id)
        if isinstance(self.groups, Exception):
            raise self.groups
        return self.groups.get(scim_id, [])


@pytest.fixture()
def store() -> MemoryStore:
    s = MemoryStore()
    s.save_links("app", "User", [("00u1", "s1", "h"), ("00u2", "s2", "h"), ("00u3", "s3", "h")])
    s.save_links("app", "Group", [("00g1", "g1", "h"), ("00g2", "g2", "h")])
    return s


# the batch's users deleted from Okta: 00u1 is linked, 00u9 never was
USERS = frozenset({"00u1", "00u9"})
TCONF = SimpleNamespace(name="app", push_groups=True)


def test_a_deleted_linked_user_leaves_the_managed_groups_that_list_it(store) -> None:  # type: ignore[no-untyped-def]
    target = Target({"s1": ["g1", "unmanaged", "g2"], "s2": ["g1"]})
    plan = _gone_memberships(TCONF, target, store, USERS)
    # only the deleted and linked user is looked up; groups scimflow does not manage stay
    assert target.asked == ["s1"]
    assert [(op.action, op.okta_id, op.scim_id, op.members) for op in plan.operations] == [
        ("members_remove", "00g1", "g1", ("s1",)),
        ("members_remove", "00g2", "g2", ("s1",)),
    ]


def test_nothing_is_asked_of_a_target_that_cannot_filter_or_pushes_no_groups(store) -> None:  # type: ignore[no-untyped-def]
    target = Target({"s1": ["g1"]}, filter=False)
    assert _gone_memberships(TCONF, target, store, USERS) is None
    target = Target({"s1": ["g1"]})
    no_groups = SimpleNamespace(name="app", push_groups=False)
    assert _gone_memberships(no_groups, target, store, USERS) is None
    assert target.asked == []


def test_a_target_refusing_the_filter_leaves_it_to_the_resync(store, caplog) -> None:  # type: ignore[no-untyped-def]
    refused = ScimRejectedError("app", "GET /Groups?filter", "HTTP 400: invalidFilter")
    with caplog.at_level(logging.WARNING):
        assert _gone_memberships(TCONF, Target(refused), store, USERS) is None
    assert "cannot find the groups of deleted members" in caplog.text


def test_a_transient_failure_is_raised_so_the_task_retries(store) -> None:  # type: ignore[no-untyped-def]
    down = ScimTransientError("app", "GET /Groups?filter=members.value", "HTTP 503")
    with pytest.raises(ScimTransientError):
        _gone_memberships(TCONF, Target(down), store, USERS)
