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


class AgentStateChange(SQLModel, table=True):
    """One change of an agent's state as the bridge saw it (written by the bridge).

    The day's agent figures (time paused by reason, wrap-up, logged-in time) come from this log
    and the call records, never from the live state, so a bridge or web restart mid-day neither
    resets nor doubles them: a restarted bridge writes a row only when the state really differs
    from the last one it published, and durations are the gaps between consecutive rows.
    """

    __table_args__ = (
        Index("ix_agentstate_at", "at"),
        Index("ix_agentstate_agent_at", "server", "interface", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    server: str = Field(max_length=32)
    interface: str = Field(max_length=100)
    agent_name: str | None = Field(default=None, max_length=100)
    state: str = Field(max_length=16)  # logged-out | ready | on-call | wrap-up | paused
    reason: str | None = Field(default=None, max_length=64)  # pause reason code
    at: datetime = UTCField()


class ControlAudit(SQLModel, table=True):
    """A supervisor's live-control action (pause, queue add/remove, listen/whisper/barge): who,
    when, what, and what the PBX answered, including refusals and an absent bridge."""

    __table_args__ = (Index("ix_controlaudit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = UTCField(default_factory=utcnow)
    actor: str = Field(max_length=64)
    server: str = Field(max_length=32)
    command: str = Field(max_length=32)
    target: str = Field(default="", max_length=100)  # the agent's interface
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    ok: bool = False
    result: str = Field(default="", max_length=500)
