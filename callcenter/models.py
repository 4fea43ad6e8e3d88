"""callcenter's tables: one CallRecord per call (Linkedid), linked to its ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class CallRecord(SQLModel, table=True):
    """A finished call. `call_id` is Asterisk's Linkedid, so a transferred call stays one row."""

    __table_args__ = (
        Index("ix_callrecord_started", "started_at"),
        Index("ix_callrecord_disposition_started", "disposition", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(max_length=64, unique=True, index=True)
    server: str = Field(default="pbx1", max_length=32)
    caller_phone: str | None = Field(default=None, max_length=40)  # E.164 when valid, else raw
    caller_name: str | None = Field(default=None, max_length=100)
    started_at: datetime = UTCField()
    answered_at: datetime | None = UTCField(default=None)
    ended_at: datetime | None = UTCField(default=None)
    ivr_path: str | None = Field(default=None, max_length=200)
    ivr_choices: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    category: str | None = Field(default=None, max_length=16)
    queue: str | None = Field(default=None, max_length=64)
    wait_seconds: int | None = None
    agent: str | None = Field(default=None, max_length=100)  # queue member interface
    agent_name: str | None = Field(default=None, max_length=100)
    talk_seconds: int = 0
    hold_seconds: int = 0
    disposition: str = Field(max_length=16)  # answered | abandoned | voicemail | transferred
    recording_path: str | None = Field(default=None, max_length=500)
    hangup_cause: str | None = Field(default=None, max_length=8)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    ticket_number: str | None = Field(default=None, max_length=32)
    ticket_error: str | None = Field(default=None, max_length=500)
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = UTCField(default_factory=utcnow)
