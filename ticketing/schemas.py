"""Input shapes shared by every intake path (API, IVR, bridge, voicemail) — one intake for all."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketing.models import Category, Channel, Urgency


class TicketIn(BaseModel):
    """A new matter from any channel. Category/urgency left empty are filled by the classifier."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    content: str = Field(min_length=1, max_length=20000)
    title: str | None = Field(default=None, max_length=200)
    category: Category | None = None
    urgency: Urgency | None = None
    submitter_name: str | None = Field(default=None, max_length=100)
    submitter_phone: str | None = Field(default=None, max_length=40)
    enterprise_uscc: str | None = Field(default=None, max_length=40)
    enterprise_name: str | None = Field(default=None, max_length=200)
    # Channel-specific fields: call_id, ivr_path, recording, window_no, opinion_url, survey_id …
    channel_data: dict[str, Any] = Field(default_factory=dict)
    # Explicit departments (dispatcher at intake) skip the classifier's routing.
    departments: list[str] | None = Field(default=None, max_length=20)
    send_notice: bool = True
