"""Two ``scimflow okta-emulator serve`` processes with the same seed: the same seeded
organisation, but never the same System Log uuid or new entity id (a restarted emulator
must not reissue what the stream and the catch-up already recorded as seen)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from scimflow.services.process import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _emulator(home: Path, cwd: Path, token: str | None) -> Iterator[tuple[str, str]]:
    """``okta-emulator serve`` in ``cwd``; its URL and API token (given, or from its home)."""
    port = _free_port()
    exe = Path(sys.executable).parent / "scimflow"
    env = {k: v for k, v in os.environ.items() if k != "SCIMFLOW_OKTA_TOKEN"}
    env["SCIMFLOW_HOME"] = str(home)
    if token is not None:
        env["SCIMFLOW_OKTA_TOKEN"] = token
    argv = [str(exe), "okta-emulator", "serve", "--port", str(port)]
    argv += ["--users", "20", "--groups", "2", "--seed", "1"]
    log = (home / "emulator.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=60, alive=lambda: proc.poll() is None), (
            home / "emulator.log"
        ).read_text()
        yield url, token or (home / "secrets" / "okta-emulator.token").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _run(url: str, token: str) -> dict[str, Any]:
    """The same mutations in each process (same churn seed); what the org then shows."""
    auth = {"Authorization": f"SSWS {token}"}
    seeded = [u["id"] for u in httpx.get(f"{url}/api/v1/users?limit=200", headers=auth).json()]
    for action in ("joiner", "mover", "membership_add"):
        httpx.post(
            f"{url}/emulator/mutate",
            json={"action": action, "count": 5, "seed": 7},
            headers=auth,
            timeout=30,
        ).raise_for_status()
    users = [u["id"] for u in httpx.get(f"{url}/api/v1/users?limit=200", headers=auth).json()]
    events = httpx.get(f"{url}/api/v1/logs?limit=1000", headers=auth).json()
    return {
        "seeded": seeded,
        "joiners": sorted(set(users) - set(seeded)),
        "uuids": [e["uuid"] for e in events],
    }


def test_two_processes_with_one_seed_share_the_org_but_no_uuid_or_new_id(
    tmp_path: Path,
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    servers = []
    with ExitStack() as stack:
        # the first gets its token from the environment, the second makes one in its home
        for name, token in (("first", "emulator-restart-token"), ("second", None)):
            (tmp_path / name).mkdir()
            servers.append(stack.enter_context(_emulator(tmp_path / name, cwd, token)))
        first, second = (_run(url, token) for url, token in servers)
    # the seed still decides the seeded organisation
    assert first["seeded"] == second["seeded"]
    assert first["seeded"]
    # 15 mutations each, each logged with a uuid of its own
    assert len(first["uuids"]) >= 15
    assert len(set(first["uuids"])) == len(first["uuids"])
    assert len(set(second["uuids"])) == len(second["uuids"])
    assert not set(first["uuids"]) & set(second["uuids"])
    # joiners get ids that no other run of the same seed handed out
    assert len(first["joiners"]) == len(second["joiners"]) == 5
    assert not set(first["joiners"]) & set(second["joiners"])
    # the generated token went to SCIMFLOW_HOME, nothing into the current folder
    assert (tmp_path / "second" / "secrets" / "okta-emulator.token").is_file()
    assert list(cwd.iterdir()) == []
