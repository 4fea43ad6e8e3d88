"""Input shapes shared by every intake path (API, IVR, bridge, voicemail) — one intake for all."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketing.drafts import CHANNEL_RULES
from ticketing.models import Category, Channel, Urgency


def _channel_data_doc() -> str:
    """What each channel must carry in channel_data, from the rules intake enforces
    (ticketing.drafts.CHANNEL_RULES): the OpenAPI schema says it, not only the 422."""
    lines = ["Channel-specific fields. Required per channel (at least one of the keys listed):"]
    for channel, rule in CHANNEL_RULES.items():
        if rule.required_any:
            need = " or ".join(f"`{k}`" for k in rule.required_any)
            extra = []
            if rule.id_fields:
                extra.append("identifiers: a string or integer")
            if rule.url_fields:
                extra.append("URLs: http(s)")
            if rule.dedupe_key:
                extra.append(f"the same `{rule.dedupe_key}` files one ticket")
            more = f" ({'; '.join(extra)})" if extra else ""
            lines.append(f"- {channel} ({rule.label}): {need}{more}")
        else:
            lines.append(f"- {channel} ({rule.label}): none required")
    lines.append("Other keys (ivr_path, recording, keywords …) are kept as given.")
    return "\n".join(lines)


_EXAMPLES: list[Any] = [
    {
        "channel": "hotline",
        "content": "园区道路路灯坏了一个多月，晚上货车进出很危险",
        "submitter_phone": "13800138000",
        "channel_data": {"call_id": "1733561000.42"},
    },
    {
        "channel": "window",
        "content": "企业开办营业执照办理进度咨询",
        "channel_data": {"window_no": "A3"},
    },
    {
        "channel": "opinion",
        "content": "网帖反映某企业报销难",
        "channel_data": {"source_url": "https://bbs.example.cn/t/123"},
    },
    {
        "channel": "survey",
        "content": "调研走访：企业反映用电报装周期长",
        "channel_data": {"list_id": "DY-2026-118"},
    },
]


class TicketIn(BaseModel):
    """A new matter from any channel. Category/urgency left empty are filled by the classifier."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": _EXAMPLES})

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
    channel_data: dict[str, Any] = Field(default_factory=dict, description=_channel_data_doc())
    # Explicit departments (dispatcher at intake) skip the classifier's routing.
    departments: list[str] | None = Field(default=None, max_length=20)
    send_notice: bool = True
