"""The engine's clean-up (scope Batch) of the groups of users deleted from Okta, against fakes."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from scimflow.errors import ScimRejectedError, ScimTransientError
from scimflow.scim.config import TargetConfig
from scimflow.scim.reconcile import _gone_memberships

from tests.support.model_target import MemoryStore, ModelTarget


class Target(ModelTarget):
    """A target whose ``groups_with_member`` answers as told (or raises), and records
    whom it was asked about."""

    def __init__(self, member_of: dict[str, list[str]] | Exception, *, filter: bool = True) -> None:
        super().__init__("app")
        self.capabilities = dataclasses.replace(self.capabilities, filter=filter)
        self.member_of = member_of
        self.asked: list[str] = []

    def groups_with_member(self, scim_id: str) -> list[str]:
        self.asked.append(scim_id)
        if isinstance(self.member_of, Exception):
            raise self.member_of
        return self.member_of.get(scim_id, [])


def target_config(*, push_groups: bool) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": "app",
            "base_url": "https://app.example.com/scim/v2",
            "auth": {"type": "bearer", "token": {"env": "APP_TOKEN"}},
            "push_groups": push_groups,
        }
    )


@pytest.fixture()
def store() -> MemoryStore:
    s = MemoryStore()
    s.save_links("app", "User", [("00u1", "s1", "h"), ("00u2", "s2", "h"), ("00u3", "s3", "h")])
    s.save_links("app", "Group", [("00g1", "g1", "h"), ("00g2", "g2", "h")])
    return s


# the batch's users deleted from Okta: 00u1 is linked, 00u9 never was
USERS = frozenset({"00u1", "00u9"})
TARGET_CONFIG = target_config(push_groups=True)


def test_a_deleted_linked_user_leaves_the_managed_groups_that_list_it(store: MemoryStore) -> None:
    target = Target({"s1": ["g1", "unmanaged", "g2"], "s2": ["g1"]})
    plan = _gone_memberships(TARGET_CONFIG, target, store, USERS)
    assert plan is not None
    # only the deleted and linked user is looked up; groups scimflow does not manage stay
    assert target.asked == ["s1"]
    assert [(op.action, op.okta_id, op.scim_id, op.members) for op in plan.operations] == [
        ("members_remove", "00g1", "g1", ("s1",)),
        ("members_remove", "00g2", "g2", ("s1",)),
    ]


def test_nothing_is_asked_of_a_target_that_cannot_filter_or_pushes_no_groups(
    store: MemoryStore,
) -> None:
    target = Target({"s1": ["g1"]}, filter=False)
    assert _gone_memberships(TARGET_CONFIG, target, store, USERS) is None
    target = Target({"s1": ["g1"]})
    no_groups = target_config(push_groups=False)
    assert _gone_memberships(no_groups, target, store, USERS) is None
    assert target.asked == []


def test_a_target_refusing_the_filter_leaves_it_to_the_resync(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    refused = ScimRejectedError("app", "GET /Groups?filter", "HTTP 400: invalidFilter")
    with caplog.at_level(logging.WARNING):
        assert _gone_memberships(TARGET_CONFIG, Target(refused), store, USERS) is None
    assert "cannot find the groups of deleted members" in caplog.text


def test_a_transient_failure_is_raised_so_the_task_retries(store: MemoryStore) -> None:
    down = ScimTransientError("app", "GET /Groups?filter=members.value", "HTTP 503")
    with pytest.raises(ScimTransientError):
        _gone_memberships(TARGET_CONFIG, Target(down), store, USERS)
