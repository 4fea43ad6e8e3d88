"""knowledge pages (issue #19): PostgreSQL's head tsvector of the knowledge base

kb_tsv_head: the article's title and keywords only (weights A and B), kept by the same trigger as
kb_tsv, with its own GIN index. The search's head stage ranks every match on it (few rows, small
vectors), so no query has to rank thousands of whole-body tsvectors (ticketing.knowledge.search).
Hand-made like kb_tsv (callcenter.schema.UNMANAGED_PREFIXES: "kb_tsv"); nothing on SQLite.

Revision ID: 0018_kb_pages
Revises: 0017_wallboard
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_kb_pages"
down_revision: str | Sequence[str] | None = "0017_wallboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION kb_article_tsv() RETURNS trigger AS $$
BEGIN
  NEW.kb_tsv :=
    setweight(to_tsvector('simple', coalesce(NEW.search_title, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(NEW.search_keywords, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(NEW.search_body, '')), 'C');
  NEW.kb_tsv_head :=
    setweight(to_tsvector('simple', coalesce(NEW.search_title, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(NEW.search_keywords, '')), 'B');
  RETURN NEW;
END
$$ LANGUAGE plpgsql
"""
PG_FUNCTION_0013 = """
CREATE OR REPLACE FUNCTION kb_article_tsv() RETURNS trigger AS $$
BEGIN
  NEW.kb_tsv :=
    setweight(to_tsvector('simple', coalesce(NEW.search_title, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(NEW.search_keywords, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(NEW.search_body, '')), 'C');
  RETURN NEW;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE kb_article ADD COLUMN kb_tsv_head tsvector")
    op.execute(PG_FUNCTION)
    op.execute(
        "UPDATE kb_article SET kb_tsv_head = "
        "setweight(to_tsvector('simple', coalesce(search_title, '')), 'A') || "
        "setweight(to_tsvector('simple', coalesce(search_keywords, '')), 'B')"
    )
    op.execute("CREATE INDEX kb_tsv_head_gin ON kb_article USING gin (kb_tsv_head)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS kb_tsv_head_gin")
    op.execute(PG_FUNCTION_0013)
    op.execute("ALTER TABLE kb_article DROP COLUMN IF EXISTS kb_tsv_head")
