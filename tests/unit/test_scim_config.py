"""The configuration file: the example loads, each mistake is named by its key path, and
secrets stay references that never show up in a repr or an error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pydantic
import pytest
import yaml
from scimflow.errors import ConfigError, ScimflowError
from scimflow.scim.config import (
    BasicAuth,
    BearerAuth,
    OAuth2Auth,
    ScimflowConfig,
    SecretRef,
    StateConfig,
    TargetConfig,
    load_config,
)
from scimflow.scim.mapping import ENTERPRISE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "scimflow.example.yaml"


def minimal() -> dict[str, Any]:
    return {
        "okta": {"org_url": "https://example.okta.com", "token": {"env": "OKTA_API_TOKEN"}},
        "state": {"url": "sqlite:///state.db"},
        "targets": [
            {
                "name": "app-a",
                "base_url": "https://app-a.example.com/scim/v2",
                "auth": {"type": "bearer", "token": {"env": "APP_A_TOKEN"}},
            },
            {
                "name": "app-b",
                "base_url": "https://app-b.example.com/scim/v2",
                "auth": {"type": "basic", "username": "svc", "password": {"env": "APP_B_PW"}},
            },
        ],
    }


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def failure(tmp_path: Path, change: Callable[[dict[str, Any]], Any]) -> ConfigError:
    data = minimal()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    return caught.value


def test_the_example_file_loads_with_every_documented_key() -> None:
    config = load_config(EXAMPLE)
    assert config.okta.org_url == "https://example.okta.com"
    assert config.okta.token == SecretRef(env="OKTA_API_TOKEN")
    assert config.state.url == "sqlite:///scimflow-state.db"
    assert [t.name for t in config.targets] == ["app-a", "app-b"]
    a, b = config.targets
    assert isinstance(a.auth, BearerAuth)
    assert a.auth.token == SecretRef(env="APP_A_TOKEN")
    assert (a.deprovision, a.concurrency, a.requests_per_second) == ("deactivate", 4, 50)
    assert (a.deletion_guard.max_share, a.deletion_guard.min_users) == (0.1, 10)
    assert (a.push_groups, a.unmanaged_users, a.mapping.user) == (True, "ignore", {})
    assert isinstance(b.auth, OAuth2Auth)
    assert (b.auth.client_id, b.auth.scope) == ("scimflow", "scim")
    assert b.auth.token_url == "https://login.app-b.example.com/oauth2/token"
    assert b.scope.groups == ("Engineering", "Sales")
    assert b.scope.statuses == ("ACTIVE", "PROVISIONED", "SUSPENDED")
    assert (b.deprovision, b.push_groups) == ("delete", False)
    assert b.mapping.user["userName"] == "lower(email)"
    assert b.mapping.user[f"{ENTERPRISE}:department"] == "default(department, 'Unassigned')"
    assert config.target("app-b") is b


def test_defaults_of_a_minimal_target(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()))
    target = config.targets[1]
    assert isinstance(target.auth, BasicAuth)
    assert target.auth.username == "svc"
    assert target.scope.groups == () and target.scope.statuses == ()
    assert (target.deprovision, target.concurrency, target.requests_per_second) == (
        "deactivate",
        4,
        50.0,
    )
    assert (target.deletion_guard.max_share, target.deletion_guard.min_users) == (0.1, 10)
    assert target.push_groups is True
    assert target.unmanaged_users == "ignore"
    with pytest.raises(KeyError):
        config.target("nope")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the minimal config: set (or, with ..., delete) the key at ``path``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set("targets/1/auth/password", ...), "targets[1].auth.password: field required"),
        (_set("targets/0/auth/token", ...), "targets[0].auth.token: field required"),
        (_set("okta/token", ...), "okta.token: field required"),
        (_set("targets/0/colour", "red"), "targets[0].colour: unknown key"),
        (_set("okta/colour", "red"), "okta.colour: unknown key"),
        (_set("extra", 1), "extra: unknown key"),
        (_set("targets/0/auth/token/vault", "x"), "targets[0].auth.token.vault: unknown key"),
        (
            _set("targets/1/name", "app-a"),
            "targets[1].name: app-a is already the name of targets[0]",
        ),
        (
            _set("targets/0/deprovision", "nuke"),
            "targets[0].deprovision: input should be 'deactivate' or 'delete'",
        ),
        (
            _set("targets/0/deletion_guard", {"max_share": 1.5}),
            "targets[0].deletion_guard.max_share: input should be less than or equal to 1",
        ),
        (
            _set("targets/0/deletion_guard", {"max_share": -0.1}),
            "targets[0].deletion_guard.max_share: input should be greater than or equal to 0",
        ),
        (
            _set("targets/1/concurrency", 0),
            "targets[1].concurrency: input should be greater than or equal to 1",
        ),
        (
            _set("targets/1/concurrency", 65),
            "targets[1].concurrency: input should be less than or equal to 64",
        ),
        (
            _set("targets/0/requests_per_second", 0),
            "targets[0].requests_per_second: input should be greater than 0",
        ),
        (
            _set("targets/0/name", "App A"),
            "targets[0].name: string should match pattern '^[a-z0-9-]+$'",
        ),
        (
            _set("targets/0/scope", {"statuses": ["active"]}),
            "targets[0].scope.statuses[0]: input should be 'STAGED', 'PROVISIONED', 'ACTIVE', "
            "'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT', 'SUSPENDED' or 'DEPROVISIONED'",
        ),
        (
            _set("targets/0/auth/type", "kerberos"),
            "targets[0].auth.type: input tag 'kerberos' found using 'type' does not match any "
            "of the expected tags: 'bearer', 'basic', 'oauth2'",
        ),
        (
            _set("targets/0/auth/type", ...),
            "targets[0].auth.type: field required (bearer, basic or oauth2)",
        ),
        (
            _set("targets/0/auth/token", {"env": "A", "airflow_conn": "b"}),
            "targets[0].auth.token: give exactly one of env or airflow_conn",
        ),
        (
            _set("targets/0/auth/token", {}),
            "targets[0].auth.token: give exactly one of env or airflow_conn",
        ),
        (
            _set("targets/0/auth/token", {"env": "NOT A NAME"}),
            "targets[0].auth.token.env: string should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        (
            _set("okta/org_url", "ftp://example.okta.com"),
            "okta.org_url: must be an http:// or https:// URL",
        ),
        (
            _set("targets/0/base_url", "https://user:pw@app.example.com/scim"),
            "targets[0].base_url: must not carry credentials: use the auth settings",
        ),
        (
            _set("state/url", "not a url"),
            "state.url: must be a URL such as sqlite:///scimflow-state.db",
        ),
        (_set("state/url", {"bogus": "X"}), "state.url.bogus: unknown key"),
        (_set("targets", []), "targets: needs at least 1 item(s)"),
        (
            _set("targets/0/mapping", {"user": {"title": "__import__('os')"}}),
            "targets[0].mapping.user.title: expression \"__import__('os')\": "
            "dunder names are not allowed: __import__",
        ),
        (
            _set("targets/0/mapping", {"user": {f"{ENTERPRISE}:department": "lower(dept)"}}),
            f'targets[0].mapping.user["{ENTERPRISE}:department"]: '
            "expression 'lower(dept)': unknown name 'dept'",
        ),
    ],
)
def test_each_mistake_is_named_by_its_key_path(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    error = failure(tmp_path, change)
    if "unknown name" in reason:
        assert error.reason.startswith(reason)  # the known names follow
    else:
        assert error.reason == reason


def test_an_unsupported_override_path_is_named_with_the_supported_ones(tmp_path: Path) -> None:
    error = failure(tmp_path, _set("targets/0/mapping", {"user": {"externalId": "login"}}))
    assert error.reason.startswith(
        "targets[0].mapping.user.externalId: unsupported attribute path; supported: userName, "
    )
    assert 'emails[type eq "work"].value' in error.reason


def test_override_paths_are_matched_case_insensitively(tmp_path: Path) -> None:
    data = minimal()
    data["targets"][0]["mapping"] = {"user": {"USERNAME": "lower(login)", "Title": "'x'"}}
    target = load_config(write(tmp_path, data)).targets[0]
    assert target.mapping.user == {"userName": "lower(login)", "title": "'x'"}


def test_several_mistakes_are_all_named(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        del data["okta"]["token"]
        data["targets"][1]["deprovision"] = "nuke"

    error = failure(tmp_path, change)
    assert error.reason == (
        "okta.token: field required; "
        "targets[1].deprovision: input should be 'deactivate' or 'delete'"
    )


def test_a_secret_written_as_a_value_is_refused_without_repeating_it(tmp_path: Path) -> None:
    secret = "s3cr3t-token-value"
    error = failure(tmp_path, _set("targets/0/auth/token", secret))
    assert error.reason == (
        "targets[0].auth.token: a secret must be a reference, {env: NAME} or "
        "{airflow_conn: ID}, never the value itself"
    )
    assert secret not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # no pydantic text chained


def test_a_state_url_with_a_password_is_refused_without_repeating_it(tmp_path: Path) -> None:
    error = failure(tmp_path, _set("state/url", "postgresql+psycopg://sync:hunter2@db/scimflow"))
    assert error.reason.startswith("state.url: a URL with a password must be a secret reference")
    assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("okta: {}\nokta: {}\n", "not valid YAML: duplicate key 'okta' (line 2, column 1)"),
        ("okta: [\n", "not valid YAML: expected the node content, but found '<stream end>'"),
        ("", "is empty"),
        ("- 1\n- 2\n", "the top level must be a mapping of okta, state, targets"),
    ],
)
def test_a_file_that_is_not_a_configuration(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.reason.startswith(reason)
    assert caught.value.source == str(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot be read: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_config_error_is_a_scimflow_error() -> None:
    assert issubclass(ConfigError, ScimflowError)


# -- secrets ------------------------------------------------------------------------------
def test_an_env_secret_resolves_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMFLOW_TEST_SECRET", "value-1")
    assert SecretRef(env="SCIMFLOW_TEST_SECRET").resolve() == "value-1"


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_env_var_is_named(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SCIMFLOW_TEST_MISSING", raising=False)
    else:
        monkeypatch.setenv("SCIMFLOW_TEST_MISSING", value)
    with pytest.raises(ConfigError) as caught:
        SecretRef(env="SCIMFLOW_TEST_MISSING").resolve()
    assert str(caught.value) == "environment variable SCIMFLOW_TEST_MISSING: not set, or empty"


def test_an_airflow_secret_is_the_connection_password() -> None:
    from airflow.sdk import BaseHook

    conn = SimpleNamespace(password="pw-from-airflow")
    with mock.patch.object(BaseHook, "get_connection", return_value=conn) as get:
        assert SecretRef(airflow_conn="scim_a").resolve() == "pw-from-airflow"
    get.assert_called_once_with("scim_a")


def test_an_airflow_connection_without_password_or_unreadable_is_named() -> None:
    from airflow.sdk import BaseHook

    ref = SecretRef(airflow_conn="scim_a")
    with (
        mock.patch.object(BaseHook, "get_connection", return_value=SimpleNamespace(password="")),
        pytest.raises(ConfigError, match=r"^Airflow connection scim_a: has no password$"),
    ):
        ref.resolve()
    boom = RuntimeError("password=leaked")
    with (
        mock.patch.object(BaseHook, "get_connection", side_effect=boom),
        pytest.raises(ConfigError) as caught,
    ):
        ref.resolve()
    assert str(caught.value) == "Airflow connection scim_a: cannot be read (RuntimeError)"
    assert "leaked" not in str(caught.value)


def test_the_state_url_resolves_plain_env_or_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StateConfig(url="sqlite:///x.db").resolved_url() == "sqlite:///x.db"
    monkeypatch.setenv("SCIMFLOW_TEST_STATE_URL", "postgresql+psycopg://u:pw@db/s")
    state = StateConfig.model_validate({"url": {"env": "SCIMFLOW_TEST_STATE_URL"}})
    assert state.resolved_url() == "postgresql+psycopg://u:pw@db/s"
    assert "pw" not in repr(state)
    from scimflow.airflow import connections

    with mock.patch.object(connections, "state_store_url", return_value="sqlite:////s.db") as f:
        ref = StateConfig.model_validate({"url": {"airflow_conn": "scimflow_state"}})
        assert ref.resolved_url() == "sqlite:////s.db"
    f.assert_called_once_with("scimflow_state")


def test_no_resolved_secret_ever_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OKTA_API_TOKEN": "okta-secret-1f3a",
        "APP_A_TOKEN": "app-a-secret-9b2c",
        "APP_B_CLIENT_SECRET": "app-b-secret-77d0",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    config = load_config(EXAMPLE)
    a, b = config.targets
    assert isinstance(a.auth, BearerAuth) and isinstance(b.auth, OAuth2Auth)
    resolved = {
        config.okta.token.resolve(),
        a.auth.token.resolve(),
        b.auth.client_secret.resolve(),
    }
    assert resolved == set(secrets.values())  # the secrets were really read
    shown = [repr(config), str(config), config.model_dump_json(), repr(a), repr(b.auth)]
    shown += [str(config.okta.token), repr(config.okta.token)]
    for text in shown:
        for value in secrets.values():
            assert value not in text
    assert "APP_A_TOKEN" in repr(a)  # what is shown is the reference


def test_models_refuse_unknown_keys_and_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        SecretRef.model_validate({"env": "A", "file": "/x"})
    ref = SecretRef(env="A")
    with pytest.raises(pydantic.ValidationError):
        ref.env = "B"


def test_a_config_can_be_built_in_code() -> None:
    data = copy.deepcopy(minimal())
    config = ScimflowConfig.model_validate(data)
    assert isinstance(config.targets[0], TargetConfig)
    data["targets"].append(data["targets"][0])
    with pytest.raises(pydantic.ValidationError) as caught:
        ScimflowConfig.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("targets", 2, "name")


def test_the_stream_needs_a_kafka_section_and_a_target_must_be_configured() -> None:
    from scimflow.resync import target_config_of

    config = ScimflowConfig.model_validate(minimal())
    with pytest.raises(ConfigError, match="no kafka section"):
        config.kafka_section()
    with_kafka = ScimflowConfig.model_validate(
        {**minimal(), "kafka": {"bootstrap_servers": "localhost:9092"}}
    )
    assert with_kafka.kafka_section() is with_kafka.kafka
    assert target_config_of(config, "app-b").name == "app-b"
    with pytest.raises(ConfigError, match=r"no targets named \['app-c'\]"):
        target_config_of(config, "app-c")
