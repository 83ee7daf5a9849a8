"""A stream batch's apply stage: only a target that cannot be reached parks the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scimflow.errors import ConfigError
from scimflow.okta.source import groups_frame, memberships_frame, users_frame
from scimflow.scim.config import ScimflowConfig
from scimflow.scim.desired import Quarantine
from scimflow.state.store import StateStore
from scimflow.stream.batch import CAUSES, apply_to_target


def write_batch(run_dir: Path) -> None:
    """A hydrated batch of one user, as ``hydrate`` leaves it."""
    run_dir.mkdir()
    users = users_frame(
        [
            {
                "id": "00u1",
                "status": "ACTIVE",
                "login": "user1@example.com",
                "email": "user1@example.com",
                "first_name": "Given",
                "last_name": "Family",
                "manager_id": None,
                "deleted": False,
            }
        ]
    )
    users.to_parquet(run_dir / "users.parquet", index=False)
    for name in ("groups", "scope_groups"):
        groups_frame([]).to_parquet(run_dir / f"{name}.parquet", index=False)
    for name in ("memberships", "user_groups"):
        memberships_frame([]).to_parquet(run_dir / f"{name}.parquet", index=False)
    Quarantine().write(run_dir)
    (run_dir / CAUSES).write_text(json.dumps({"00u1": "okta-event:e1"}), encoding="utf-8")


def test_a_configuration_error_fails_the_task_and_parks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target's token is not set: a configuration error, on the last try too (before:
    any scimflow error on the last try parked the batch as 'target unavailable')."""
    monkeypatch.delenv("APP_A_TOKEN_NOT_SET", raising=False)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    config = ScimflowConfig.model_validate(
        {
            "okta": {"org_url": "https://example.okta.com", "token": {"env": "OKTA_TOKEN"}},
            "state": {"url": state},
            "targets": [
                {
                    "name": "app-a",
                    "base_url": "http://127.0.0.1:9/v2",
                    "auth": {"type": "bearer", "token": {"env": "APP_A_TOKEN_NOT_SET"}},
                }
            ],
        }
    )
    write_batch(tmp_path / "batch")
    with pytest.raises(ConfigError, match="APP_A_TOKEN_NOT_SET"):
        apply_to_target(config, "app-a", tmp_path / "batch", run_id="r", last_try=True)
    with StateStore(state) as store:
        store.migrate()
        assert store.parked() == []
