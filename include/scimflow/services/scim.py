"""Local SCIM 2.0 targets: ``scim2-server`` processes, each with its own bearer token.

They keep their resources in memory, so a restart empties them: a real target for the
demo and the tests, not a store. The token is generated once per services home and kept
in ``home/secrets/<name>.token`` (mode 0600).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from scimflow.errors import ServiceError
from scimflow.services.base import Service
from scimflow.services.settings import ServicesSettings, read_or_create_secret

__all__ = ["ScimServer"]


class ScimServer(Service):
    """One ``scim2-server`` on 127.0.0.1, serving ``/v2``."""

    start_timeout = 30.0

    def __init__(self, settings: ServicesSettings, name: str) -> None:
        self.name = name
        self.port = settings.scim_ports[name]
        super().__init__(settings)

    def marker(self) -> str:
        return f"--port {self.port}"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def token(self) -> str:
        return read_or_create_secret(self.settings.secrets / f"{self.name}.token")

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        exe = Path(sys.executable).parent / "scim2-server"
        program = str(exe) if exe.exists() else shutil.which("scim2-server")
        if program is None:
            raise ServiceError(self.name, "scim2-server is not installed (it is a dev dependency)")
        # scim2-server takes its token only as an argument: a local, generated dev secret.
        argv = [
            program,
            "--hostname",
            "127.0.0.1",
            "--port",
            str(self.port),
            # one argument: a token may start with "-", which argparse takes for an option
            f"--bearer-token={self.token()}",
        ]
        return argv, {}, None

    def check(self) -> tuple[bool, str]:
        import httpx

        try:
            resp = httpx.get(
                f"{self.address}/Users",
                params={"count": 0},
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=2.0,
            )
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        if resp.status_code != 200:
            return False, f"GET /Users answered {resp.status_code}"
        total = resp.json().get("totalResults", "?")
        return True, f"{total} users"
