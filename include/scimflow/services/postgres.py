"""A PostgreSQL server from Debian's packages, with a ``scimflow`` database.

The cluster lives under the services home and listens on 127.0.0.1 only. Its superuser
is ``scimflow`` with a generated password kept in ``home/secrets`` (mode 0600). PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system user that
Debian's package creates. That user must be able to reach its data: when the home is in
a folder it cannot enter (``/root``, mode 0700, is the usual case), the cluster lives in
``~postgres/scimflow/<home's hash>`` instead (``/var/lib/postgresql/...`` on Debian), and
``home/postgres`` is a symbolic link to it.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
from functools import cached_property
from pathlib import Path

from scimflow.errors import ServiceError
from scimflow.services.base import Service
from scimflow.services.settings import read_or_create_secret

__all__ = ["PostgresServer", "find_postgres_bindir", "reachable_by"]

DATABASE = "scimflow"
SUPERUSER = "scimflow"


def find_postgres_bindir() -> Path:
    """The folder of ``initdb`` and ``postgres``: ``SCIMFLOW_PG_BINDIR`` or Debian's newest."""
    override = os.environ.get("SCIMFLOW_PG_BINDIR")
    if override:
        return Path(override)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ServiceError(
        "postgres", "PostgreSQL server binaries not found: apt-get install postgresql"
    )


def reachable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether a user (``uid``, in groups ``gids``) can enter ``path`` and every folder above
    it, by their permission bits; folders not made yet are left out (they get 0755)."""
    if uid == 0:
        return True
    for folder in (path, *path.parents):
        try:
            st = folder.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _server_user() -> pwd.struct_passwd | None:
    """The system user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _groups_of(name: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if name in g.gr_mem]


class PostgresServer(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: ends sessions, checkpoints, exits

    @cached_property
    def dir(self) -> Path:
        """Where the cluster lives: ``home/postgres``, unless the server's user cannot
        reach it (see the module's doc); a link left there by an earlier start wins."""
        local = self.settings.home / "postgres"
        if local.is_symlink():
            return local.resolve()
        user = _server_user()
        if user is None:
            return local
        gids = {user.pw_gid, *(g.gr_gid for g in _groups_of(user.pw_name))}
        if reachable_by(local, user.pw_uid, gids):
            return local
        digest = hashlib.sha256(str(self.settings.home).encode()).hexdigest()[:12]
        return Path(user.pw_dir) / "scimflow" / digest

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    def marker(self) -> str:
        return str(self.data_dir)

    @property
    def address(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.settings.postgres_port}/{DATABASE}"

    def password(self) -> str:
        return read_or_create_secret(self.settings.secrets / "postgres.password")

    def url(self, *, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL with the password: pass it to engines, never print it."""
        return (
            f"{driver}://{SUPERUSER}:{self.password()}@127.0.0.1:"
            f"{self.settings.postgres_port}/{DATABASE}"
        )

    def _run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def prepare(self) -> None:
        bindir = find_postgres_bindir()
        if self._run_as() is not None:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServiceError(
                    "postgres",
                    "running as root needs the 'postgres' system user: apt-get install postgresql",
                ) from exc
        self._make_dir()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        pwfile = self.dir / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.password() + "\n")
        self._chown(pwfile)
        try:
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=self.dir,
                user=self._run_as(),
                group=self._run_as(),
                extra_groups=[] if self._run_as() else None,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServiceError("postgres", f"initdb failed: {result.stderr[-800:]}")

    def _make_dir(self) -> None:
        local = self.settings.home / "postgres"
        if self.dir == local:
            self.dir.mkdir(parents=True, exist_ok=True)
            return
        # outside the home: made for the server's user, and pointed at from the home
        self.dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.dir)
        if not local.is_symlink():
            if local.exists():
                raise ServiceError(
                    "postgres",
                    f"{local} cannot be reached by the 'postgres' user that runs the server "
                    f"as root; move it to {self.dir} and link it, or set SCIMFLOW_HOME to a "
                    "folder that user can enter",
                )
            local.parent.mkdir(parents=True, exist_ok=True)
            local.symlink_to(self.dir, target_is_directory=True)

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        bindir = find_postgres_bindir()
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.settings.postgres_port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        return argv, {}, self._run_as()

    def _connect(self, dbname: str):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.settings.postgres_port,
            user=SUPERUSER,
            password=self.password(),
            dbname=dbname,
            connect_timeout=3,
            autocommit=True,
        )

    def check(self) -> tuple[bool, str]:
        import psycopg

        try:
            with self._connect("postgres") as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            return False, type(exc).__name__
        return True, f"PostgreSQL {row[0] if row else '?'}"

    def after_start(self) -> None:
        with self._connect("postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
