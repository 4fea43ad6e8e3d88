"""Alembic environment: the metadata of every package that owns tables."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning
from sqlmodel import SQLModel

from callcenter.schema import import_all_models, include_object
from config.database import make_engine

import_all_models()
# SQLite batch migrations reflect tables, and SQLAlchemy cannot reflect the expression indexes
# (lower(username), the ticket's call_id) that migrations create by hand: it says so on every
# first start. Those indexes are not touched by a batch (tests/test_migrations.py checks they
# exist after upgrade), so the notice is noise to an operator.
warnings.filterwarnings(
    "ignore", message="Skipped unsupported reflection of expression-based index", category=SAWarning
)
target_metadata = SQLModel.metadata
config = context.config


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
