"""The per-ticket keywords of the hotspot analysis (migration 0021_hotspots).

`ticket_keyword` holds each counted ticket's keywords (at most hotspots.yaml keywords.per_ticket,
taken from its title, content and call transcripts), with the ticket's creation time and channel
copied (both fixed at intake), so a month's keywords are counted from one covering index without
reading the tickets. A 重复件 or a demo ticket (duplicate_of_id / simulated, also fixed at intake)
is never counted, so it gets no rows. `hotspot_indexed` marks the tickets whose text has been read
(a ticket may have no keyword at all). `hotspot_month` keeps each month's figures (a cache:
recomputed when stale, see ticketing.hotspots.report).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from config.database import UTCField, utcnow


class TicketKeyword(SQLModel, table=True):
    __tablename__ = "ticket_keyword"
    __table_args__ = (
        # a period's counts by word, by channel too (covering; ticket_id for a category filter)
        Index("ix_ticket_keyword_created", "created_at", "word", "channel", "ticket_id"),
        # drill-down: a word's tickets in a period
        Index("ix_ticket_keyword_word", "word", "created_at"),
    )

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    word: str = Field(primary_key=True, max_length=32)
    created_at: datetime = UTCField()  # the ticket's created_at
    channel: str = Field(max_length=16)  # the ticket's channel


class HotspotIndexed(SQLModel, table=True):
    __tablename__ = "hotspot_indexed"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    indexed_at: datetime = UTCField(default_factory=utcnow)


class HotspotMonth(SQLModel, table=True):
    """One month's figures under one filter (channel, category; "" = all), kept so a page view
    reads months instead of recounting them (ticketing.hotspots.report.compute_month)."""

    __tablename__ = "hotspot_month"

    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM, settings.timezone
    channel: str = Field(default="", primary_key=True, max_length=16)
    category: str = Field(default="", primary_key=True, max_length=16)
    computed_at: datetime = UTCField(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
