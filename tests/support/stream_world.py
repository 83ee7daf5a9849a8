"""The set-up the stream's tests share: an emulator, two empty SCIM targets, a topic of
their own on the session's broker, a SQLite state store, and a configuration file."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pytest
    from scimflow.okta.emulator.server import EmulatorServer
    from scimflow.scim.config import ScimflowConfig
    from scimflow.services import KafkaBroker

    from tests.support.fixtures import ScimTenant, StartEmulator


class WriteConfig(Protocol):
    """:meth:`StreamWorld.write`: rewrite the configuration file, return it loaded."""

    def __call__(
        self, b_url: str | None = None, a_url: str | None = None, b_scope: str = ""
    ) -> ScimflowConfig: ...


@dataclass
class StreamWorld:
    okta: EmulatorServer
    path: Path  # the configuration file
    a: str  # base URL of target app-a
    b: str  # base URL of target app-b
    token: str
    state: str  # the state store's URL
    kafka_address: str
    topic: str

    def write(
        self, b_url: str | None = None, a_url: str | None = None, b_scope: str = ""
    ) -> ScimflowConfig:
        """(Re)write the configuration, targets at other URLs if given, app-b with the
        scope ``b_scope`` if given (YAML, e.g. ``statuses: [ACTIVE]``); return it loaded."""
        b_scope = f"\n    scope: {{{b_scope}}}" if b_scope else ""
        from scimflow.scim.config import load_config

        t = self.topic
        self.path.write_text(f"""
okta: {{org_url: "{self.okta.url}", token: {{env: OKTA_API_TOKEN}}}}
state: {{url: {{env: SCIMFLOW_TEST_STATE_URL}}}}
kafka: {{bootstrap_servers: "{self.kafka_address}", topic: {t}, dlq_topic: {t}.dlq,
         group: g-{t}}}
targets:
  - name: app-a
    base_url: {a_url or self.a}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}
  - name: app-b
    base_url: {b_url or self.b}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}{b_scope}
""")
        return load_config(self.path)


def stream_world(
    okta_emulator: StartEmulator,
    scim_tenant: ScimTenant,
    kafka: KafkaBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    seed: int,
) -> StreamWorld:
    from scimflow.services.kafka import ensure_topics

    okta = okta_emulator(users=30, groups=3, seed=seed)
    base_a, token = scim_tenant
    topic = f"okta.events.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.address, {topic: 3, f"{topic}.dlq": 1})
    state = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("OKTA_API_TOKEN", "emulator-token")
    monkeypatch.setenv("APP_TOKEN", token)
    monkeypatch.setenv("SCIMFLOW_TEST_STATE_URL", state)
    monkeypatch.setenv("SCIMFLOW_DATA", str(tmp_path / "data"))
    world = StreamWorld(
        okta=okta,
        path=tmp_path / "scimflow.yaml",
        a=base_a,
        b=base_a.replace("/t", "/b", 1),
        token=token,
        state=state,
        kafka_address=kafka.address,
        topic=topic,
    )
    world.write()
    return world
