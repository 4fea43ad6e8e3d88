"""knowledge base (issue #19): articles, their versions, the search/open log, direct answers

The articles' search columns hold jieba-segmented text (words separated by spaces), indexed by the
database's own full-text search:
- SQLite: an external-content FTS5 table kb_article_fts (unicode61: one token per segmented word)
  over search_title, search_keywords, search_body, kept in sync by triggers.
- PostgreSQL: a tsvector column kb_tsv (title and keywords weight A, body weight C) kept by a
  BEFORE INSERT/UPDATE trigger, with a GIN index. The column is not in the model (hand-made, like
  the ticket search indexes; callcenter.schema.UNMANAGED_PREFIXES).

Revision ID: 0013_knowledge
Revises: 0008_fts_automerge
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_knowledge"
down_revision: str | Sequence[str] | None = "0010_evaluation_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLS = "search_title, search_keywords, search_body"
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER kb_article_fts_ai AFTER INSERT ON kb_article BEGIN
         INSERT INTO kb_article_fts(rowid, {_COLS})
         VALUES (new.id, new.search_title, new.search_keywords, new.search_body);
       END""",
    f"""CREATE TRIGGER kb_article_fts_ad AFTER DELETE ON kb_article BEGIN
         INSERT INTO kb_article_fts(kb_article_fts, rowid, {_COLS})
         VALUES ('delete', old.id, old.search_title, old.search_keywords, old.search_body);
       END""",
    f"""CREATE TRIGGER kb_article_fts_au AFTER UPDATE OF {_COLS} ON kb_article BEGIN
         INSERT INTO kb_article_fts(kb_article_fts, rowid, {_COLS})
         VALUES ('delete', old.id, old.search_title, old.search_keywords, old.search_body);
         INSERT INTO kb_article_fts(rowid, {_COLS})
         VALUES (new.id, new.search_title, new.search_keywords, new.search_body);
       END""",
)
PG_FUNCTION = """
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
    op.create_table(
        "kb_article",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seed_key", sa.String(length=64), nullable=True, unique=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "department_code",
            sa.String(length=32),
            sa.ForeignKey("department.code"),
            nullable=False,
        ),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=True),
        sa.Column("issuer", sa.String(length=100), nullable=True),
        sa.Column("doc_number", sa.String(length=100), nullable=True),
        sa.Column("links", sa.JSON(), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("apply_from", sa.Date(), nullable=True),
        sa.Column("apply_until", sa.Date(), nullable=True),
        sa.Column("industries", sa.JSON(), nullable=True),
        sa.Column("size_bands", sa.JSON(), nullable=True),
        sa.Column("regions", sa.JSON(), nullable=True),
        sa.Column("audiences", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("search_title", sa.Text(), nullable=False),
        sa.Column("search_keywords", sa.Text(), nullable=False),
        sa.Column("search_body", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_reminded_on", sa.Date(), nullable=True),
    )
    op.create_index("ix_kb_article_status_public", "kb_article", ["status", "is_public"])
    op.create_index("ix_kb_article_dept_status", "kb_article", ["department_code", "status"])
    op.create_index("ix_kb_article_expires_on", "kb_article", ["expires_on"])

    op.create_table(
        "kb_article_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=True),
    )
    op.create_index("ix_kb_article_version_article_id", "kb_article_version", ["article_id"])

    op.create_table(
        "kb_query_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("audience", sa.String(length=12), nullable=False),
        sa.Column("query", sa.String(length=200), nullable=True),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("top_ids", sa.JSON(), nullable=True),
        sa.Column("article_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_kb_query_log_kind_at", "kb_query_log", ["kind", "at"])
    op.create_index("ix_kb_query_log_article_id", "kb_query_log", ["article_id"])

    op.create_table(
        "direct_answer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("article_ids", sa.JSON(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("answered_by", sa.String(length=64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("ticket_id", name="uq_direct_answer_ticket"),
    )
    op.create_index("ix_direct_answer_answered_at", "direct_answer", ["answered_at"])

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            f"CREATE VIRTUAL TABLE kb_article_fts USING fts5({_COLS}, "
            "content='kb_article', content_rowid='id', tokenize='unicode61')"
        )
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)
    elif bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE kb_article ADD COLUMN kb_tsv tsvector")
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER kb_article_tsv_trg BEFORE INSERT OR UPDATE OF "
            f"{_COLS} ON kb_article FOR EACH ROW EXECUTE FUNCTION kb_article_tsv()"
        )
        op.execute("CREATE INDEX kb_tsv_gin ON kb_article USING gin (kb_tsv)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("kb_article_fts_ai", "kb_article_fts_ad", "kb_article_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS kb_article_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS kb_article_tsv_trg ON kb_article")
        op.execute("DROP FUNCTION IF EXISTS kb_article_tsv()")
    op.drop_table("direct_answer")
    op.drop_table("kb_query_log")
    op.drop_table("kb_article_version")
    op.drop_table("kb_article")
