"""Recording metadata and the playback audit log.

The audio itself lives in the store folder (recordings/store.py); a row here is the only way to find
it. Rows are never deleted by retention: the file goes, `deleted_at` is set, the audit trail stays.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class RecordingKind(StrEnum):
    call = "call"  # MixMonitor recording of an answered call
    voicemail = "voicemail"  # after-hours message left with VoiceMail()


class Recording(SQLModel, table=True):
    __table_args__ = (
        Index("ix_recording_kind_created", "kind", "created_at"),
        Index("ix_recording_expires", "deleted_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    call_id: str | None = Field(default=None, index=True, max_length=64)  # Asterisk Uniqueid
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    # sha256 + ":" + call_id: one stored copy per (content, call); NULL-safe unlike a composite key
    dedupe_key: str = Field(unique=True, max_length=140)
    path: str = Field(max_length=300)  # relative to the store root, e.g. 2026/11/25/call-….wav
    # where Asterisk wrote it (indexed: the spool sweep asks "imported already?" per file)
    source_path: str | None = Field(default=None, max_length=500, index=True)
    duration_s: float
    format: str = Field(default="wav", max_length=8)
    codec: str = Field(max_length=16)  # pcm_s16le | pcm_mulaw | pcm_alaw
    sample_rate: int
    channels: int
    bytes: int
    sha256: str = Field(index=True, max_length=64)
    caller_phone: str | None = Field(default=None, max_length=32)  # as the PBX gave it
    agent: str | None = Field(default=None, max_length=64)  # username of the agent who handled it
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = UTCField(default_factory=utcnow)  # when the audio was made (UTC)
    imported_at: datetime = UTCField(default_factory=utcnow)
    expires_at: datetime | None = UTCField(default=None)
    deleted_at: datetime | None = UTCField(default=None)


class PlaybackLog(SQLModel, table=True):
    """Every playback request (each HTTP range is a row): who listened to what, and when."""

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    username: str = Field(max_length=64)
    role: str = Field(max_length=20)
    at: datetime = UTCField(default_factory=utcnow)
    range_start: int | None = None
    range_end: int | None = None  # inclusive byte offset
    status_code: int
    client: str | None = Field(default=None, max_length=64)
    # what was given out: the audio, or its transcript (shown as text on the ticket)
    what: str = Field(default="audio", max_length=12)
