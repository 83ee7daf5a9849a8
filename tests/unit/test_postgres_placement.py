"""As root, PostgreSQL runs as the ``postgres`` user: its cluster goes where that user can
reach it, also when the services home is under ``/root`` (mode 0700)."""

from __future__ import annotations

import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from scimflow.errors import ServiceError
from scimflow.services import postgres
from scimflow.services.postgres import PostgresServer, reachable_by
from scimflow.services.settings import ServicesSettings

UID = 54321  # a user that owns none of the test's folders


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A folder that anyone can enter, all the way up (pytest's own tmp_path is 0700)."""
    with tempfile.TemporaryDirectory(prefix="scimflow-pg-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def _settings(home: Path) -> ServicesSettings:
    return ServicesSettings(home=home, cache=home / "cache", dags_folder=home / "dags")


@pytest.fixture()
def as_root(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pretend to be root with a ``postgres`` user whose home is ``open_dir/pg``."""
    pg_home = open_dir / "pg"
    pg_home.mkdir()
    user = pwd.struct_passwd(("postgres", "x", UID, UID, "", str(pg_home), "/bin/false"))
    monkeypatch.setattr(postgres, "_server_user", lambda: user)
    monkeypatch.setattr(postgres, "_groups_of", lambda name: [])
    monkeypatch.setattr(PostgresServer, "_chown", lambda self, path: None)
    return pg_home


def test_permission_bits_decide_who_can_enter(open_dir: Path) -> None:
    locked = open_dir / "root"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    assert reachable_by(open_dir / "home" / "postgres", UID, set()) is True
    assert reachable_by(locked / "home" / "postgres", UID, set()) is False
    assert reachable_by(locked / "home" / "postgres", 0, set()) is True
    locked.chmod(0o710)  # group may search: enough for a member of the folder's group
    assert reachable_by(locked / "x", UID, {locked.stat().st_gid}) is True
    assert reachable_by(locked / "x", UID, set()) is False


def test_a_home_the_server_user_cannot_enter_puts_the_cluster_in_its_home(
    open_dir: Path, as_root: Path
) -> None:
    locked = open_dir / "root"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    home = locked / ".local" / "share" / "scimflow"
    server = PostgresServer(_settings(home))
    assert server.dir.parent == as_root / "scimflow"
    assert str(locked) not in server.marker()  # the server is given the reachable path
    server._make_dir()
    assert (home / "postgres").is_symlink()
    assert (home / "postgres").resolve() == server.dir
    # a later start finds the cluster through the link
    assert PostgresServer(_settings(home)).dir == server.dir
    # another home gets another cluster
    assert PostgresServer(_settings(locked / "other")).dir != server.dir


def test_a_reachable_home_keeps_the_cluster(open_dir: Path, as_root: Path) -> None:
    home = open_dir / "home"
    server = PostgresServer(_settings(home))
    assert server.dir == home / "postgres"
    server._make_dir()
    assert (home / "postgres").is_dir()
    assert not (home / "postgres").is_symlink()


def test_an_unreachable_cluster_already_in_the_home_is_named(open_dir: Path, as_root: Path) -> None:
    locked = open_dir / "root"
    (locked / "home" / "postgres").mkdir(parents=True)
    locked.chmod(0o700)
    server = PostgresServer(_settings(locked / "home"))
    with pytest.raises(ServiceError, match="cannot be reached by the 'postgres' user"):
        server._make_dir()
