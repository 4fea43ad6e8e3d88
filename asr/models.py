"""ASR tables: one transcript per recording, and the job outbox used while Redis is unreachable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class Transcript(SQLModel, table=True):
    """recording_id is UNIQUE: a retried or duplicated job can never write a second transcript."""

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", unique=True)
    text: str = Field(max_length=100000)  # post-processed (spaces joined, numbers normalised)
    raw_text: str = Field(max_length=100000)  # what Vosk returned
    words: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    keywords: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    language: str | None = Field(default=None, max_length=8)
    model: str = Field(max_length=200)
    duration_s: float
    rtf: float
    created_at: datetime = UTCField(default_factory=utcnow)


class JobOutbox(SQLModel, table=True):
    """Work written in the same transaction as its cause, pushed to RQ when Redis answers.

    status: pending (not in Redis yet) → enqueued (RQ job exists) → done (the job finished), or
    failed (the job used up its retries; it waits in RQ's failed-job registry).
    """

    __table_args__ = (Index("ix_joboutbox_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=100)  # also the RQ job id: one job per piece of work
    queue: str = Field(max_length=32)
    func: str = Field(max_length=200)
    args: list[Any] = Field(default_factory=list, sa_column=Column(JSON))
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = UTCField(default_factory=utcnow)
    enqueued_at: datetime | None = UTCField(default=None)
    done_at: datetime | None = UTCField(default=None)
