"""The one intake path for all seven channels (§1-9): validate everything, then write everything.

`submit` first validates and normalises the whole matter (phone → E.164, USCC check digits,
channel rules, departments, classification) without writing, so bad input raises InvalidInput
and leaves no row behind; the classifier runs before the first statement, so no transaction (on
SQLite, no writer lock) is held while it computes. Then, in the caller's transaction:
Caller/Enterprise upsert, deadline, the ticket, dispatch, number, events, and the acceptance
notice + SMS. The usual path (automatic dispatch) is plain Core INSERTs (see
_insert_auto_dispatched, held equal to dispatch.auto_dispatch by tests/ticketing/test_perf_intake.py).

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
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import bindparam, case, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import class_mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from config.settings import Settings
from ticketing import events
from ticketing.errors import InvalidInput
from ticketing.models import (
    Caller,
    Channel,
    Department,
    Enterprise,
    SubOrder,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.numbering import next_number
from ticketing.phones import normalise_phone
from ticketing.schemas import TicketIn
from ticketing.sla import deadline_for
from ticketing.uscc import validate_uscc

TITLE_CHARS = 30
MAX_CHANNEL_DATA_KEYS = 50
MAX_CHANNEL_DATA_CHARS = 16000
MAX_ID_CHARS = 64
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SENTENCE_END = re.compile(r"[。！？!?；;]")


@dataclass(frozen=True)
class ChannelRule:
    """What one channel must carry in channel_data."""

    label: str
    required_any: tuple[str, ...] = ()  # at least one of these keys, non-empty
    id_fields: tuple[str, ...] = ()  # short identifiers: str/int, ≤ MAX_ID_CHARS
    url_fields: tuple[str, ...] = ()  # http(s) URLs when present
    dedupe_key: str | None = None  # same value → same ticket (idempotent intake)


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
DEDUPE_CHANNELS = tuple(c.value for c, r in CHANNEL_RULES.items() if r.dedupe_key)


def submit(
    session: Session, data: TicketIn | dict[str, Any], *, settings: Settings, actor: str
) -> Ticket:
    """Create (or, for a repeated call_id, return) the ticket for one matter from any channel."""
    data = _coerce(data)
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 64:
        raise InvalidInput("操作人无效", field="actor")
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
    wanted = _department_codes(data.departments)

    # The classifier fills a missing category/urgency (explicit values win) and suggests the
    # department auto-dispatch uses; it is skipped only when the departments are given. It needs
    # no database, so it runs before the first statement: the transaction (on SQLite the one
    # writer lock) is not held while it computes. Its verdict is discarded if the call_id turns
    # out to have a ticket already.
    prediction = None
    category, urgency = data.category, data.urgency
    if category is None or urgency is None or not wanted:
        prediction = _classify(
            title, content, channel_data, required=category is None or urgency is None
        )
        if prediction is not None:
            category = category or prediction.category
            urgency = urgency or prediction.urgency
    category, urgency = str(category), str(urgency)

    # ---- the database from here on ----
    departments = _check_departments(session, wanted)
    if rule.dedupe_key:
        existing = _find_by_call_id(session, str(channel_data[rule.dedupe_key]))
        if existing is not None:
            return existing

    # ---- everything below writes; all validation is done ----
    now = utcnow()
    deadline, basis = deadline_for(settings, category, urgency, now)
    conn = session.connection()
    dialect = conn.dialect.name
    caller_id = _upsert_caller(conn, dialect, phone, submitter_name) if phone else None
    enterprise_id = _upsert_enterprise(conn, dialect, uscc, enterprise_name) if uscc else None
    values: dict[str, Any] = {
        **_TICKET_DEFAULTS,
        "number": _provisional_number(),
        "channel": str(data.channel),
        "title": title,
        "content": content,
        "category": category,
        "urgency": urgency,
        "status": TicketStatus.pending_dispatch.value,
        "suggested_department": getattr(prediction, "department", None),
        "classifier_confidence": getattr(prediction, "confidence", None),
        "enterprise_id": enterprise_id,
        "caller_id": caller_id,
        "submitter_name": submitter_name,
        "submitter_phone": phone,
        "channel_data": channel_data,
        "sla_basis": basis,
        "deadline_at": deadline,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }
    created = {
        "channel": values["channel"],
        "number": None,  # issued below
        "category": category,
        "urgency": urgency,
        "classified": prediction is not None,
        "confidence": values["classifier_confidence"],
        "suggested_department": values["suggested_department"],
        "deadline": deadline,
    }
    dispatching = _dispatch_module()
    if departments or dispatching is None:
        # Named departments (a dispatcher at intake): the ORM dispatch path, as any later dispatch.
        values["number"] = created["number"] = next_number(session, settings, now)
        values["id"] = conn.execute(_TICKET_INSERT, values).scalar_one()
        ticket = _persistent(session, Ticket, values)
        events.record(session, ticket.id, actor, "created", **created)
        if dispatching is None:
            if departments:
                raise RuntimeError("ticketing.dispatch is not installed; cannot dispatch")
            ticket.dispatch_mode = "manual"  # waits for a dispatcher
        else:
            dispatching.dispatch(session, settings, ticket, departments, actor=actor)
    else:
        ticket = _insert_auto_dispatched(
            session, conn, settings, dispatching, values, created, prediction, actor, now
        )
    if data.send_notice:
        from ticketing.notices import create_acceptance_notice

        create_acceptance_notice(session, settings, ticket)
    return ticket


_M = TypeVar("_M", Ticket, SubOrder)
_TICKET_TABLE = Ticket.__table__  # type: ignore[attr-defined]
_TICKET_INSERT = _TICKET_TABLE.insert().returning(_TICKET_TABLE.c.id)
_SET_NUMBER = (
    _TICKET_TABLE.update()
    .where(_TICKET_TABLE.c.id == bindparam("ticket_id"))
    .values(number=bindparam("new_number"))
)
# Columns intake never sets, at their model defaults (every column is given, so the attached
# instance below has nothing left to load).
_TICKET_DEFAULTS: dict[str, Any] = {
    "warning": "none",
    "dispatch_mode": None,
    "round": 1,
    "reopen_count": 0,
    "responsible_person": None,
    "resolved_at": None,
    "closed_at": None,
}


def _provisional_number() -> str:
    """A unique placeholder (≤ 32 chars) until the real number is issued in the same transaction;
    no other transaction ever sees it."""
    return "~" + uuid.uuid4().hex[:31]


def _persistent(session: Session, model: type[_M], values: dict[str, Any]) -> _M:
    """The ORM instance of a row this transaction just INSERTed with Core, attached as if loaded.

    Cheaper than constructing + flushing the model (validation, unit of work) or re-selecting it;
    later ORM changes to it (auto-dispatch) are flushed as UPDATEs as usual.
    """
    obj = class_mapper(model).class_manager.new_instance()  # class_mapper: configured
    obj.__dict__.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


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
    return _CONTROL.sub("", s)


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
        size = len(json.dumps(cd, ensure_ascii=False))
    except (TypeError, ValueError):
        raise InvalidInput("渠道附加信息必须是 JSON 数据", field="channel_data") from None
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


def _check_departments(session: Session, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    found = set(
        session.exec(select(Department.code).where(Department.code.in_(wanted), Department.active))
    )
    missing = [c for c in wanted if c not in found]
    if missing:
        raise InvalidInput(
            f"未知或已停用的部门：{'、'.join(missing)}", field="departments", missing=missing
        )
    return wanted


def _classify(title: str, content: str, channel_data: dict[str, Any], *, required: bool):
    """The classifier's prediction; without the classifier installed only when nothing is missing."""
    try:
        from ticketing import classifier
    except ModuleNotFoundError as e:
        if e.name != "ticketing.classifier" or required:
            raise
        return None
    limit = getattr(classifier, "MAX_TEXT_CHARS", 20000)
    raw = channel_data.get("keywords")  # e.g. ASR keyword spotting
    keywords = None
    if isinstance(raw, list):
        keywords = [k.strip()[:50] for k in raw if isinstance(k, str) and k.strip()][:50]
    return classifier.get_classifier().predict(f"{title}\n{content}"[:limit], keywords or None)


_CALL_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:k))")


@lru_cache(maxsize=4)
def _call_id_query(dialect: str):
    if dialect == "postgresql":
        expr = "(channel_data ->> 'call_id')"
    else:
        expr = "json_extract(channel_data, '$.call_id')"
    chans = ", ".join(f"'{c}'" for c in DEDUPE_CHANNELS)
    return text(
        f"SELECT id FROM ticket WHERE {expr} = :cid AND channel IN ({chans}) ORDER BY id LIMIT 1"
    )


def _find_by_call_id(session: Session, call_id: str) -> Ticket | None:
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # serialise intakes of the same call (a retried job racing the original)
        conn.execute(_CALL_LOCK, {"k": f"ticket-call:{call_id}"})
    # (SQLite: BEGIN IMMEDIATE already serialises writers)
    row = conn.execute(_call_id_query(dialect), {"cid": call_id}).first()
    return session.get(Ticket, row[0]) if row else None


# ---- writes ----


def _insert(dialect: str, model):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


@lru_cache(maxsize=4)
def _caller_upsert(dialect: str):
    """Built once per dialect with bind parameters (rebuilding it per intake cost ~0.4 ms)."""
    table = Caller.__table__  # type: ignore[attr-defined]
    stmt = _insert(dialect, table).values(
        phone=bindparam("phone"), name=bindparam("name"), created_at=bindparam("created_at")
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["phone"],
        set_={"name": func.coalesce(stmt.excluded.name, table.c.name)},
    )
    return stmt.returning(table.c.id)


def _upsert_caller(conn: Connection, dialect: str, phone: str, name: str | None) -> int:
    """One statement: insert or (re)name, returning the id either way."""
    params = {"phone": phone, "name": name, "created_at": utcnow()}
    return conn.execute(_caller_upsert(dialect), params).scalar_one()


def _upsert_enterprise(conn: Connection, dialect: str, uscc: str, name: str | None) -> int:
    """One statement: insert, or fill/update the name when one is given; returns the id."""
    table = Enterprise.__table__  # type: ignore[attr-defined]
    stmt = _insert(dialect, table).values(uscc=uscc, name=name or "", created_at=utcnow())
    stmt = stmt.on_conflict_do_update(
        index_elements=["uscc"],
        set_={"name": case((stmt.excluded.name != "", stmt.excluded.name), else_=table.c.name)},
    )
    return conn.execute(stmt.returning(table.c.id)).scalar_one()


def _dispatch_module():
    """ticketing.dispatch, imported lazily (it imports intake's neighbours); None if absent."""
    try:
        from ticketing import dispatch as dispatching
    except ModuleNotFoundError as e:
        if e.name != "ticketing.dispatch":
            raise
        return None
    return dispatching


_SUBORDER_TABLE = SubOrder.__table__  # type: ignore[attr-defined]
_SUBORDER_INSERT = _SUBORDER_TABLE.insert().returning(_SUBORDER_TABLE.c.id)
_SUBORDER_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "accepted_at": None,
    "replied_at": None,
    "reply": None,
    "return_reason": None,
    "extension_until": None,
    "extension_reason": None,
    "handoff_status": None,
    "external_ref": None,
}


def _insert_auto_dispatched(
    session: Session,
    conn: Connection,
    settings: Settings,
    dispatching: Any,
    values: dict[str, Any],
    created: dict[str, Any],
    prediction: Any,
    actor: str,
    now: datetime,
) -> Ticket:
    """A new ticket with its automatic first dispatch, written as plain INSERTs.

    The same outcome, rows and events as inserting the ticket pending and calling
    `dispatch.auto_dispatch(..., created_here=True)` — the rule, threshold and department checks
    are dispatch's own functions; tests/ticketing/test_perf_intake.py holds the two paths equal —
    but the ticket is inserted already in its final state, each sub-order with one INSERT, and
    the events with one executemany: no ORM unit of work, no UPDATE of the row just inserted.
    """
    confidence = dispatching._confidence(getattr(prediction, "confidence", None))
    suggested = getattr(prediction, "department", None) or None
    threshold = dispatching.classifier_threshold(settings)
    rule = dispatching.match_rule(settings, f"{values['title'] or ''}\n{values['content'] or ''}")
    codes: list[str] = []
    basis: dict[str, Any] = {}
    found: dict[str, Department] = {}
    reason = None
    if rule is not None:
        found = dispatching._cached_departments(session, rule.departments)
        bad = dispatching._unusable_in(found, rule.departments)
        if not bad:
            codes = dispatching._clean_codes(list(rule.departments))
            basis = {"basis": "rule", "rule": rule.name, "keywords": list(rule.hits)}
        else:
            reason = f"路由规则 {rule.name} 指向的部门不存在或已停用：{'、'.join(bad)}"
    elif confidence >= threshold and suggested:
        found = dispatching._cached_departments(session, [suggested])
        bad = dispatching._unusable_in(found, [suggested])
        if not bad:
            codes = [suggested]
            basis = {"basis": "classifier", "confidence": confidence, "threshold": threshold}
        else:
            reason = f"分类建议的部门 {suggested} 不存在或已停用"
    elif not suggested:
        reason = "分类器未给出建议部门"
    else:
        reason = f"分类置信度 {confidence:.2f} 低于阈值 {threshold:.2f}"

    values["suggested_department"] = suggested
    values["classifier_confidence"] = confidence
    values["updated_at"] = utcnow()
    if codes:
        values["status"] = TicketStatus.dispatched.value
        values["dispatch_mode"] = "auto"
    else:
        values["dispatch_mode"] = "manual"
    values["id"] = ticket_id = conn.execute(_TICKET_INSERT, values).scalar_one()
    ticket = _persistent(session, Ticket, values)
    from ticketing import handoff

    due = values["deadline_at"]
    dispatched_at = utcnow()
    subs: list[tuple[int, str, bool]] = []
    for code in codes:
        sub = {
            **_SUBORDER_DEFAULTS,
            "ticket_id": ticket_id,
            "department_code": code,
            "round": values["round"],
            "status": SubOrderStatus.dispatched.value,
            "deadline_at": due,
            "dispatched_by": actor,
            "dispatched_at": dispatched_at,
        }
        sub["id"] = conn.execute(_SUBORDER_INSERT, sub).scalar_one()
        so = _persistent(session, SubOrder, sub)
        subs.append((sub["id"], code, handoff.schedule(session, settings, ticket, so, found[code])))

    # The number last: on PostgreSQL the counter row stays locked from here to COMMIT, so only
    # this UPDATE and the events INSERT run while other intakes wait for it.
    number = next_number(session, settings, now)
    conn.execute(_SET_NUMBER, {"ticket_id": ticket_id, "new_number": number})
    set_committed_value(ticket, "number", number)
    values["number"] = created["number"] = number

    rows = [events.entry(ticket_id, actor, "created", **created)]
    if not codes:
        rows.append(
            events.entry(
                ticket_id,
                actor,
                "manual_dispatch_required",
                reason=reason,
                confidence=confidence,
                threshold=threshold,
                suggested_department=suggested,
                rule=rule.name if rule else None,
            )
        )
    else:
        rows.append(
            events.entry(
                ticket_id,
                actor,
                "dispatched",
                **{
                    "from": TicketStatus.pending_dispatch.value,
                    "to": TicketStatus.dispatched.value,
                },
                mode="auto",
                departments=codes,
                round=values["round"],
                **basis,
            )
        )
        rows.extend(
            events.entry(
                ticket_id,
                actor,
                "suborder_dispatched",
                suborder_id=sub_id,
                department=code,
                deadline=due,
                mode="auto",
                instructions=None,
                handoff=queued,
                beyond_ticket_deadline=False,
            )
            for sub_id, code, queued in subs
        )
    events.record_all(session, rows)
    return ticket
