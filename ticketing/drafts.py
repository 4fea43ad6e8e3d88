"""What intake decides before the database: the channels' rules and the Draft of one matter.

Shared by intake (which builds drafts) and intake_write (which writes them), so neither imports
the other's module for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ticketing.errors import InvalidInput
from ticketing.models import Channel


@dataclass(frozen=True)
class ChannelRule:
    """What one channel must carry in channel_data."""

    label: str
    required_any: tuple[str, ...] = ()  # at least one of these keys, non-empty
    id_fields: tuple[str, ...] = ()  # short identifiers: str/int, ≤ MAX_ID_CHARS
    url_fields: tuple[str, ...] = ()  # http(s) URLs when present
    dedupe_key: str | None = None  # same value → same ticket (idempotent intake)


CHANNEL_RULES: dict[str, ChannelRule] = {
    Channel.hotline: ChannelRule(
        "热线电话", required_any=("call_id",), id_fields=("call_id",), dedupe_key="call_id"
    ),
    Channel.voicemail: ChannelRule(
        "留言", required_any=("call_id",), id_fields=("call_id",), dedupe_key="call_id"
    ),
    Channel.web: ChannelRule("网页端"),
    Channel.mobile: ChannelRule("移动端"),
    Channel.window: ChannelRule(
        "特殊服务窗口",
        required_any=("window_no", "operator"),
        id_fields=("window_no", "operator"),
    ),
    Channel.opinion: ChannelRule(
        "网络舆情",
        required_any=("source_url", "opinion_url"),
        url_fields=("source_url", "opinion_url"),
    ),
    Channel.survey: ChannelRule(
        "线下调研",
        required_any=("visit_id", "list_id", "survey_id"),
        id_fields=("visit_id", "list_id", "survey_id"),
    ),
}
DEDUPE_CHANNELS = tuple(str(c) for c, r in CHANNEL_RULES.items() if r.dedupe_key)


@dataclass(slots=True)
class Draft:
    """One matter validated, normalised and classified: all `submit` decides before the database."""

    channel: str
    actor: str
    title: str
    content: str
    phone: str | None
    uscc: str | None
    submitter_name: str | None
    enterprise_name: str | None
    channel_data: dict[str, Any]
    departments: list[str]
    category: str
    urgency: str
    prediction: Any  # ticketing.classifier.Prediction, or None when the classifier was not asked
    dedupe_id: str | None  # the call_id of a hotline/voicemail intake (one call, one ticket)
    send_notice: bool
    # "<actor>:<key>" from the request's Idempotency-Key: a repeat returns the first ticket
    idempotency_key: str | None = None
    simulated: bool = False  # filed by `callcenter demo` (模拟)


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")  # visible ASCII, as HTTP headers carry


def scoped_idempotency_key(actor: str, key: str | None) -> str | None:
    """The stored form of a client's Idempotency-Key: scoped by who files, so one client's key
    never finds another's ticket. InvalidInput for a malformed key; None when there is none."""
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidInput(
            "Idempotency-Key 请求头无效：应为 1–100 个可见 ASCII 字符（建议使用 UUID）",
            field="Idempotency-Key",
            code="bad_idempotency_key",
        )
    return f"{actor}:{key}"
