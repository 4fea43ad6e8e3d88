"""Alembic environment: the metadata of every package that owns tables."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from callcenter.schema import import_all_models
from config.database import make_engine

import_all_models()
target_metadata = SQLModel.metadata
config = context.config

# Objects made by hand-written DDL in migrations (FTS5 shadow tables, expression and trigram
# indexes): autogenerate must not propose dropping them.
UNMANAGED_PREFIXES = (
    "ticket_fts",
    "ix_ticket_call_id",
    "ix_ticket_title_trgm",
    "ix_ticket_content_trgm",
)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (reflected and compare_to is None and (name or "").startswith(UNMANAGED_PREFIXES))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
