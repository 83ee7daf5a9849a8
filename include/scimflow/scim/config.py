"""The scimflow configuration file: the Okta org, the state store and the SCIM targets.

``config/scimflow.example.yaml`` documents every key. The file is YAML, checked by the
pydantic models below (unknown keys are refused, duplicate YAML keys too); any problem
raises :class:`~scimflow.errors.ConfigError` naming the file and the key path, for
example ``config.yaml: targets[1].auth.token: field required``.

Secrets are never values in the file but references (:class:`SecretRef`):
``{env: NAME}`` reads an environment variable, ``{airflow_conn: ID}`` an Airflow
connection's password. They are resolved when used (:meth:`SecretRef.resolve`), never
kept on the models, so neither a repr nor an error can show one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from scimflow.errors import ConfigError

__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "OKTA_STATUSES",
    "BasicAuth",
    "BearerAuth",
    "DeletionGuardConfig",
    "KafkaConfig",
    "MappingConfig",
    "OAuth2Auth",
    "OktaConfig",
    "ReceiverConfig",
    "ScimflowConfig",
    "ScopeConfig",
    "SecretRef",
    "StateConfig",
    "TargetConfig",
    "load_config",
    "retention_config",
]

OktaStatus = Literal[
    "STAGED",
    "PROVISIONED",
    "ACTIVE",
    "RECOVERY",
    "PASSWORD_EXPIRED",
    "LOCKED_OUT",
    "SUSPENDED",
    "DEPROVISIONED",
]
OKTA_STATUSES: tuple[str, ...] = get_args(OktaStatus)  # the one list, derived


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- field types --------------------------------------------------------------------------
def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: use the auth settings")
    return value.rstrip("/")


def _plain_url(value: str) -> str:
    parts = urlsplit(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme or "") or "://" not in value:
        raise ValueError("must be a URL such as sqlite:///scimflow-state.db")
    if parts.password is not None:
        raise ValueError(
            "a URL with a password must be a secret reference: {env: NAME} or {airflow_conn: ID}"
        )
    return value


def _override_path(value: str) -> str:
    from scimflow.scim.mapping import OVERRIDE_PATHS, canonical_path

    path = canonical_path(value)
    if path is None:
        raise ValueError(f"unsupported attribute path; supported: {', '.join(OVERRIDE_PATHS)}")
    return path


def _expression(value: str) -> str:
    from scimflow.scim.expressions import compile_expression
    from scimflow.scim.mapping import USER_FIELDS

    compile_expression(value, allowed_names=USER_FIELDS)  # ExpressionError is a ValueError
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]
PlainUrl = Annotated[str, AfterValidator(_plain_url)]
OverridePath = Annotated[str, AfterValidator(_override_path)]
Expression = Annotated[str, AfterValidator(_expression)]


# -- secrets ------------------------------------------------------------------------------
class SecretRef(_Model):
    """Where a secret lives: exactly one of ``env`` (a variable) or ``airflow_conn``."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    airflow_conn: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _reference_not_value(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            raise ValueError(
                "a secret must be a reference, {env: NAME} or {airflow_conn: ID}, "
                "never the value itself"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.airflow_conn is None):
            raise ValueError("give exactly one of env or airflow_conn")
        return self

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"airflow_conn:{self.airflow_conn}"

    def resolve(self) -> str:
        """The secret's value, read now; raises ConfigError naming the reference only."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"environment variable {self.env}", "not set, or empty")
            return value
        conn_id = str(self.airflow_conn)
        source = f"Airflow connection {conn_id}"
        try:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:
            # the exception's text is left out on purpose: it is not ours to vouch for
            raise ConfigError(source, f"cannot be read ({type(exc).__name__})") from None
        password = getattr(conn, "password", None)
        if not password:
            raise ConfigError(source, "has no password")
        return str(password)


# -- sections -----------------------------------------------------------------------------
class OktaConfig(_Model):
    """The Okta org to read: its URL and an API token reference."""

    org_url: HttpUrlText
    token: SecretRef


def _url_kind(value: Any) -> str:
    return "secret" if isinstance(value, dict | SecretRef) else "plain"


class StateConfig(_Model):
    """The state store: a SQLAlchemy URL without password, or a reference to one.

    ``{env: NAME}`` holds the whole URL; ``{airflow_conn: ID}`` names a ``postgres`` or
    ``sqlite`` connection the URL is built from.
    """

    url: Annotated[
        Annotated[PlainUrl, Tag("plain")] | Annotated[SecretRef, Tag("secret")],
        Discriminator(_url_kind),
    ]

    def resolved_url(self) -> str:
        """The URL to connect with (it may carry a password: never log it)."""
        if isinstance(self.url, str):
            return self.url
        if self.url.env is not None:
            return self.url.resolve()
        from scimflow.airflow.connections import state_store_url
        from scimflow.errors import ScimflowError

        conn_id = str(self.url.airflow_conn)
        try:
            return state_store_url(conn_id)
        except ScimflowError as exc:
            raise ConfigError(f"Airflow connection {conn_id}", str(exc)) from None
        except Exception as exc:
            raise ConfigError(
                f"Airflow connection {conn_id}", f"cannot be read ({type(exc).__name__})"
            ) from None


class BearerAuth(_Model):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(_Model):
    """HTTP Basic with a user name and a password reference."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretRef


class OAuth2Auth(_Model):
    """OAuth 2.0 client credentials: a token from ``token_url``, sent as a bearer token."""

    type: Literal["oauth2"]
    token_url: HttpUrlText
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    scope: str | None = None


Auth = Annotated[BearerAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")]


class ScopeConfig(_Model):
    """Which Okta users a target gets. Empty lists keep everyone; deleted users never."""

    groups: tuple[str, ...] = ()  # Okta group names: members of at least one of them
    statuses: tuple[OktaStatus, ...] = ()  # Okta statuses kept


class DeletionGuardConfig(_Model):
    """Refuse a plan deprovisioning more than ``max_share`` of a target's active users,
    when it has at least ``min_users`` of them (the rule: :mod:`scimflow.scim.guard`)."""

    max_share: float = Field(default=0.1, ge=0.0, le=1.0)
    min_users: int = Field(default=10, ge=0)


class MappingConfig(_Model):
    """Overrides of the usual mapping: SCIM attribute path → expression.

    The supported paths and the expression language are documented in
    :mod:`scimflow.scim.mapping` and :mod:`scimflow.scim.expressions`.
    """

    user: dict[OverridePath, Expression] = Field(default_factory=dict)


class TargetConfig(_Model):
    """One SCIM 2.0 application to keep equal to Okta."""

    name: str = Field(pattern=r"^[a-z0-9-]+$", max_length=63)
    base_url: HttpUrlText
    auth: Auth
    scope: ScopeConfig = ScopeConfig()
    deprovision: Literal["deactivate", "delete"] = "deactivate"
    concurrency: int = Field(default=4, ge=1, le=64)
    requests_per_second: float = Field(default=50.0, gt=0)
    deletion_guard: DeletionGuardConfig = DeletionGuardConfig()
    push_groups: bool = True
    unmanaged_users: Literal["ignore", "deactivate"] = "ignore"
    mapping: MappingConfig = MappingConfig()


# Kafka's own default (what retention drops: a backfill of okta_catchup re-publishes it
# while Okta's System Log keeps it, and the daily resync repairs the state)
DEFAULT_RETENTION_HOURS = 168


def retention_config(hours: int) -> dict[str, str]:
    """A topic's ``retention.ms`` for ``hours``."""
    return {"retention.ms": str(hours * 3_600_000)}


class KafkaConfig(_Model):
    """The Kafka cluster that carries Okta's change events.

    ``okta.events`` is keyed by the Okta entity an event concerns; events that cannot be
    routed go to the dead-letter topic with their reason. Topics are created idempotently
    with ``partitions`` partitions. ``group`` is the consumer group of the ``okta_events``
    DAG; ``batch_max`` bounds one micro-batch.

    A record holds only what the stream needs (the event's uuid, type and time, and the
    id and type of each target: :func:`scimflow.stream.events.slim`) unless
    ``whole_events`` keeps the whole LogEvent (actor, names, logins, client IP).
    ``retention_hours`` is both topics' ``retention.ms``, set when scimflow creates them
    and again on every receiver start: it bounds how long an event can wait for a run,
    and how long its ids stay on the broker.
    """

    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(default="okta.events", pattern=r"^[A-Za-z0-9._-]+$")
    dlq_topic: str = Field(default="okta.events.dlq", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=3, ge=1, le=1000)
    group: str = Field(default="scimflow-okta-events", min_length=1)
    batch_max: int = Field(default=5000, ge=1)
    whole_events: bool = False
    retention_hours: int = Field(default=DEFAULT_RETENTION_HOURS, ge=1, le=24 * 366)

    @property
    def topic_config(self) -> dict[str, str]:
        """The topic-level settings scimflow sets on both topics."""
        return retention_config(self.retention_hours)


class ReceiverConfig(_Model):
    """The Okta Event Hook endpoint (``scimflow receiver``).

    Okta sends the hook's secret verbatim in ``auth_header``; ``secret`` says where the
    receiver finds the value to compare it with. A POST is answered 200 only after Kafka
    acknowledged every event, and 503 when that takes longer than ``ack_timeout``
    seconds (Okta gives up after 3 s and retries once).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=1, le=65535)
    path: str = Field(default="/okta/events", pattern=r"^/[A-Za-z0-9/_.-]*$")
    auth_header: str = Field(default="Authorization", pattern=r"^[A-Za-z0-9-]+$")
    secret: SecretRef
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ack_timeout: float = Field(default=2.5, gt=0, le=30)
    tls_certfile: str | None = None
    tls_keyfile: str | None = None


class ScimflowConfig(_Model):
    """The whole file."""

    okta: OktaConfig
    state: StateConfig
    targets: tuple[TargetConfig, ...] = Field(min_length=1)
    kafka: KafkaConfig | None = None
    receiver: ReceiverConfig | None = None

    @model_validator(mode="after")
    def _unique_target_names(self) -> ScimflowConfig:
        first: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for i, target in enumerate(self.targets):
            if target.name in first:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "duplicate_name",
                            "{name} is already the name of targets[{first}]",
                            {"name": target.name, "first": first[target.name]},
                        ),
                        loc=("targets", i, "name"),
                        input=target.name,
                    )
                )
            first.setdefault(target.name, i)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def target(self, name: str) -> TargetConfig:
        """The target called ``name`` (KeyError if there is none)."""
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)

    def kafka_section(self) -> KafkaConfig:
        """The ``kafka`` section, which the stream needs: a ConfigError if it has none."""
        if self.kafka is None:
            raise ConfigError("configuration", "the configuration has no kafka section")
        return self.kafka


# -- loading ------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the last would win)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)

# tags of discriminated unions that pydantic puts in an error's location: not keys
_UNION_TAGS = {"auth": {"bearer", "basic", "oauth2"}, "url": {"plain", "secret"}}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def key_path(loc: Sequence[int | str]) -> str:
    """``('targets', 1, 'auth', 'bearer', 'token')`` → ``targets[1].auth.token``."""
    out = ""
    parent: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]" or part in _UNION_TAGS.get(str(parent), ()):
            continue
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
        parent = part
    return out


def _message(err: Any) -> tuple[str, str]:
    """(key path, what is wrong) for one pydantic error, without the input value."""
    path = key_path(err["loc"])
    kind = err["type"]
    if kind == "missing":
        return path, "field required"
    if kind == "extra_forbidden":
        return path, "unknown key"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        path = f"{path}.type" if path else "type"
        if kind == "union_tag_not_found":
            return path, "field required (bearer, basic or oauth2)"
    if kind == "value_error":
        return path, str(err["ctx"]["error"])
    if kind == "too_short":
        return path, f"needs at least {err['ctx']['min_length']} item(s)"
    msg = str(err["msg"])
    return path, msg[:1].lower() + msg[1:]


def load_config(path: Path) -> ScimflowConfig:
    """Read and check the configuration at ``path``; raises :class:`ConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(source, f"not valid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"not valid YAML: {type(exc).__name__}") from None
    if data is None:
        raise ConfigError(source, "is empty")
    if not isinstance(data, dict):
        raise ConfigError(source, "the top level must be a mapping of okta, state, targets")
    try:
        return ScimflowConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_message(err) for err in exc.errors(include_url=False)]
        reason = "; ".join(f"{where}: {what}" if where else what for where, what in problems)
        # `from None`: pydantic's own text repeats the input, which may hold a pasted secret
        raise ConfigError(source, reason) from None
