"""scimflow's provider entry: the okta:// and scim:// URI handlers and OpenLineage converters."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from scimflow.airflow import lineage
from scimflow.airflow.assets import OKTA_GROUPS, OKTA_USERS, target_assets


def _okta(uri: str) -> str:
    return urlunsplit(lineage.sanitize_okta_uri(urlsplit(uri)))


def _scim(uri: str) -> str:
    return urlunsplit(lineage.sanitize_scim_uri(urlsplit(uri)))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("okta://okta/users", "okta://okta/users"),
        ("okta://okta/groups", "okta://okta/groups"),
        ("okta://Example.Okta.com/Users/", "okta://example.okta.com/users"),
        ("OKTA://dev-123.oktapreview.com/groups", "okta://dev-123.oktapreview.com/groups"),
        ("okta://127.0.0.1:8123/users", "okta://127.0.0.1:8123/users"),
    ],
)
def test_okta_handler_accepts_and_normalises(uri: str, expected: str) -> None:
    assert _okta(uri) == expected
    assert _okta(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("okta:///users", "must name the Okta org host"),
        ("okta://okta", "unknown resource"),
        ("okta://okta/", "unknown resource"),
        ("okta://okta/apps", "unknown resource"),
        ("okta://okta/users/00u1", "unknown resource"),
        ("okta://bad_host/users", "invalid org host"),
        ("okta://-okta/users", "invalid org host"),
        ("okta://admin@okta/users", "user info"),
        ("okta://okta/users?limit=200", "query"),
        ("okta://okta/users#x", "fragment"),
    ],
)
def test_okta_handler_rejects(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        _okta(uri)
    assert "expected okta://<org-host>/users or okta://<org-host>/groups" in str(err.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("scim://app-a/Users", "scim://app-a/Users"),
        ("scim://app-b/Groups", "scim://app-b/Groups"),
        ("scim://App-A/users/", "scim://app-a/Users"),
        ("SCIM://target-1/GROUPS", "scim://target-1/Groups"),
    ],
)
def test_scim_handler_accepts_and_normalises(uri: str, expected: str) -> None:
    assert _scim(uri) == expected
    assert _scim(expected) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("scim:///Users", "must name the target"),
        ("scim://app-a", "unknown resource type"),
        ("scim://app-a/Schemas", "unknown resource type"),
        ("scim://app-a/Users/2819c223", "unknown resource type"),
        ("scim://app.example.com/Users", "invalid target name"),
        ("scim://app_a/Users", "invalid target name"),
        ("scim://app-a:443/Users", "invalid target name"),
        (f"scim://{'a' * 64}/Users", "invalid target name"),
        ("scim://u@app-a/Users", "user info"),
        ("scim://app-a/Users?filter=x", "query"),
    ],
)
def test_scim_handler_rejects(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        _scim(uri)
    assert "expected scim://<target>/Users or scim://<target>/Groups" in str(err.value)


def test_airflow_applies_the_handlers_when_an_asset_is_built() -> None:
    from airflow.sdk import Asset

    assert Asset(uri="okta://Example.okta.com/users/").uri == "okta://example.okta.com/users"
    assert Asset(uri="scim://app-a/users").uri == "scim://app-a/Users"
    with pytest.raises(ValueError, match="unknown resource type"):
        Asset(uri="scim://app-a/Widgets")


def test_the_project_assets_are_already_normal() -> None:
    for asset in [OKTA_USERS, OKTA_GROUPS, *target_assets("app-a")]:
        assert asset.normalized_uri == asset.uri


def test_factories_build_the_assets_of_assets_py() -> None:
    assert lineage.okta_asset(resource="users") == OKTA_USERS
    assert lineage.okta_asset(resource="groups") == OKTA_GROUPS
    assert [lineage.scim_asset(target="app-a", resource=r) for r in ("Users", "Groups")] == (
        target_assets("app-a")
    )
    assert lineage.okta_asset(host="example.okta.com", resource="users").uri == (
        "okta://example.okta.com/users"
    )


def test_converters_give_namespace_and_name() -> None:
    from airflow.sdk import Asset

    users = lineage.convert_okta_asset(Asset(uri="okta://example.okta.com/users"), None)
    assert (users.namespace, users.name) == ("okta://example.okta.com", "users")
    groups = lineage.convert_okta_asset(OKTA_GROUPS, None)
    assert (groups.namespace, groups.name) == ("okta://okta", "groups")
    for asset, name in zip(target_assets("app-a"), ["Users", "Groups"], strict=True):
        ds = lineage.convert_scim_asset(asset, None)
        assert (ds.namespace, ds.name) == ("scim://app-a", name)
    with pytest.raises(ValueError, match="not a scim:// asset"):
        lineage.convert_scim_asset(OKTA_USERS, None)


def test_openlineage_translates_the_assets() -> None:
    """The path the OpenLineage listener takes: through the registered converters."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    got = [translate_airflow_asset(a, None) for a in [OKTA_USERS, *target_assets("app-b")]]
    assert [(d.namespace, d.name) for d in got if d is not None] == [
        ("okta://okta", "users"),
        ("scim://app-b", "Users"),
        ("scim://app-b", "Groups"),
    ]


def test_provider_info_is_valid_and_names_the_distribution() -> None:
    import json
    from importlib.resources import files

    import jsonschema

    info = lineage.get_provider_info()
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["package-name"] == "scimflow"
    for key in ("asset-uris", "dataset-uris"):
        assert sorted(s for entry in info[key] for s in entry["schemes"]) == ["okta", "scim"]


def test_the_provider_is_registered_with_both_schemes() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    # both managers' constructors are unannotated in Airflow
    assert "scimflow" in ProvidersManager().providers  # type: ignore[no-untyped-call]
    # ProvidersManager.asset_* are deprecated in 3.3 (they warn): the task runtime's manager
    runtime = ProvidersManagerTaskRuntime()  # type: ignore[no-untyped-call]
    assert runtime.asset_uri_handlers["okta"] is lineage.sanitize_okta_uri
    assert runtime.asset_uri_handlers["scim"] is lineage.sanitize_scim_uri
    assert runtime.asset_factories["okta"] is lineage.okta_asset
    assert runtime.asset_factories["scim"] is lineage.scim_asset
    assert runtime.asset_to_openlineage_converters["okta"] is lineage.convert_okta_asset
    assert runtime.asset_to_openlineage_converters["scim"] is lineage.convert_scim_asset
