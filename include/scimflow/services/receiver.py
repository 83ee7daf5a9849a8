"""The Okta Event Hook receiver as a local service, and its wiring to the Okta emulator.

``scimflow receiver --config <home>/scimflow.yaml`` runs with the stack's configuration
(:func:`~scimflow.services.okta.write_stack_config` writes its ``receiver`` and
``kafka`` sections); the hook secret is generated once into
``<home>/secrets/okta-hook.secret`` and given to the process as ``OKTA_HOOK_SECRET``,
the variable the configuration refers to. It is healthy when ``/readyz`` answers 200,
that is when Kafka answers it.

:func:`connect_hooks` points the emulator's Event Hook at the receiver, with the auth
header and secret the receiver checks; the emulator verifies the endpoint first. The
receiver's start does it when this home's emulator is running, and the emulator's start
when this home's receiver is: the emulator keeps its hook in memory only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from scimflow.errors import ServiceError
from scimflow.services.base import Service
from scimflow.services.settings import ServicesSettings, read_or_create_secret

__all__ = ["HOOK_AUTH_HEADER", "HOOK_PATH", "HOOK_SECRET_ENV", "Receiver", "connect_hooks"]

HOOK_PATH = "/okta/events"
HOOK_AUTH_HEADER = "Authorization"
HOOK_SECRET_ENV = "OKTA_HOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


class Receiver(Service):
    """``scimflow receiver`` on 127.0.0.1, writing to the local Kafka."""

    name = "receiver"
    start_timeout = 60.0

    @property
    def config_file(self) -> Path:
        return self.settings.home / "scimflow.yaml"

    def marker(self) -> str:
        return f"receiver --config {self.config_file}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.receiver_port}"

    @property
    def address(self) -> str:
        return f"{self.base_url}{HOOK_PATH}"

    def secret(self) -> str:
        return read_or_create_secret(self.settings.secrets / "okta-hook.secret")

    def prepare(self) -> None:
        from scimflow.services.okta import write_stack_config

        write_stack_config(self.settings)

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        exe = str(Path(sys.executable).parent / "scimflow")
        argv = [
            exe,
            "receiver",
            "--config",
            str(self.config_file),
            "--port",
            str(self.settings.receiver_port),
        ]
        return argv, {HOOK_SECRET_ENV: self.secret()}, None

    def check(self) -> tuple[bool, str]:
        import httpx

        try:
            resp = httpx.get(f"{self.base_url}/readyz", timeout=3.0)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        try:
            detail = str(resp.json().get("detail", ""))
        except ValueError:
            detail = ""
        if resp.status_code != 200:
            return False, f"readyz answered {resp.status_code}: {detail}"
        return True, detail

    def after_start(self) -> None:
        from scimflow.services.okta import OktaEmulator

        okta = OktaEmulator(self.settings)
        if okta.process.is_running() and okta.check()[0]:
            connect_hooks(self.settings)


def connect_hooks(settings: ServicesSettings, *, batch_size: int = 50) -> dict[str, Any]:
    """Make this home's Okta emulator deliver its Event Hooks to this home's receiver.

    POSTs the hook settings to the emulator's ``/emulator/hooks`` (with the emulator's
    API token); the emulator verifies the receiver (the challenge GET, with the auth
    header) before it accepts them. Returns the emulator's answer; raises ServiceError
    when it refuses (the receiver is down, or the secrets disagree).
    """
    import httpx

    from scimflow.services.okta import OktaEmulator

    okta = OktaEmulator(settings)
    receiver = Receiver(settings)
    body = {
        "url": receiver.address,
        "auth_header": HOOK_AUTH_HEADER,
        "auth_value": receiver.secret(),
        "batch_size": batch_size,
    }
    try:
        resp = httpx.post(
            f"{okta.address}/emulator/hooks",
            json=body,
            headers={"Authorization": f"SSWS {okta.token()}"},
            timeout=15.0,
        )
    except httpx.HTTPError as exc:
        raise ServiceError("okta", f"cannot reach the emulator: {type(exc).__name__}") from None
    if resp.status_code != 200:
        try:
            summary = str(resp.json().get("errorSummary", ""))
        except ValueError:
            summary = ""
        raise ServiceError(
            "okta",
            f"the emulator refused the Event Hook to {receiver.address} "
            f"({resp.status_code}: {summary or 'no summary'})",
        )
    answer: dict[str, Any] = resp.json()
    return answer
