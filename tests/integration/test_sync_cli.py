"""``scimflow sync`` end to end, in its own process: the Okta emulator → two SCIM targets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from scimflow.state.store import StateStore

if TYPE_CHECKING:
    from tests.support.fixtures import ScimTenant, StartEmulator

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "scimflow"
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def users_in(base_url: str, token: str) -> list[dict[str, Any]]:
    page = httpx.get(
        f"{base_url}/Users", params={"count": 1000}, headers={"Authorization": f"Bearer {token}"}
    ).json()
    users: list[dict[str, Any]] = page.get("Resources", [])
    return users


def test_sync_dry_run_then_converge_then_nothing_to_do(
    okta_emulator: StartEmulator, scim_tenant: ScimTenant, tmp_path: Path
) -> None:
    okta = okta_emulator(users=60, groups=4, seed=5)
    d = okta.state.directory
    engineering = d.groups[d.group_ids[0]]["profile"]["name"]
    base_a, token = scim_tenant
    base_b = base_a.rsplit("/", 2)[0] + "/b" + base_a.rsplit("/", 2)[1] + "/v2"
    state = tmp_path / "state.db"
    config = tmp_path / "scimflow.yaml"
    config.write_text(f"""
okta:
  org_url: {okta.url}
  token: {{env: OKTA_API_TOKEN}}
state:
  url: sqlite:///{state}
targets:
  - name: app-a
    base_url: {base_a}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}
    deletion_guard: {{max_share: 0.5, min_users: 10}}
  - name: app-b
    base_url: {base_b}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}
    scope: {{groups: ["{engineering}"], statuses: [ACTIVE]}}
    deprovision: delete
    push_groups: false
""")
    env = {"OKTA_API_TOKEN": "emulator-token", "APP_TOKEN": token, "COLUMNS": "200"}

    dry = run_cli("sync", "--config", str(config), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run" in dry.stdout and "create User" in dry.stdout
    assert users_in(base_a, token) == [] and users_in(base_b, token) == []

    first = run_cli("sync", "--config", str(config), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    in_okta = {u["profile"]["login"] for u in d.users.values()}
    a = {u["userName"] for u in users_in(base_a, token)}
    assert a == in_okta  # every user, deprovisioned ones as inactive
    members = d.members[d.group_ids[0]]
    expected_b = {
        d.users[u]["profile"]["login"] for u in members if d.users[u]["status"] == "ACTIVE"
    }
    assert {u["userName"] for u in users_in(base_b, token)} == expected_b
    inactive = {u["userName"] for u in users_in(base_a, token) if u.get("active") is False}
    assert inactive == {
        u["profile"]["login"]
        for u in d.users.values()
        if u["status"] in ("STAGED", "SUSPENDED", "DEPROVISIONED")
    }
    groups = httpx.get(f"{base_a}/Groups", headers={"Authorization": f"Bearer {token}"}).json()
    assert {g["displayName"] for g in groups.get("Resources", [])} == {
        g["profile"]["name"] for g in d.groups.values()
    }

    store = StateStore(f"sqlite:///{state}")
    writes = len(store.audit(limit=100_000))
    second = run_cli("sync", "--config", str(config), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(store.audit(limit=100_000)) == writes  # converged: nothing written
    verify = run_cli("audit", "verify", "--url", f"sqlite:///{state}", env=env)
    assert verify.returncode == 0 and "OK" in verify.stdout

    # a mover in Okta: the next sync updates exactly that user, in both targets when in scope
    mover = next(iter(members & {u for u in d.user_ids if d.users[u]["status"] == "ACTIVE"}))
    d.update_profile(mover, {"title": "Chief Architect"})
    third = run_cli("sync", "--config", str(config), env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    new = store.audit(limit=100_000)[: len(store.audit(limit=100_000)) - writes]
    assert sorted((r["target"], r["operation"], r["okta_id"]) for r in new) == [
        ("app-a", "reconcile", "*"),
        ("app-a", "update", mover),
        ("app-b", "reconcile", "*"),
        ("app-b", "update", mover),
    ]
    summary = next(r for r in new if r["operation"] == "reconcile" and r["target"] == "app-a")
    assert summary["response"]["results"] == {"update:applied": 1}
    for secret in ("emulator-token", token):
        assert secret not in first.stdout + first.stderr + third.stdout + third.stderr

    # validated with great-expectations as the DAG does: two users sharing an email are
    # quarantined (parked with that kind, left as they are), the rest goes on
    one, other = sorted(u for u in d.user_ids if d.users[u]["status"] == "ACTIVE")[:2]
    d.update_profile(one, {"email": d.users[other]["profile"]["email"], "title": "Dup"})
    fourth = run_cli("sync", "--config", str(config), env=env)
    assert fourth.returncode == 0, fourth.stdout + fourth.stderr
    assert "data quality: 2 users" in fourth.stdout and "quarantined" in fourth.stdout
    quarantined = {(p.target, p.okta_id, p.park_kind) for p in store.parked()}
    assert ("app-a", one, "quarantined") in quarantined
    assert ("app-a", other, "quarantined") in quarantined
    a_users = {u["externalId"]: u for u in users_in(base_a, token)}
    assert a_users[one]["title"] != "Dup" and a_users[one]["active"] is True  # left as is


def test_a_configuration_error_is_one_line_naming_it_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "scimflow.yaml"
    config.write_text("""
okta:
  org_url: http://127.0.0.1:9
  token: {env: OKTA_API_TOKEN}
state:
  url: {env: SCIMFLOW_TEST_STATE_URL_UNSET}
targets:
  - name: app-a
    base_url: http://127.0.0.1:9/v2
    auth: {type: bearer, token: {env: APP_TOKEN}}
""")
    secret = "tok-" + "s3cr3t-value-never-shown"
    env = {"OKTA_API_TOKEN": secret, "APP_TOKEN": secret}
    result = run_cli("sync", "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "SCIMFLOW_TEST_STATE_URL_UNSET" in lines[0]
    assert secret not in result.stderr + result.stdout

    # the state store usable, Okta not answering: one line too, naming Okta
    env["SCIMFLOW_TEST_STATE_URL_UNSET"] = f"sqlite:///{tmp_path / 'state.db'}"
    result = run_cli("sync", "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: Okta") and "cannot be reached" in lines[0]
    assert secret not in result.stderr + result.stdout
