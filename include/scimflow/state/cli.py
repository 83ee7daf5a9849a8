"""Command line for the state store: ``audit verify`` and ``db upgrade``.

Two Typer apps for the main ``scimflow`` command to mount. The URL comes from
``--url`` or ``SCIMFLOW_STATE_URL``; it carries the password, so it is never printed
(the store masks it in its messages).
"""

from __future__ import annotations

from typing import Annotated

import typer

from scimflow.errors import StateStoreError
from scimflow.state.store import StateStore

__all__ = ["audit_app", "db_app"]

audit_app = typer.Typer(help="The audit log of every write.", no_args_is_help=True)
db_app = typer.Typer(help="The state store's database schema.", no_args_is_help=True)

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="SCIMFLOW_STATE_URL",
        show_envvar=True,
        # the value holds a password: help must not echo it back
        show_default=False,
        help="SQLAlchemy URL of the state store (postgresql+psycopg://... or sqlite:///...).",
    ),
]

EXIT_BROKEN = 1  # the chain is broken: the log was tampered with
EXIT_UNREACHABLE = 2  # the store could not be read: nothing was verified


@audit_app.callback()
def _audit() -> None:
    """The audit log of every write."""


@db_app.callback()
def _db() -> None:
    """The state store's database schema."""


@audit_app.command()
def verify(url: Url) -> None:
    """Walk the audit log's hash chain; exit 1 at the first row that breaks it."""
    try:
        with StateStore(url) as store:
            result = store.verify_audit()
    except StateStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    if result.ok:
        typer.echo(f"audit log OK: {result.rows} rows checked")
        return
    where = f"at seq {result.first_bad_seq}" if result.first_bad_seq is not None else "at the end"
    typer.echo(
        f"audit log BROKEN {where}: {result.reason} ({result.rows} rows checked before it)",
        err=True,
    )
    raise typer.Exit(EXIT_BROKEN)


@db_app.command()
def upgrade(url: Url) -> None:
    """Create or migrate the state store's tables to the newest revision."""
    try:
        with StateStore(url) as store:
            store.migrate()
    except StateStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    typer.echo("state store schema is at the newest revision")
