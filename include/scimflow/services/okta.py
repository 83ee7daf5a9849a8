"""The Okta emulator as a local service, and the scimflow configuration of the local stack.

The demo's Okta is the emulator (``scimflow okta-emulator serve``) seeded with
``okta_users`` users and ``okta_groups`` groups; its API token is generated into the
services home. :func:`write_stack_config` writes the configuration that points scimflow
at the emulator, the local PostgreSQL, both SCIM targets, Kafka and the Event Hook
receiver; its secrets are references to environment variables that
:func:`stack_environment` provides. The emulator keeps its Event Hook in memory: its
start points the hook at this home's receiver again when that one is running.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scimflow.services.base import Service
from scimflow.services.settings import ServicesSettings, read_or_create_secret

__all__ = ["OktaEmulator", "stack_environment", "write_stack_config"]


class OktaEmulator(Service):
    name = "okta"
    start_timeout = 120.0

    def marker(self) -> str:
        return f"okta-emulator serve --port {self.settings.okta_port}"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.settings.okta_port}"

    def token(self) -> str:
        return read_or_create_secret(self.settings.secrets / "okta-emulator.token")

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        s = self.settings
        exe = str(Path(sys.executable).parent / "scimflow")
        argv = [
            exe,
            "okta-emulator",
            "serve",
            "--port",
            str(s.okta_port),
            "--users",
            str(s.okta_users),
            "--groups",
            str(s.okta_groups),
            "--seed",
            "1",
        ]
        return argv, {"SCIMFLOW_OKTA_TOKEN": self.token()}, None

    def check(self) -> tuple[bool, str]:
        import httpx

        try:
            resp = httpx.get(f"{self.address}/healthz", timeout=2.0)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        if resp.status_code != 200:
            return False, f"healthz answered {resp.status_code}"
        body = resp.json()
        return True, f"{body['users']} users, {body['groups']} groups"

    def after_start(self) -> None:
        from scimflow.services.receiver import Receiver, connect_hooks

        receiver = Receiver(self.settings)
        if receiver.process.is_running() and receiver.check()[0]:
            connect_hooks(self.settings)


def stack_environment(settings: ServicesSettings) -> dict[str, str]:
    """The secrets the stack's configuration refers to, by variable name."""
    from scimflow.services.postgres import PostgresServer
    from scimflow.services.receiver import HOOK_SECRET_ENV, Receiver
    from scimflow.services.scim import ScimServer

    env = {
        "OKTA_API_TOKEN": OktaEmulator(settings).token(),
        HOOK_SECRET_ENV: Receiver(settings).secret(),
        "SCIMFLOW_STATE_URL": PostgresServer(settings).url(),
        "SCIMFLOW_CONFIG": str(settings.home / "scimflow.yaml"),
    }
    for name in settings.scim_ports:
        env[f"{name.upper().replace('-', '_')}_TOKEN"] = ScimServer(settings, name).token()
    return env


def write_stack_config(settings: ServicesSettings) -> Path:
    """The configuration of the local stack (no secret in it: references only)."""
    from scimflow.services.receiver import HOOK_AUTH_HEADER, HOOK_PATH, HOOK_SECRET_ENV
    from scimflow.services.scim import ScimServer

    lines = [
        "# Written by scimflow for the local stack: the Okta emulator, PostgreSQL, two targets,",
        "# Kafka and the Event Hook receiver.",
        f'okta: {{org_url: "http://127.0.0.1:{settings.okta_port}", '
        "token: {env: OKTA_API_TOKEN}}",
        "state: {url: {env: SCIMFLOW_STATE_URL}}",
        "targets:",
    ]
    for name in settings.scim_ports:
        var = f"{name.upper().replace('-', '_')}_TOKEN"
        lines += [
            f"  - name: {name}",
            f"    base_url: {ScimServer(settings, name).address}",
            f"    auth: {{type: bearer, token: {{env: {var}}}}}",
            "    deletion_guard: {max_share: 0.1, min_users: 10}",
            # a local scim2-server takes ~400 writes a second (the default cap, 50, is
            # for SaaS applications that publish tighter limits)
            "    requests_per_second: 300",
        ]
    lines += [
        f'kafka: {{bootstrap_servers: "{settings.kafka_bootstrap}", '
        f"partitions: {settings.kafka_partitions}}}",
        f"receiver: {{port: {settings.receiver_port}, path: {HOOK_PATH}, "
        f"auth_header: {HOOK_AUTH_HEADER}, secret: {{env: {HOOK_SECRET_ENV}}}}}",
    ]
    path = settings.home / "scimflow.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
