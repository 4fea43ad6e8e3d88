"""§14 escalation: 催办 (remind), 督办 (supervise), 专办 (special), recorded and delivered.

A warning level first reached on a step sets off the kinds sla.yaml `escalation.on_level` lists
for it (督办 only on the steps in supervise_steps, 专办 on special_steps). Each automatic one has a
unique dedup_key (kind, clock, round, step, level, department): a second scan racing the first, or
the same level reached again on the same step, raises nothing twice. A supervisor or leader can
raise a 督办 by hand on any ticket, with a note and a deadline.

Recipients come from departments.yaml: 催办 the department's duty_phone (else head_phone), 督办 the
department head (who must acknowledge it: `acknowledge`), 专办 the city_leaders and the coordinator
(escalation.special_coordinator, reassigned by a leader on the red board). Each is an event on the
ticket and an SMS through the outbox (ticketing.notify: written in this transaction, delivered
after commit, transient failures retried, a lost enqueue re-queued by requeue_lost_work). In the
configured quiet hours the SMS waits (notify_after) unless the level is red or overdue;
`send_held` delivers held ones when the quiet hours end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.bulk import insert_rows
from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ticketing.models import (
    Department,
    Escalation,
    EscalationKind,
    SubOrder,
    SubOrderStatus,
    Ticket,
    utcnow,
)
from ticketing.notify import send_sms_many
from ticketing.sla import to_local, to_utc_naive
from ticketing.sla_levels import LEVEL_LABELS, STEP_LABELS
from ticketing.text import normalise_text

log = structlog.get_logger("ticketing.escalation")
K = EscalationKind
KIND_LABELS = {K.remind: "催办", K.supervise: "督办", K.special: "专办"}
STATUS_LABELS = {"open": "待处理", "acknowledged": "已确认", "closed": "已结束"}
EXEMPT_LEVELS = frozenset({"red", "overdue"})  # never held by quiet hours
_E = Escalation.__table__  # type: ignore[attr-defined]


def _cfg(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "sla.yaml").get("escalation") or {}


def _dept_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    data = load_yaml(settings, "departments.yaml")
    return {str(d.get("code")): d for d in data.get("departments") or [] if isinstance(d, dict)}


def _leaders(settings: Settings) -> list[dict[str, Any]]:
    return [x for x in load_yaml(settings, "departments.yaml").get("city_leaders") or [] if x]


# ---------------------------------------------------------------- automatic


def escalate_level(
    session: Session,
    settings: Settings,
    facts: Any,
    level: str,
    now: datetime,
    *,
    deliver: bool = True,
) -> list[Made]:
    """The escalations a level first reached on a clock sets off (see the module rule)."""
    return escalate_many(session, settings, [(facts, level)], now, deliver=deliver)


@dataclass(slots=True)
class Made:
    """An automatic escalation just inserted, as plain values (the round reads no ORM rows)."""

    id: int
    ticket_id: int
    suborder_id: int | None
    department_code: str | None
    kind: str
    level: str
    step: str
    trigger: str
    coordinator: str | None
    note: str | None
    due_at: datetime | None
    notify_after: datetime | None
    notified_at: datetime | None = None


def escalate_many(
    session: Session,
    settings: Settings,
    items: list[tuple[Any, str]],
    now: datetime,
    *,
    deliver: bool = True,
) -> list[Made]:
    """escalate_level for many clocks at once (a scan round): one multi-row insert that skips the
    dedup keys already taken, one batch of events, one batch of SMS. deliver=False: the SMS wait
    for the next round."""
    cfg = _cfg(settings)
    on_level = cfg.get("on_level") or {}
    sup_steps = cfg.get("supervise_steps") or ["finish", "ticket"]
    spec_steps = cfg.get("special_steps") or ["ticket"]
    coordinator: list[str | None] = []  # looked up once, when a 专办 needs it
    quiet: list[datetime | None] = []  # quiet_until(now), looked up once when needed
    live = _live_departments_many(
        session, {(f.ticket_id, f.round) for f, _level in items if f.kind != "suborder"}
    )
    planned: dict[str, dict[str, Any]] = {}
    for facts, level in items:
        step = facts.step or "ticket"
        kinds = [str(k) for k in on_level.get(level) or []]
        kinds = [
            k
            for k in kinds
            if not (k == K.supervise and step not in sup_steps)
            and not (k == K.special and step not in spec_steps)
        ]
        if not kinds:
            continue
        if facts.kind == "suborder":
            departments: list[str | None] = [facts.department]
            suborder_id = facts.id
        else:
            departments = list(live.get((facts.ticket_id, facts.round), [])) or [None]
            suborder_id = None
        for kind in kinds:
            for dept in [None] if kind == K.special else departments:
                if kind == K.remind and dept is None:
                    continue  # nobody to remind before a department has it
                key = (
                    f"{kind}:{facts.kind[0]}{facts.id}:r{facts.round}:{step}:{level}:{dept or '-'}"
                )
                if kind == K.special and not coordinator:
                    coordinator.append(_default_coordinator(session, settings))
                held = None
                if level not in EXEMPT_LEVELS:
                    if not quiet:
                        quiet.append(quiet_until(settings, now))
                    held = quiet[0]
                planned[key] = {
                    "ticket_id": facts.ticket_id,
                    "suborder_id": suborder_id,
                    "department_code": dept,
                    "kind": kind,
                    "level": level,
                    "step": step,
                    "trigger": "auto",
                    "dedup_key": key,
                    "note": None,
                    "due_at": None,
                    "status": "closed" if kind == K.remind else "open",
                    "coordinator": coordinator[0] if kind == K.special else None,
                    "created_by": "system",
                    "created_at": now,
                    "acknowledged_by": None,
                    "acknowledged_at": None,
                    "notify_after": held if held is not None or deliver else now,
                    # sent in this transaction (_announce_many): marked so at the insert
                    "notified_at": None if held is not None or not deliver else now,
                }
    if not planned:
        return []
    # the unique dedup_key decides: a key another scan (or an earlier round) inserted first is
    # skipped by the database itself, and only the rows returned here are announced
    ids = {
        str(key): int(id_)
        for id_, key in insert_rows(
            session, _E, list(planned.values()), returning=("id", "dedup_key"), unique="dedup_key"
        )
    }
    made = [
        Made(
            id=ids[key],
            ticket_id=v["ticket_id"],
            suborder_id=v["suborder_id"],
            department_code=v["department_code"],
            kind=v["kind"],
            level=v["level"],
            step=v["step"],
            trigger=v["trigger"],
            coordinator=v["coordinator"],
            note=None,
            due_at=None,
            notify_after=v["notify_after"],
            notified_at=v["notified_at"],
        )
        for key, v in planned.items()
        if key in ids
    ]
    _announce_many(session, settings, made, now)
    return made


def _live_departments_many(
    session: Session, pairs: set[tuple[int, int]]
) -> dict[tuple[int, int], list[str]]:
    """Each (ticket, round)'s live departments, in one query for the lot."""
    out: dict[tuple[int, int], list[str]] = {}
    if not pairs:
        return out
    so = SubOrder.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(so.c.ticket_id, so.c.round, so.c.department_code)
        .where(
            so.c.ticket_id.in_({t for t, _r in pairs}),
            so.c.status != SubOrderStatus.returned,
        )
        .order_by(so.c.id)
    ).all()
    for t, r, code in rows:
        if (t, r) in pairs and code not in out.setdefault((t, r), []):
            out[(t, r)].append(code)
    return out


def _insert_once(session: Session, esc: Escalation) -> bool:
    """Insert unless its dedup_key exists (another scan was first): True when inserted."""
    if esc.dedup_key is not None:
        exists = session.exec(
            select(Escalation.id).where(Escalation.dedup_key == esc.dedup_key)
        ).first()
        if exists is not None:
            return False
    try:
        with session.begin_nested():
            session.add(esc)
            session.flush()
    except IntegrityError:
        return False
    return True


def _live_departments(session: Session, ticket_id: int, round_no: int) -> list[str]:
    rows = session.exec(
        select(SubOrder.department_code).where(
            SubOrder.ticket_id == ticket_id,
            SubOrder.round == round_no,
            SubOrder.status != SubOrderStatus.returned,
        )
    )
    return list(dict.fromkeys(rows))


def _default_coordinator(session: Session, settings: Settings) -> str | None:
    code = _cfg(settings).get("special_coordinator")
    if not code:
        return None
    d = session.exec(select(Department).where(Department.code == str(code))).first()
    if d is None:
        return str(code)
    return f"{d.name}{d.head_name or ''}"[:100]


# ---------------------------------------------------------------- manual 督办


def supervise(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    *,
    actor: str,
    note: str | None,
    due_at: datetime | None,
) -> list[Escalation]:
    """Manual 督办 on any ticket: one per live department of the current round (else one for the
    hotline itself), each for its head to acknowledge by `due_at`."""
    text = normalise_text(note)
    if not text:
        raise InvalidInput("督办意见不能为空", field="note")
    if len(text) > 1000:
        raise InvalidInput("督办意见不能超过 1000 个字", field="note", max_length=1000)
    now = utcnow()
    due = to_utc_naive(due_at) if due_at is not None else None
    if due is not None and due <= now:
        raise InvalidInput("督办期限必须晚于当前时间", field="due_at")
    made: list[Escalation] = []
    depts: list[str | None] = list(_live_departments(session, ticket.id or 0, ticket.round))
    for dept in depts or [None]:
        esc = Escalation(
            ticket_id=ticket.id or 0,
            department_code=dept,
            kind=K.supervise,
            level=ticket.warning or "none",
            step="ticket",
            trigger="manual",
            note=text,
            due_at=due,
            created_by=actor[:64],
            created_at=now,
        )
        session.add(esc)
        session.flush()
        _announce(session, settings, esc, now, actor=actor)
        made.append(esc)
    return made


def raise_for_redo(
    session: Session, settings: Settings, ticket: Ticket, rounds: int
) -> list[Escalation]:
    """重办 reached the configured number of rounds: 督办 automatically, once per round count."""
    now = utcnow()
    made: list[Escalation] = []
    depts: list[str | None] = list(_live_departments(session, ticket.id or 0, ticket.round))
    for dept in depts or [None]:
        esc = Escalation(
            ticket_id=ticket.id or 0,
            department_code=dept,
            kind=K.supervise,
            level=ticket.warning or "none",
            step="ticket",
            trigger="redo",
            dedup_key=f"supervise:redo:t{ticket.id}:n{rounds}:{dept or '-'}",
            note=f"不满意重办已达 {rounds} 轮",
            created_at=now,
        )
        if _insert_once(session, esc):
            _announce(session, settings, esc, now)
            made.append(esc)
    return made


# ---------------------------------------------------------------- acknowledge / coordinate


def get_escalation(session: Session, escalation_id: int) -> Escalation:
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        raise NotFound(f"督办/专办记录不存在：{escalation_id}", escalation_id=escalation_id)
    return esc


def acknowledge(
    session: Session,
    escalation_id: int,
    *,
    actor: str,
    department: str | None,
    head: bool,
    note: str | None = None,
) -> Escalation:
    """The unit head confirms a 督办. department: the handler's own (None: an admin or
    supervisor, any department); head: whether that handler is its department's head
    (User.is_head): a handler who is not cannot acknowledge."""
    esc = get_escalation(session, escalation_id)
    if department is not None and esc.department_code != department:
        raise NotFound(f"督办/专办记录不存在：{escalation_id}", escalation_id=escalation_id)
    if department is not None and not head:
        raise PermissionDenied(
            "只有单位负责人可以确认督办", code="not_head", escalation_id=escalation_id
        )
    if esc.kind != K.supervise:
        raise Conflict("只有督办需要单位负责人确认", code="not_supervision", kind=esc.kind)
    if esc.status != "open":
        raise Conflict(
            f"该督办已{STATUS_LABELS.get(esc.status, esc.status)}，不能重复确认",
            code="already_acknowledged",
            status=esc.status,
        )
    text = normalise_text(note)[:1000] or None
    esc.status, esc.acknowledged_by, esc.acknowledged_at = "acknowledged", actor[:64], utcnow()
    session.add(esc)
    events.record(
        session,
        esc.ticket_id,
        actor,
        "supervision_acknowledged",
        escalation_id=esc.id,
        department=esc.department_code,
        note=text,
    )
    return esc


def assign_coordinator(
    session: Session, escalation_id: int, *, actor: str, coordinator: str
) -> Escalation:
    who = normalise_text(coordinator)
    if not who:
        raise InvalidInput("协调人不能为空", field="coordinator")
    if len(who) > 100:
        raise InvalidInput("协调人不能超过 100 个字", field="coordinator", max_length=100)
    esc = get_escalation(session, escalation_id)
    if esc.kind != K.special:
        raise Conflict("只有专办可以指定协调人", code="not_special", kind=esc.kind)
    before = esc.coordinator
    esc.coordinator = who
    session.add(esc)
    events.record(
        session,
        esc.ticket_id,
        actor,
        "coordinator_assigned",
        escalation_id=esc.id,
        previous=before,
        coordinator=who,
    )
    return esc


def close_special(session: Session, escalation_id: int, *, actor: str) -> Escalation:
    esc = get_escalation(session, escalation_id)
    if esc.kind != K.special or esc.status != "open":
        raise Conflict("该专办不在办理中", code="not_open", status=esc.status)
    esc.status = "closed"
    session.add(esc)
    events.record(session, esc.ticket_id, actor, "special_closed", escalation_id=esc.id)
    return esc


def escalations(
    session: Session,
    *,
    kind: str | None = None,
    status: str | None = None,
    department: str | None = None,
    ticket_id: int | None = None,
    limit: int = 200,
) -> list[tuple[Escalation, Ticket]]:
    """Escalations with their tickets, newest first (a head's 督办 list, the red board)."""
    q = select(Escalation, Ticket).join(Ticket, col(Ticket.id) == col(Escalation.ticket_id))
    if kind:
        q = q.where(Escalation.kind == kind)
    if status:
        q = q.where(Escalation.status == status)
    if department is not None:
        q = q.where(Escalation.department_code == department)
    if ticket_id is not None:
        q = q.where(Escalation.ticket_id == ticket_id)
    q = q.order_by(col(Escalation.created_at).desc(), col(Escalation.id).desc()).limit(limit)
    return [(e, t) for e, t in session.exec(q)]


# ---------------------------------------------------------------- delivery


def _announce_many(session: Session, settings: Settings, escs: list[Made], now: datetime) -> None:
    """Events for new automatic escalations (notify_after already decided) and their SMS."""
    events.record_all(
        session,
        [
            events.entry(
                e.ticket_id,
                "system",
                f"escalation_{e.kind}",
                suborder_id=e.suborder_id,
                escalation_id=e.id,
                kind=e.kind,
                level=e.level,
                step=e.step,
                department=e.department_code,
                trigger=e.trigger,
                coordinator=e.coordinator,
                sms_held_until=e.notify_after if e.notify_after and e.notify_after > now else None,
            )
            for e in escs
        ],
    )
    _send_many(session, settings, [e for e in escs if e.notify_after is None], now)


def _announce(
    session: Session,
    settings: Settings,
    esc: Escalation,
    now: datetime,
    *,
    actor: str = "system",
    deliver: bool = True,
) -> None:
    """The event on the ticket, and the SMS now or after the quiet hours."""
    held = None if esc.level in EXEMPT_LEVELS else quiet_until(settings, now)
    if held is None and not deliver:
        held = now
    events.record(
        session,
        esc.ticket_id,
        actor,
        f"escalation_{esc.kind}",
        suborder_id=esc.suborder_id,
        escalation_id=esc.id,
        kind=esc.kind,
        level=esc.level,
        step=esc.step,
        department=esc.department_code,
        trigger=esc.trigger,
        note=esc.note,
        due_at=esc.due_at,
        coordinator=esc.coordinator,
        sms_held_until=held,
    )
    if held is not None:
        esc.notify_after = held
        session.add(esc)
        return
    _send(session, settings, esc, now)


def _send(session: Session, settings: Settings, esc: Escalation, now: datetime) -> int:
    return _send_many(session, settings, [esc], now)


def _send_many(session: Session, settings: Settings, escs: list[Any], now: datetime) -> int:
    """The SMS of these escalations (ORM rows or `Made`) through the outbox: tickets, sub-orders,
    departments and the recipients' directory read once for the lot, one outbox batch; each is
    marked notified. A wrong number in departments.yaml is recorded on the ticket, not fatal."""
    if not escs:
        return 0
    t_ = Ticket.__table__  # type: ignore[attr-defined]
    so_ = SubOrder.__table__  # type: ignore[attr-defined]
    d_ = Department.__table__  # type: ignore[attr-defined]
    tickets = {
        r.id: r
        for r in session.execute(
            select(t_.c.id, t_.c.number, t_.c.deadline_at).where(
                t_.c.id.in_({e.ticket_id for e in escs})
            )
        ).all()
    }
    sub_ids = {e.suborder_id for e in escs if e.suborder_id is not None}
    subs = (
        {
            r.id: r
            for r in session.execute(
                select(so_.c.id, so_.c.accept_due_at, so_.c.deadline_at).where(
                    so_.c.id.in_(sub_ids)
                )
            ).all()
        }
        if sub_ids
        else {}
    )
    names = {code: name for code, name in session.execute(select(d_.c.code, d_.c.name)).all()}
    templates = load_yaml(settings, "notices.yaml")
    directory = _directory(settings)
    outgoing: list[tuple[str, str, int | None, str]] = []
    skipped: list[dict[str, Any]] = []
    checked: dict[str, bool] = {}  # a recipient's number, validated once per batch
    for esc in escs:
        ticket = tickets.get(esc.ticket_id)
        phones = recipients(session, settings, esc, directory=directory)
        template = str(templates.get(f"{esc.kind}_sms") or "")
        if ticket is not None and template and phones:
            due = esc.due_at or ticket.deadline_at
            so = subs.get(esc.suborder_id) if esc.suborder_id is not None else None
            if so is not None:
                due = (so.accept_due_at if esc.step == "accept" else so.deadline_at) or due
            values = {
                "number": ticket.number,
                "department": names.get(esc.department_code or "", esc.department_code or "热线"),
                "step": STEP_LABELS.get(esc.step, esc.step),
                "level": LEVEL_LABELS.get(esc.level, esc.level),
                "deadline": to_local(settings, due).strftime("%m月%d日%H:%M") if due else "—",
                "note": esc.note or "",
                "coordinator": esc.coordinator or "—",
            }
            try:
                body = template.format_map(values)
            except (KeyError, IndexError, ValueError) as e:
                raise ConfigError(f"notices.yaml: {esc.kind}_sms has a bad placeholder: {e}") from e
            bad = 0
            for phone in phones:
                if phone not in checked:
                    checked[phone] = _valid_phone(phone)
                if not checked[phone]:
                    bad += 1
                    continue
                outgoing.append((phone, body, ticket.id, f"esc_{esc.kind}"))
            if bad:
                skipped.append(
                    events.entry(
                        esc.ticket_id,
                        "system",
                        "escalation_sms_skipped",
                        escalation_id=esc.id,
                        reason="departments.yaml 中的号码无效",
                        count=bad,
                    )
                )
    sent = send_sms_many(session, settings, outgoing)
    plain: list[int] = []
    for esc in escs:
        if isinstance(esc, Escalation):
            esc.notify_after, esc.notified_at = None, now
            session.add(esc)
        elif esc.notified_at is None:  # a new one is marked notified at its insert
            plain.append(esc.id)
            esc.notify_after, esc.notified_at = None, now
    for i in range(0, len(plain), 500):
        session.execute(
            _E.update()
            .where(_E.c.id.in_(plain[i : i + 500]))
            .values(notify_after=None, notified_at=now)
        )
    if skipped:
        log.warning("escalation_bad_recipients", escalations=len(skipped))
        events.record_all(session, skipped)
    return sent


def _valid_phone(phone: str) -> bool:
    from ticketing.phones import normalise_phone

    try:
        normalise_phone(phone)
    except InvalidInput:
        return False
    return True


Directory = tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, Any]]


def _directory(settings: Settings) -> Directory:
    """departments.yaml's entries and city leaders, sla.yaml's escalation section: read once."""
    return _dept_entries(settings), _leaders(settings), _cfg(settings)


def recipients(
    session: Session, settings: Settings, esc: Any, *, directory: Directory | None = None
) -> list[str]:
    entries, leaders, cfg = directory or _directory(settings)
    phones: list[str] = []
    if esc.kind == K.special:
        phones += [str(x["phone"]) for x in leaders if x.get("phone")]
        code = cfg.get("special_coordinator")
        head = (entries.get(str(code)) or {}).get("head_phone")
        if head:
            phones.append(str(head))
    elif esc.department_code:
        e = entries.get(esc.department_code) or {}
        phone = e.get("duty_phone") if esc.kind == K.remind else None
        phone = phone or e.get("head_phone")
        if phone:
            phones.append(str(phone))
    return list(dict.fromkeys(phones))


def quiet_until(settings: Settings, now: datetime) -> datetime | None:
    """End of the quiet hours (naive UTC) when `now` falls in them, else None."""
    q = _cfg(settings).get("quiet_hours") or {}
    if not q.get("start") or not q.get("end"):
        return None
    start, end = _hhmm(q["start"]), _hhmm(q["end"])
    local = to_local(settings, now)
    t = local.time().replace(tzinfo=None)
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return to_utc_naive(datetime.combine(day, end, tzinfo=local.tzinfo))


def _hhmm(v: Any) -> time:
    try:
        hh, mm = str(v).split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"sla.yaml escalation.quiet_hours: expected HH:MM, got {v!r}") from e


def send_held(session: Session, settings: Settings, now: datetime, *, limit: int = 500) -> int:
    """SMS held by the quiet hours whose time has come (the scan's round calls this)."""
    rows = list(
        session.exec(
            select(Escalation)
            .where(col(Escalation.notify_after).is_not(None), col(Escalation.notify_after) <= now)
            .order_by(col(Escalation.notify_after))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    _send_many(session, settings, rows, now)
    return len(rows)


def check_role_department(esc: Escalation, department: str | None) -> None:
    if department is not None and esc.department_code != department:
        raise PermissionDenied("无权处理其他部门的督办", escalation_id=esc.id)
