"""Alembic environment of the state store.

:meth:`scimflow.state.store.StateStore.migrate` hands over an open connection in
``config.attributes["connection"]`` (inside its own transaction and lock), so nothing
here reads an ``alembic.ini`` or a URL. Run by hand (``alembic -x url=...``), it connects
to the URL given with ``-x url=`` instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from scimflow.state.tables import METADATA

# not "alembic_version": the state may share a database with another Alembic user (Airflow)
VERSION_TABLE = "scimflow_alembic_version"


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=context.get_x_argument(as_dictionary=True).get("url", "postgresql://"),
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    given = context.config.attributes.get("connection")
    if isinstance(given, sa.Connection):
        _run(given)
    else:
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("no connection given: pass -x url=... or use StateStore.migrate()")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                _run(connection)
        finally:
            engine.dispose()
