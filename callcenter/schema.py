"""Schema management: Alembic migrations run programmatically (never create_all in production)."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Every module that defines tables; each package owns its own models.
MODEL_MODULES = [
    "ticketing.models",
    "ticketing.knowledge.models",
    "ticketing.hotspots.models",
    "ticketing.assessment.models",
    "recordings.models",
    "asr.models",
    "ivr.models",
    "callcenter.models",
]


# Objects made by hand-written DDL in migrations (FTS5 shadow tables, expression and trigram
# indexes): autogenerate must not propose dropping them.
UNMANAGED_PREFIXES = (
    "ticket_fts",
    "ix_ticket_call_id",
    "ix_ticket_title_trgm",
    "ix_ticket_content_trgm",
    "kb_article_fts",  # SQLite FTS5 of the knowledge base (0013_knowledge)
    "kb_tsv",  # PostgreSQL: its tsvector column and GIN index
    "ix_user_username_ci",
)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (reflected and compare_to is None and (name or "").startswith(UNMANAGED_PREFIXES))


def import_all_models() -> None:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def revision(url: str, message: str, autogenerate: bool = True) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=autogenerate)
