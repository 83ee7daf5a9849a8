"""Okta → SCIM mapping: payloads, active flags, rejections, overrides, scope, groups."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scim2_models import Context, EnterpriseUser, User
from scimflow.okta.source import groups_frame, users_frame
from scimflow.scim.config import TargetConfig
from scimflow.scim.mapping import (
    ENTERPRISE,
    OVERRIDE_PATHS,
    DesiredGroup,
    canonical_path,
    in_scope_users,
    map_groups,
    map_users,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
STATUSES = [
    "STAGED",
    "PROVISIONED",
    "ACTIVE",
    "RECOVERY",
    "PASSWORD_EXPIRED",
    "LOCKED_OUT",
    "SUSPENDED",
    "DEPROVISIONED",
]
PROFILE = [
    "login",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "mobile_phone",
    "title",
    "department",
    "employee_number",
    "cost_center",
    "organization",
    "division",
    "manager_id",
]


def row(okta_id: str | None = "00u1", **fields: Any) -> dict[str, Any]:
    """A complete Okta user, with ``fields`` changed (``None``: a record without an id)."""
    base = {
        "id": okta_id,
        "status": "ACTIVE",
        "created": "2024-01-02T03:04:05.000Z",
        "last_updated": "2024-02-03T04:05:06.000Z",
        "login": "barbara.jensen@example.com",
        "email": "bjensen@example.com",
        "first_name": "Barbara",
        "last_name": "Jensen",
        "display_name": "Babs Jensen",
        "mobile_phone": "+1 555 0100",
        "title": "Tour Guide",
        "department": "Tours",
        "employee_number": "701984",
        "cost_center": "4130",
        "organization": "Universal Studios",
        "division": "Theme Park",
        "manager_id": "00u9",
        "deleted": False,
    }
    base.update(fields)
    return base


def target(**fields: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": "app-a",
            "base_url": "https://app-a.example.com/scim/v2",
            "auth": {"type": "bearer", "token": {"env": "APP_A_TOKEN"}},
            **fields,
        }
    )


def overrides(**paths: str) -> TargetConfig:
    return target(mapping={"user": paths})


def canonical_sha256(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_full_user_is_mapped_to_the_usual_payload() -> None:
    result = map_users(users_frame([row()]), target())
    assert result.rejected == {}
    desired = result.users["00u1"]
    expected = {
        "schemas": [CORE, ENTERPRISE],
        "externalId": "00u1",
        "userName": "barbara.jensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": True,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tours",
        },
    }
    assert desired.payload == expected
    assert desired.okta_id == "00u1"
    assert desired.active is True
    assert desired.manager_okta_id == "00u9"  # resolved to a SCIM id later, by the planner
    assert "manager" not in desired.payload[ENTERPRISE]
    assert desired.fingerprint == canonical_sha256(expected)
    # a real scim2-models resource, whose request dump is the payload
    enterprise_user: type = User[EnterpriseUser]  # pydantic makes it a class of its own
    assert isinstance(desired.user, enterprise_user)
    assert desired.user.user_name == "barbara.jensen@example.com"
    assert desired.user[EnterpriseUser].department == "Tours"
    assert desired.user.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST) == expected


def test_blank_values_are_left_out_and_display_name_falls_back_to_the_names() -> None:
    blank = dict.fromkeys(PROFILE[1:], None)
    users = users_frame(
        [
            row("00u1", **{**blank, "first_name": "Ann", "last_name": "Lee", "title": "  "}),
            row("00u2", **{**blank, "first_name": "Ann"}),
            row("00u3", **{**blank, "email": ""}),
        ]
    )
    mapped = map_users(users, target()).users
    assert mapped["00u1"].payload == {
        "schemas": [CORE],
        "externalId": "00u1",
        "userName": "barbara.jensen@example.com",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "displayName": "Ann Lee",
        "active": True,
    }
    assert mapped["00u2"].payload["displayName"] == "Ann"
    assert mapped["00u3"].payload == {
        "schemas": [CORE],
        "externalId": "00u3",
        "userName": "barbara.jensen@example.com",
        "active": True,
    }
    assert mapped["00u3"].manager_okta_id is None


@pytest.mark.parametrize(
    ("status", "deleted", "active"),
    [
        ("ACTIVE", False, True),
        ("PROVISIONED", False, True),
        ("RECOVERY", False, True),
        ("PASSWORD_EXPIRED", False, True),
        ("LOCKED_OUT", False, True),
        ("STAGED", False, False),
        ("SUSPENDED", False, False),
        ("DEPROVISIONED", False, False),
        ("ACTIVE", True, False),  # a user deleted from Okta
        (None, False, False),
    ],
)
def test_okta_status_decides_active(status: str | None, deleted: bool, active: bool) -> None:
    desired = map_users(users_frame([row(status=status, deleted=deleted)]), target()).users["00u1"]
    assert desired.active is active
    assert desired.payload["active"] is active


def test_a_bad_record_is_rejected_with_its_id_and_field_and_the_others_go_on() -> None:
    users = users_frame(
        [
            row("00u1"),
            row("00u2", email="someone@example.test"),  # a special-use domain: refused
            row("00u3", login=""),
            row("00u4"),
            row(None),
            row("00u5", email="no-at-sign"),
        ]
    )
    # text UTF-8 cannot carry only fits in an untyped column (Arrow strings refuse it)
    users["title"] = users["title"].astype(object)
    users.loc[3, "title"] = "bad \ud800 surrogate"
    result = map_users(users, target())
    assert set(result.users) == {"00u1"}
    assert set(result.rejected) == {"00u2", "00u3", "00u4", "00u5", "row 4"}
    assert result.rejected["00u2"].startswith(
        '00u2: emails[type eq "work"].value (Okta email): value is not a valid email address'
    )
    assert result.rejected["00u3"] == "00u3: userName (Okta login): empty"
    assert result.rejected["00u4"] == "00u4: title (Okta title): not valid Unicode text"
    assert result.rejected["row 4"] == "row 4: id: no valid Okta id"
    assert "no-at-sign" not in result.rejected["00u5"]  # reasons name fields, not values


def test_overrides_replace_values_at_their_scim_path() -> None:
    config = overrides(
        userName="lower(email)",
        title="upper(title)",
        displayName="concat(last_name, ', ', first_name)",
        **{
            "name.givenName": "split_part(display_name, ' ', 1)",
            'emails[type eq "work"].value': "concat(split_part(login, '@', 1), '@example.org')",
            f"{ENTERPRISE}:department": "default(department, 'Unassigned')",
            f"{ENTERPRISE}:division": "split_part(organization, ' ', -1)",
            "nickName": "when(status == 'ACTIVE', first_name, None)",
            "active": "status == 'ACTIVE' or status == 'STAGED'",
            "phoneNumbers[type eq 'mobile'].value": "None",
        },
    )
    users = users_frame(
        [row("00u1", email="BJensen@Example.COM"), row("00u2", department=None, status="STAGED")]
    )
    result = map_users(users, config)
    assert result.rejected == {}
    first, second = result.users["00u1"].payload, result.users["00u2"].payload
    assert first["userName"] == "bjensen@example.com"
    assert first["title"] == "TOUR GUIDE"
    assert first["displayName"] == "Jensen, Barbara"
    assert first["name"] == {"givenName": "Babs", "familyName": "Jensen"}
    assert first["emails"] == [
        {"value": "barbara.jensen@example.org", "type": "work", "primary": True}
    ]
    assert "phoneNumbers" not in first  # an override answering None leaves it out
    assert first[ENTERPRISE]["department"] == "Tours"
    assert first[ENTERPRISE]["division"] == "Studios"
    assert first["nickName"] == "Barbara"
    assert second[ENTERPRISE]["department"] == "Unassigned"
    assert "nickName" not in second
    assert second["active"] is True and result.users["00u2"].active is True  # STAGED, overridden
    assert first["externalId"] == "00u1"  # never overridden


def test_an_override_that_fails_on_a_record_rejects_that_record_only() -> None:
    config = overrides(
        **{'emails[type eq "work"].value': "concat(first_name, '@example.test')"},
        title="split_part(title, department, 1)",
    )
    users = users_frame([row("00u1"), row("00u2", department="")])
    result = map_users(users, config)
    assert set(result.users) == set()
    assert result.rejected["00u1"].startswith(
        '00u1: emails[type eq "work"].value (mapping override): value is not a valid email'
    )
    assert result.rejected["00u2"] == (
        "00u2: title (mapping override): expression 'split_part(title, department, 1)': "
        "split_part: the separator must not be empty"
    )


def test_an_active_override_must_answer_true_or_false() -> None:
    result = map_users(users_frame([row()]), overrides(active="status"))
    assert result.rejected == {
        "00u1": "00u1: active (mapping override): the expression must answer true or false"
    }


def test_override_paths_are_documented_and_canonical() -> None:
    assert canonical_path("USERNAME") == "userName"
    assert canonical_path('emails[type  eq "work"].VALUE') == 'emails[type eq "work"].value'
    assert canonical_path("externalId") is None
    assert canonical_path(f"{ENTERPRISE}:manager") is None
    assert f"{ENTERPRISE}:costCenter" in OVERRIDE_PATHS
    import scimflow.scim.mapping as mapping

    for path in OVERRIDE_PATHS:
        short = path.rsplit(":", 1)[-1] if path.startswith(ENTERPRISE) else path
        assert short in (mapping.__doc__ or ""), f"{path} is not documented"


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Senior Tour Guide"},
        {"email": "babs@example.com"},
        {"status": "SUSPENDED"},
        {"department": "Sales"},
        {"mobile_phone": None},
        {"login": "babs@example.com"},
        {"display_name": None},
    ],
)
def test_the_fingerprint_is_stable_and_follows_every_field(change: dict[str, Any]) -> None:
    before = map_users(users_frame([row()]), target()).users["00u1"]
    again = map_users(users_frame([row()]), target()).users["00u1"]
    after = map_users(users_frame([row(**change)]), target()).users["00u1"]
    assert before.fingerprint == again.fingerprint
    assert before.payload == again.payload
    assert after.fingerprint != before.fingerprint
    assert after.fingerprint == canonical_sha256(after.payload)


def test_the_manager_is_not_in_the_fingerprint() -> None:
    before = map_users(users_frame([row()]), target()).users["00u1"]
    after = map_users(users_frame([row(manager_id="00u8")]), target()).users["00u1"]
    assert after.manager_okta_id == "00u8"
    assert after.fingerprint == before.fingerprint  # the planner hashes the manager in


# -- scope and groups ---------------------------------------------------------------------
def org() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    users = users_frame(
        [
            row("u1", status="ACTIVE"),
            row("u2", status="SUSPENDED"),
            row("u3", status="ACTIVE"),
            row("u4", status="DEPROVISIONED"),
            row("u5", status="ACTIVE", deleted=True),
            row("u6", status="STAGED"),
        ]
    )
    groups = groups_frame(
        [
            {"id": "g1", "name": "Engineering", "deleted": False},
            {"id": "g2", "name": "Sales", "deleted": False},
            {"id": "g3", "name": "Old", "deleted": True},
            {"id": "g4", "name": "Everyone", "deleted": False},
            {"id": "g5", "name": None, "deleted": False},
        ]
    )
    memberships = pd.DataFrame(
        {
            "group_id": ["g1", "g1", "g1", "g2", "g2", "g3", "g4", "g4", "g5"],
            "user_id": ["u1", "u2", "u5", "u3", "u4", "u6", "u1", "u6", "u1"],
        },
        dtype="string",
    )
    return users, groups, memberships


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({}, {"u1", "u2", "u3", "u4", "u6"}),  # everyone not deleted
        ({"statuses": ["ACTIVE"]}, {"u1", "u3"}),
        ({"statuses": ["SUSPENDED", "STAGED"]}, {"u2", "u6"}),
        ({"groups": ["Engineering"]}, {"u1", "u2"}),  # u5 is a member, but deleted
        ({"groups": ["Engineering", "Sales"]}, {"u1", "u2", "u3", "u4"}),
        ({"groups": ["Engineering", "Sales"], "statuses": ["ACTIVE"]}, {"u1", "u3"}),
        ({"groups": ["Old"]}, set()),  # a deleted group counts for nothing
        ({"groups": ["Nobody"]}, set()),
    ],
)
def test_scope_by_groups_and_statuses(scope: dict[str, Any], expected: set[str]) -> None:
    users, groups, memberships = org()
    config = target(scope=scope)
    assert in_scope_users(users, memberships, groups, config.scope) == expected


def test_groups_of_the_scope_with_in_scope_members_only() -> None:
    users, groups, memberships = org()
    config = target(scope={"groups": ["Engineering", "Sales"], "statuses": ["ACTIVE"]})
    in_scope = in_scope_users(users, memberships, groups, config.scope)
    desired = map_groups(groups, memberships, in_scope, config)
    assert set(desired) == {"g1", "g2"}
    assert desired["g1"].display_name == "Engineering"
    assert desired["g1"].member_okta_ids == frozenset({"u1"})  # not u2 (suspended), u5
    assert desired["g2"].member_okta_ids == frozenset({"u3"})  # not u4 (deprovisioned)
    assert isinstance(desired["g1"], DesiredGroup)


def test_without_scope_groups_every_live_named_group_is_pushed() -> None:
    users, groups, memberships = org()
    config = target()
    in_scope = in_scope_users(users, memberships, groups, config.scope)
    desired = map_groups(groups, memberships, in_scope, config)
    assert set(desired) == {"g1", "g2", "g4"}  # not g3 (deleted), nor g5 (no name)
    assert desired["g1"].member_okta_ids == frozenset({"u1", "u2"})
    assert desired["g4"].member_okta_ids == frozenset({"u1", "u6"})


def test_no_groups_when_the_target_does_not_push_them() -> None:
    _users, groups, memberships = org()
    assert map_groups(groups, memberships, {"u1", "u2"}, target(push_groups=False)) == {}


def test_a_group_fingerprint_follows_its_name_and_members() -> None:
    _users, groups, memberships = org()
    config = target()
    one = map_groups(groups, memberships, {"u1", "u2"}, config)["g1"]
    same = map_groups(groups, memberships, {"u2", "u1", "u3"}, config)["g1"]
    fewer = map_groups(groups, memberships, {"u1"}, config)["g1"]
    renamed = groups.assign(name=groups["name"].replace("Engineering", "R&D"))
    other = map_groups(renamed, memberships, {"u1", "u2"}, config)["g1"]
    assert one.fingerprint == same.fingerprint
    assert len({one.fingerprint, fewer.fingerprint, other.fingerprint}) == 3
    assert other.display_name == "R&D"


# -- never raises for one record ----------------------------------------------------------
def profiles(characters: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(st.none(), st.text(characters, max_size=30))
    plausible = st.one_of(text, st.emails(), st.just("someone@example.com"))
    return st.fixed_dictionaries(
        {
            **{name: text for name in PROFILE},
            "login": plausible,
            "email": plausible,
            "status": st.one_of(st.sampled_from(STATUSES), text),
            "deleted": st.booleans(),
        }
    )


configs = st.sampled_from(
    [
        target(),
        overrides(
            userName="lower(default(login, email))",
            displayName="concat(trim(first_name), ' ', upper(last_name))",
            title="when(status == 'ACTIVE', split_part(title, '-', -1), default(title, 'x'))",
            **{
                'emails[type eq "work"].value': "lower(email)",
                f"{ENTERPRISE}:department": "split_part(department, '/', 2)",
                "active": "not (status == 'SUSPENDED')",
            },
        ),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(profiles(st.characters(exclude_categories=["Cs"])), max_size=6),
    config=configs,
)
def test_map_users_never_raises_each_user_is_mapped_or_rejected(
    people: list[dict[str, Any]], config: TargetConfig
) -> None:
    rows = [row(f"00u{i}", **person) for i, person in enumerate(people)]
    check_mapped_or_rejected(rows, users_frame(rows), config)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.lists(profiles(st.characters()), max_size=6), config=configs)
def test_map_users_never_raises_on_an_untyped_frame_with_any_text(
    people: list[dict[str, Any]], config: TargetConfig
) -> None:
    rows = [row(f"00u{i}", **person) for i, person in enumerate(people)]
    check_mapped_or_rejected(rows, pd.DataFrame(rows, dtype=object), config)


def check_mapped_or_rejected(
    rows: list[dict[str, Any]], users: pd.DataFrame, config: TargetConfig
) -> None:
    result = map_users(users, config)
    ids = {r["id"] for r in rows}
    assert set(result.users) | set(result.rejected) == ids
    assert not set(result.users) & set(result.rejected)
    for okta_id, reason in result.rejected.items():
        assert reason.startswith(f"{okta_id}: ")
    for okta_id, desired in result.users.items():
        assert desired.payload["externalId"] == okta_id
        assert desired.payload["userName"].strip()
        assert desired.fingerprint == canonical_sha256(desired.payload)
        assert desired.payload == desired.user.model_dump(
            scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        json.dumps(desired.payload, ensure_ascii=False).encode("utf-8")  # can be sent
        assert desired.manager_okta_id is None or desired.manager_okta_id.encode("utf-8")


def test_a_desired_user_keeps_the_payload_not_the_scim2_models_object() -> None:
    """100,000 scim2-models objects cost about 0.9 GB per target: only the JSON is kept."""
    from dataclasses import fields

    from pydantic import BaseModel

    desired = map_users(users_frame([row()]), target()).users["00u1"]
    assert not any(isinstance(getattr(desired, f.name), BaseModel) for f in fields(desired))
    assert not hasattr(desired, "__dict__")  # slots: no per-instance dict either
    assert desired.user.model_dump() == desired.payload  # rebuilt on demand, the same
