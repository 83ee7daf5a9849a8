from __future__ import annotations

import stat
from pathlib import Path

import pytest
from scimflow.services.settings import ServicesSettings, default_home, read_or_create_secret


def test_the_home_is_per_user_and_the_dags_are_the_current_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in (
        "SCIMFLOW_HOME",
        "SCIMFLOW_DAGS_FOLDER",
        "SCIMFLOW_KAFKA_PORT",
        "SCIMFLOW_SCIM_A_PORT",
        "XDG_DATA_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    s = ServicesSettings.from_env()
    assert s.home == tmp_path / "user" / ".local" / "share" / "scimflow"
    assert s.logs == s.home / "logs"
    assert s.secrets == s.home / "secrets"
    assert s.dags_folder == project / "dags"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.scim_ports == {"scim-a": 18081, "scim-b": 18082}


def test_the_home_follows_xdg_data_home_unless_scimflow_home_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SCIMFLOW_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_home() == tmp_path / "data" / "scimflow"
    monkeypatch.setenv("SCIMFLOW_HOME", str(tmp_path / "mine"))
    assert default_home() == tmp_path / "mine"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCIMFLOW_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SCIMFLOW_KAFKA_PORT", "29092")
    monkeypatch.setenv("SCIMFLOW_SCIM_B_PORT", "28082")
    s = ServicesSettings.from_env()
    assert s.home == tmp_path / "h"
    assert s.kafka_bootstrap == "127.0.0.1:29092"
    assert s.scim_ports["scim-b"] == 28082


def test_a_bad_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMFLOW_POSTGRES_PORT", "fifteen")
    with pytest.raises(ValueError, match="SCIMFLOW_POSTGRES_PORT must be an integer"):
        ServicesSettings.from_env()


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "scim-a.token"
    first = read_or_create_secret(path)
    assert len(first) >= 30
    assert read_or_create_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_or_create_secret(tmp_path / "secrets" / "other") != first


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o1777)
    read_or_create_secret(shared / "token")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "token").stat().st_mode) == 0o600
