"""The assessment's own table: appeals (申诉/免责) against a ticket's place in an indicator."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
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
