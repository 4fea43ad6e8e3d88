"""The Alembic migrations and the models must describe the same schema (no drift either way)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from callcenter.schema import import_all_models, include_object


def test_migrations_match_models(engine):
    import_all_models()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_downgrade_then_upgrade_round_trip(db_url):
    from alembic import command

    from callcenter.schema import alembic_config, upgrade

    cfg = alembic_config(db_url)
    command.downgrade(cfg, "base")
    upgrade(db_url)
    command.downgrade(cfg, "base")
    upgrade(db_url)
