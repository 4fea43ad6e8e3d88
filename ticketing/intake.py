"""The one intake path for all seven channels (§1-9): validate everything, then write everything.

`submit` first validates and normalises the whole matter (phone → E.164, USCC check digits,
channel rules, departments, classification) without writing, so bad input raises InvalidInput
and leaves no row behind; the classifier runs before the first statement, so no transaction (on
SQLite, no writer lock) is held while it computes (`prepare` → a Draft). Then, in the caller's
transaction, ticketing.intake_write writes it: Caller/Enterprise upsert, deadline, number, the
ticket, dispatch, events, and the acceptance notice + SMS. `submit_many` does the same for a batch
of matters with a fixed number of statements (the web's group commit).

Channel rules live in CHANNEL_RULES (one table). channel_data may carry further keys (ivr_path,
recording, transcript, …); they are stored as given within the size limits. A hotline or
voicemail intake whose channel_data.call_id already has a ticket returns that ticket (a retried
job or a hotline call that ended in voicemail). A caller raising a second, different matter in the
same call gets a distinct call_id from the agent console (e.g. "<uniqueid>#2").

Classification: a missing category/urgency comes from ticketing.classifier (explicit values win);
the classifier also runs when both are given so auto-dispatch gets a suggested department, unless
the intake names its departments (then ticketing.dispatch.dispatch is used directly).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlmodel import Session

from config.settings import Settings
from ticketing.drafts import CHANNEL_RULES, ChannelRule, Draft, scoped_idempotency_key
from ticketing.errors import InvalidInput, TicketingError
from ticketing.intake_write import write_drafts
from ticketing.models import Ticket
from ticketing.phones import normalise_phone
from ticketing.schemas import TicketIn
from ticketing.text import normalise_text
from ticketing.uscc import validate_uscc

TITLE_CHARS = 30
MAX_CHANNEL_DATA_KEYS = 50
MAX_CHANNEL_DATA_CHARS = 16000
MAX_ID_CHARS = 64
_SENTENCE_END = re.compile(r"[。！？!?；;]")


_FIELD_LABELS = {
    "call_id": "通话编号",
    "window_no": "窗口号",
    "operator": "窗口经办人",
    "source_url": "舆情来源链接",
    "opinion_url": "舆情来源链接",
    "visit_id": "走访编号",
    "list_id": "调研清单编号",
    "survey_id": "调研编号",
}


def submit(
    session: Session,
    data: TicketIn | dict[str, Any],
    *,
    settings: Settings,
    actor: str,
    idempotency_key: str | None = None,
) -> Ticket:
    """Create (or, for a repeated call_id or Idempotency-Key, return) the ticket for one matter
    from any channel."""
    draft = prepare(data, actor=actor, idempotency_key=idempotency_key)
    out = write_drafts(session, settings, [draft])[0]
    if isinstance(out, TicketingError):
        raise out
    return out


def submit_many(
    session: Session,
    items: list[tuple[TicketIn | dict[str, Any], str]],
    *,
    settings: Settings,
    validated: bool = False,
) -> list[Ticket | TicketingError]:
    """Many matters, each with its actor, in the caller's one transaction: per item its ticket or
    the TicketingError that refused it (refusals write nothing). Classifies them together.
    validated=True: every item is a TicketIn its caller has just built by validation (the web's
    intake writer parses the body itself), so it is not validated twice."""
    drafts = prepare_many(items, validated=validated)
    good = [d for d in drafts if isinstance(d, Draft)]
    written = iter(write_drafts(session, settings, good) if good else [])
    return [next(written) if isinstance(d, Draft) else d for d in drafts]


def prepare(
    data: TicketIn | dict[str, Any],
    *,
    actor: str,
    classify: bool = True,
    validated: bool = False,
    idempotency_key: str | None = None,
) -> Draft:
    """Validate and normalise one matter and classify it; touches no database. InvalidInput on
    anything wrong, so a refused matter never leaves a row behind.

    The classifier fills a missing category/urgency (explicit values win) and suggests the
    department auto-dispatch uses; it is skipped only when the departments are given. It runs
    before the first statement, so no transaction (on SQLite, no writer lock) is held while it
    computes. Its verdict is discarded if the call_id turns out to have a ticket already.
    classify=False leaves that to the caller (prepare_many classifies a batch at once).
    """
    if not (validated and isinstance(data, TicketIn)):
        data = _coerce(data)
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 64:
        raise InvalidInput("操作人无效", field="actor")
    idem = scoped_idempotency_key(actor, idempotency_key)
    content = _clean(data.content).strip()
    if not content:
        raise InvalidInput("诉求内容不能为空", field="content", rule="empty")
    title = _clean(data.title or "").strip() or derive_title(content)
    phone = normalise_phone(data.submitter_phone) if data.submitter_phone else None
    uscc = validate_uscc(data.enterprise_uscc) if data.enterprise_uscc else None
    submitter_name = _clean(data.submitter_name or "").strip() or None
    enterprise_name = _clean(data.enterprise_name or "").strip() or None
    rule = CHANNEL_RULES[data.channel]
    channel_data = _check_channel_data(rule, data.channel_data)
    if enterprise_name and not uscc:
        channel_data.setdefault("enterprise_name", enterprise_name)
    draft = Draft(
        channel=str(data.channel),
        actor=actor,
        title=title,
        content=content,
        phone=phone,
        uscc=uscc,
        submitter_name=submitter_name,
        enterprise_name=enterprise_name,
        channel_data=channel_data,
        departments=_department_codes(data.departments),
        category=str(data.category) if data.category is not None else "",
        urgency=str(data.urgency) if data.urgency is not None else "",
        prediction=None,
        dedupe_id=str(channel_data[rule.dedupe_key]) if rule.dedupe_key else None,
        send_notice=data.send_notice,
        idempotency_key=idem,
    )
    if classify and _needs_classifier(draft):
        _apply(draft, _classify([draft])[0])
    return draft


def prepare_many(
    items: list[tuple[TicketIn | dict[str, Any], str]],
    *,
    validated: bool = False,
    idempotency_keys: list[str | None] | None = None,
) -> list[Draft | TicketingError]:
    """`prepare` for each (data, actor) (and its Idempotency-Key, when given), with one
    classifier call for all that need it."""
    out: list[Draft | TicketingError] = []
    keys = idempotency_keys or [None] * len(items)
    for (data, actor), key in zip(items, keys, strict=True):
        try:
            out.append(
                prepare(data, actor=actor, classify=False, validated=validated, idempotency_key=key)
            )
        except TicketingError as e:
            out.append(e)
    pending = [d for d in out if isinstance(d, Draft) and _needs_classifier(d)]
    if pending:
        for d, p in zip(pending, _classify(pending), strict=True):
            _apply(d, p)
    return out


def _needs_classifier(d: Draft) -> bool:
    return not d.category or not d.urgency or not d.departments


def _apply(d: Draft, prediction: Any) -> None:
    if prediction is None:
        return
    d.prediction = prediction
    d.category = d.category or prediction.category
    d.urgency = d.urgency or prediction.urgency


# ---- validation helpers (read-only) ----


def _coerce(data: TicketIn | dict[str, Any]) -> TicketIn:
    """Re-validate (also catches model_construct / attribute assignment that skipped pydantic)."""
    raw = data.model_dump(warnings=False) if isinstance(data, TicketIn) else data
    if not isinstance(raw, dict):
        raise InvalidInput("工单数据格式错误", field="data")
    try:
        return TicketIn.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "data"
        raise InvalidInput(
            f"字段 {field} 无效：{first.get('msg')}",
            field=field,
            errors=[
                {"field": ".".join(str(p) for p in err.get("loc", ())), "msg": err.get("msg")}
                for err in e.errors()
            ],
        ) from None


def _clean(s: str) -> str:
    """Free text normalised by the one rule (ticketing.text)."""
    return normalise_text(s)


def derive_title(content: str, limit: int = TITLE_CHARS) -> str:
    """First sentence of the first non-empty line, cut to `limit` characters."""
    first = next((ln for ln in content.splitlines() if ln.strip()), content)
    first = " ".join(first.split())
    m = _SENTENCE_END.search(first)
    if m and m.start() >= 4:
        first = first[: m.start()]
    return first if len(first) <= limit else first[:limit] + "…"


def _check_channel_data(rule: ChannelRule, raw: dict[str, Any]) -> dict[str, Any]:
    cd = dict(raw or {})
    if len(cd) > MAX_CHANNEL_DATA_KEYS:
        raise InvalidInput(
            f"渠道附加信息字段过多（最多{MAX_CHANNEL_DATA_KEYS}个）", field="channel_data"
        )
    for k in cd:
        if not isinstance(k, str) or not k or len(k) > 64:
            raise InvalidInput("渠道附加信息的字段名无效", field="channel_data")
    try:
        # allow_nan=False: NaN/Infinity are not JSON (PostgreSQL's json type refuses them)
        size = len(json.dumps(cd, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidInput(
            "渠道附加信息必须是 JSON 数据（不接受 NaN、Infinity）", field="channel_data"
        ) from None
    if size > MAX_CHANNEL_DATA_CHARS:
        raise InvalidInput(
            f"渠道附加信息过大（最多{MAX_CHANNEL_DATA_CHARS}字符）", field="channel_data"
        )
    for key in rule.id_fields:
        if key in cd and cd[key] is not None:
            v = cd[key]
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise InvalidInput(
                    f"{_FIELD_LABELS.get(key, key)}（channel_data.{key}）应为文本或数字",
                    field=f"channel_data.{key}",
                )
            v = _clean(str(v)).strip()
            if len(v) > MAX_ID_CHARS:
                raise InvalidInput(
                    f"{_FIELD_LABELS.get(key, key)}（channel_data.{key}）过长",
                    field=f"channel_data.{key}",
                )
            cd[key] = v
    for key in rule.url_fields:
        if key in cd and cd[key] not in (None, ""):
            v = cd[key]
            parts = urlsplit(v) if isinstance(v, str) and len(v) <= 2000 else None
            if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidInput(
                    f"{_FIELD_LABELS.get(key, key)}（channel_data.{key}）应为 http(s) 链接",
                    field=f"channel_data.{key}",
                )
    if rule.required_any and not any(cd.get(k) not in (None, "") for k in rule.required_any):
        names = "或".join(
            f"{_FIELD_LABELS.get(k, k)}（channel_data.{k}）" for k in rule.required_any
        )
        raise InvalidInput(
            f"{rule.label}渠道的工单必须填写{names}",
            field=f"channel_data.{rule.required_any[0]}",
            rule="channel_required",
        )
    return cd


def _department_codes(codes: list[str] | None) -> list[str]:
    if not codes:
        return []
    return list(dict.fromkeys(str(c).strip() for c in codes if str(c).strip()))


def _classify(drafts: list[Draft]) -> list[Any]:
    """The classifier's predictions; None (classifier not installed) only where nothing is missing.

    One text goes through the classifier's single-text path, several through its batch path
    (the same model and features; one sparse product for all)."""
    try:
        from ticketing import classifier
    except ModuleNotFoundError as e:
        if e.name != "ticketing.classifier" or any(not d.category or not d.urgency for d in drafts):
            raise
        return [None] * len(drafts)
    limit = getattr(classifier, "MAX_TEXT_CHARS", 20000)
    texts = [f"{d.title}\n{d.content}"[:limit] for d in drafts]
    keywords = [_keywords(d.channel_data) for d in drafts]
    model = classifier.get_classifier()
    if len(drafts) == 1:
        return [model.predict(texts[0], keywords[0])]
    return model.predict_many(texts, keywords)


def _keywords(channel_data: dict[str, Any]) -> list[str] | None:
    raw = channel_data.get("keywords")  # e.g. ASR keyword spotting
    if not isinstance(raw, list):
        return None
    kws = [k.strip()[:50] for k in raw if isinstance(k, str) and k.strip()][:50]
    return kws or None
