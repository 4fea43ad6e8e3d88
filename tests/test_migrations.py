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


def test_sqlite_search_index_merges_sixteen_segments_at_a_time(tmp_path):
    """0008: FTS5's automerge option (kept in ticket_fts_config) is 16 after upgrade and back to
    SQLite's 4 after a downgrade past it; the search keeps working either way."""
    import sqlite3

    from alembic import command

    from callcenter.schema import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)

    def automerge() -> int | None:
        with sqlite3.connect(tmp_path / "m.db") as c:
            row = c.execute("SELECT v FROM ticket_fts_config WHERE k = 'automerge'").fetchone()
            return None if row is None else int(row[0])

    assert automerge() == 16
    command.downgrade(alembic_config(url), "0007_recording_source")
    assert automerge() == 4
    upgrade(url)
    assert automerge() == 16


def test_no_later_migration_drops_an_earlier_ones_indexes_or_triggers(tmp_path):
    """A batch copy of a table on SQLite silently drops what reflection skips (expression indexes
    such as ix_user_username_ci, triggers): every index and trigger made by revision N is still
    there at head."""
    import sqlite3

    from alembic.script import ScriptDirectory

    from callcenter.schema import alembic_config, upgrade

    def objects(path) -> set[tuple[str, str]]:
        with sqlite3.connect(path) as c:
            rows = c.execute(
                "SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger')"
                " AND name NOT LIKE 'sqlite_autoindex%'"
            )
            return set(rows)

    head = tmp_path / "head.db"
    upgrade(f"sqlite:///{head}")
    at_head = objects(head)
    assert ("index", "ix_user_username_ci") in at_head
    script = ScriptDirectory.from_config(alembic_config(f"sqlite:///{head}"))
    lost = {}
    for rev in script.walk_revisions():
        db = tmp_path / f"{rev.revision}.db"
        upgrade(f"sqlite:///{db}", rev.revision)
        gone = objects(db) - at_head
        if gone:
            lost[rev.revision] = sorted(gone)
    assert not lost, lost
