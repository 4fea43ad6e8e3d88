"""The assessment's own tables: appeals (申诉/免责) against a ticket's place in an indicator,
and the closed months' figures (the month cache)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class AppealStatus(StrEnum):
    pending = "pending"  # 待审核
    accepted = "accepted"  # 已采纳: the ticket leaves the indicator of that month
    rejected = "rejected"  # 已驳回


class AssessmentAppeal(SQLModel, table=True):
    """A department's appeal (申诉/免责) that one ticket should not count in one indicator of one
    month's assessment. Decided once by an admin (ticketing.assessment.appeals)."""

    __tablename__ = "assessment_appeal"
    __table_args__ = (
        Index("ix_appeal_month_status", "month", "status"),
        Index(
            "uq_appeal_once",
            "month",
            "department_code",
            "indicator",
            "ticket_id",
            unique=True,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7)  # "2027-01": the month assessed
    department_code: str = Field(foreign_key="department.code", max_length=32)
    indicator: str = Field(max_length=32)  # an indicator code (ticketing.assessment.indicators)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    reason: str = Field(max_length=1000)
    status: str = Field(default=AppealStatus.pending, max_length=12)
    filed_by: str = Field(max_length=64)
    filed_at: datetime = UTCField(default_factory=utcnow)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = UTCField(default=None)
    decision_note: str | None = Field(default=None, max_length=1000)


class AssessmentMonthCache(SQLModel, table=True):
    """A closed month's figures, kept so a page reads them instead of recounting a month of
    tickets (ticketing.assessment.cache). `data` null: none stored (never computed, or
    invalidated). `generation` is raised by every invalidation; a computation stores its figures
    only if the generation it read before computing is still the row's, so figures read before
    an appeal's decision committed never overwrite the invalidation."""

    __tablename__ = "assessment_month_cache"

    month: str = Field(primary_key=True, max_length=7)  # "2027-01"
    generation: int = Field(default=0)
    computed_at: datetime | None = UTCField(default=None)  # when the stored figures were read
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
