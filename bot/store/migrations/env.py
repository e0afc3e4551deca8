"""Alembic environment: runs the migrations on the connection ``Store.migrate`` hands over.

There is no alembic.ini and no URL here on purpose: the store owns the engine (and its SQLite
pragmas), opens the transaction, takes the migration lock, and passes the connection in
``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bot.store.tables import Base


def run_migrations() -> None:
    """Run the migrations online, on the connection given by the caller."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run the store's migrations through Store.migrate()")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; use Store.migrate()")
run_migrations()
