"""A PostgreSQL server from Debian's packages, with a ``scimflow`` database.

The cluster lives under the services home and listens on 127.0.0.1 only. Its superuser
is ``scimflow`` with a generated password kept in ``home/secrets`` (mode 0600). PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system user that
Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

from scimflow.errors import ServiceError
from scimflow.services.base import Service
from scimflow.services.settings import read_or_create_secret

__all__ = ["PostgresServer", "find_postgres_bindir"]

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


class PostgresServer(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: ends sessions, checkpoints, exits

    @property
    def dir(self) -> Path:
        return self.settings.home / "postgres"

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
        self.dir.mkdir(parents=True, exist_ok=True)
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
