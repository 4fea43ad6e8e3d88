"""The knowledge base's tables: one store for 办事指南, 政策, 常见问答 and 通知 (issue #19), which is also
the policy library of the proactive push (issue #12: a policy is an article with targeting fields).

The search columns (search_title, search_keywords, search_body) hold the jieba-segmented text,
words separated by spaces; the database's own full-text index reads them (SQLite: the FTS5 table
kb_article_fts kept by triggers; PostgreSQL: the tsvector column kb_tsv kept by a trigger, not in
this model). See migration 0013_knowledge.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class ArticleKind(StrEnum):
    guide = "guide"  # 办事指南
    policy = "policy"  # 政策
    faq = "faq"  # 常见问答
    notice = "notice"  # 通知


class ArticleStatus(StrEnum):
    draft = "draft"  # 草稿
    reviewed = "reviewed"  # 已审核 (by the owning department)
    published = "published"  # 已发布
    expired = "expired"  # 已失效


class SizeBand(StrEnum):
    """Enterprise size bands of the statistical division rules (issue #12)."""

    large = "large"  # 大型
    medium = "medium"  # 中型
    small = "small"  # 小型
    micro = "micro"  # 微型


# The Chinese names of the size bands: the one list (profiles, matcher, KB and policy pages).
SIZE_LABELS: dict[str, str] = {
    SizeBand.large.value: "大型",
    SizeBand.medium.value: "中型",
    SizeBand.small.value: "小型",
    SizeBand.micro.value: "微型",
}


class KbArticle(SQLModel, table=True):
    """One article, its current version. Earlier versions live in KbArticleVersion."""

    __tablename__ = "kb_article"
    __table_args__ = (
        Index("ix_kb_article_status_public", "status", "is_public"),
        Index("ix_kb_article_dept_status", "department_code", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    seed_key: str | None = Field(default=None, unique=True, max_length=64)  # starter content id
    title: str = Field(max_length=200)
    summary: str = Field(default="", max_length=500)  # the short answer (SMS, suggestions)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))  # sanitised HTML
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False))  # plain text
    kind: str = Field(max_length=16)
    department_code: str = Field(foreign_key="department.code", max_length=32)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # legal source and links
    issuer: str | None = Field(default=None, max_length=100)  # issuing body 发文机关
    doc_number: str | None = Field(default=None, max_length=100)  # 文号
    links: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    # dates (local calendar days)
    effective_from: date | None = None
    expires_on: date | None = Field(default=None, index=True)  # last day it applies
    apply_from: date | None = None  # application window (政策申报期)
    apply_until: date | None = None
    # where it applies / whom it targets (issue #12's names)
    industries: list[str] = Field(
        default_factory=list, sa_column=Column(JSON)
    )  # GB/T 4754 prefixes
    size_bands: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # SizeBand values
    regions: list[str] = Field(
        default_factory=list, sa_column=Column(JSON)
    )  # towns of 赤壁; [] = all
    audiences: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # 个人/企业/个体户…
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    is_public: bool = True
    status: str = Field(default=ArticleStatus.draft, max_length=16)
    version: int = 1
    # jieba-segmented text read by the full-text index
    search_title: str = Field(default="", sa_column=Column(Text, nullable=False))
    search_keywords: str = Field(default="", sa_column=Column(Text, nullable=False))
    search_body: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=64)
    created_at: datetime = UTCField(default_factory=utcnow)
    updated_by: str = Field(max_length=64)
    updated_at: datetime = UTCField(default_factory=utcnow)
    published_at: datetime | None = UTCField(default=None)
    expiry_reminded_on: date | None = None  # the expiry date the department was last told about


class KbArticleVersion(SQLModel, table=True):
    """Append-only: every edit and every review step, with who and when and the whole article."""

    __tablename__ = "kb_article_version"

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="kb_article.id", index=True)
    version: int
    action: str = Field(max_length=20)  # created | edited | reviewed | published | expired | …
    status: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    at: datetime = UTCField(default_factory=utcnow)
    note: str | None = Field(default=None, max_length=500)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class KbQueryLog(SQLModel, table=True):
    """Searches and article opens: the no-hit articles and unanswered questions reports."""

    __tablename__ = "kb_query_log"
    __table_args__ = (Index("ix_kb_query_log_kind_at", "kind", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = UTCField(default_factory=utcnow)
    kind: str = Field(max_length=12)  # search | open
    audience: str = Field(max_length=12)  # staff | public
    query: str | None = Field(default=None, max_length=200)
    result_count: int = 0
    top_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    article_id: int | None = Field(default=None, index=True)


class DirectAnswer(SQLModel, table=True):
    """直接答复: the answer an agent gave at first contact, closing the matter at intake."""

    __tablename__ = "direct_answer"
    __table_args__ = (UniqueConstraint("ticket_id", name="uq_direct_answer_ticket"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id")
    article_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    note: str = Field(max_length=500)
    answered_by: str = Field(max_length=64)
    answered_at: datetime = UTCField(default_factory=utcnow, index=True)
    outcome: str | None = Field(default=None, max_length=24)  # the caller's rating (overall)
    dispatched_at: datetime | None = UTCField(default=None)  # 不满意 → turned into a dispatch


class PolicyPushRun(SQLModel, table=True):
    """One request to push a policy (on publish, or by staff), or to tell one enterprise the
    policies that fit it (`enterprise_id` set). Written in the requesting transaction; the RQ job
    marks it finished. An unfinished run is queued again by the scheduler (resumable)."""

    __tablename__ = "policy_push_run"

    id: int | None = Field(default=None, primary_key=True)
    article_id: int | None = Field(default=None, foreign_key="kb_article.id", index=True)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    requested_by: str = Field(max_length=64)
    requested_at: datetime = UTCField(default_factory=utcnow)
    finished_at: datetime | None = UTCField(default=None, index=True)
    matched: int = 0
    sent: int = 0
    skipped: int = 0


class PolicyPush(SQLModel, table=True):
    """One policy told to one enterprise: the push log. Unique per (policy, enterprise), so a policy
    never reaches an enterprise twice whatever runs race or repeat (ticketing.policy_push)."""

    __tablename__ = "policy_push"
    __table_args__ = (
        UniqueConstraint("article_id", "enterprise_id", name="uq_policy_push_article_enterprise"),
        Index("ix_policy_push_status_article", "status", "article_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="kb_article.id")
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    run_id: int | None = Field(default=None, foreign_key="policy_push_run.id")
    status: str = Field(default="pending", max_length=12)  # pending | sent | skipped
    skip_reason: str | None = Field(default=None, max_length=20)  # opted_out | no_mobile
    token_digest: str | None = Field(default=None, unique=True, max_length=64)  # SHA-256 hex
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id")
    created_at: datetime = UTCField(default_factory=utcnow)
    sent_at: datetime | None = UTCField(default=None)
    first_opened_at: datetime | None = UTCField(default=None)
    open_count: int = 0


class PolicyPushOpen(SQLModel, table=True):
    """Every open of a pushed policy's link (the read log)."""

    __tablename__ = "policy_push_open"

    id: int | None = Field(default=None, primary_key=True)
    push_id: int = Field(foreign_key="policy_push.id", index=True)
    at: datetime = UTCField(default_factory=utcnow)


class TicketPolicy(SQLModel, table=True):
    """A ticket about a policy (a hotline enquiry 政策查询) linked to that policy."""

    __tablename__ = "ticket_policy"
    __table_args__ = (UniqueConstraint("ticket_id", "article_id", name="uq_ticket_policy"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    article_id: int = Field(foreign_key="kb_article.id", index=True)
    linked_by: str = Field(max_length=64)
    linked_at: datetime = UTCField(default_factory=utcnow)
