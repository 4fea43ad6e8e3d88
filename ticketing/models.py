"""The ticketing core's tables. Codes are English identifiers; Chinese labels live in `labels`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import AutoString, Field, SQLModel

from config.database import UTCField, utcnow


class Channel(StrEnum):
    hotline = "hotline"
    voicemail = "voicemail"
    web = "web"
    mobile = "mobile"
    window = "window"  # special-service window 特殊服务窗口
    opinion = "opinion"  # public opinion 网络舆情
    survey = "survey"  # field survey 调研反馈清单


class Category(StrEnum):
    enterprise = "enterprise"  # 企业服务
    government = "government"  # 政务服务
    complaint = "complaint"  # 投诉咨询 (policy enquiries route here)


class Urgency(StrEnum):
    general = "general"  # 一般
    urgent = "urgent"  # 较紧急
    critical = "critical"  # 紧要


class TicketStatus(StrEnum):
    pending_dispatch = "pending_dispatch"  # accepted, waiting for a dispatcher (manual)
    dispatched = "dispatched"  # sub-orders out, none replied yet or some still open
    resolved = "resolved"  # every live sub-order replied; waiting for evaluation
    closed = "closed"  # evaluated (satisfied / basically satisfied)
    reopened = "reopened"  # unsatisfied: back to the dispatcher for follow-up


class SubOrderStatus(StrEnum):
    dispatched = "dispatched"
    accepted = "accepted"
    extension_requested = "extension_requested"
    replied = "replied"  # done by the department
    returned = "returned"  # sent back to the dispatcher (terminal for this sub-order)
    released = "released"  # an assisting (协办) department let go by the dispatcher (terminal)


class SubOrderRole(StrEnum):
    """Parallel dispatch with a lead: 主办 resolves the ticket once every 协办 replied or was released."""

    lead = "lead"  # 主办
    assist = "assist"  # 协办


class Warning(StrEnum):
    none = "none"
    blue = "blue"
    yellow = "yellow"
    red = "red"
    overdue = "overdue"  # past the deadline: a state of its own (§13, ticketing.sla_levels)


class Role(StrEnum):
    admin = "admin"
    dispatcher = "dispatcher"
    agent = "agent"
    supervisor = "supervisor"
    handler = "handler"  # department handler
    leader = "leader"


class Rating(StrEnum):
    satisfied = "satisfied"  # 满意
    basic = "basically_satisfied"  # 基本满意
    unsatisfied = "unsatisfied"  # 不满意


# The ratings 满意率 counts as satisfied (满意 + 基本满意), the one definition for the monthly
# assessment, the hotspot analysis and the direct-answer figures.
SATISFIED_RATINGS: tuple[str, ...] = (Rating.satisfied.value, Rating.basic.value)


class Department(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    name: str = Field(max_length=100)
    head_name: str | None = Field(default=None, max_length=50)
    head_phone: str | None = Field(default=None, max_length=20)
    handoff_url: str | None = Field(default=None, max_length=500)
    active: bool = True
    # 分管领导 and other leaders told about the department's matters (names, free text)
    leaders: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # HMAC secret of this department's own system (§12 hand-off); write-only on every screen
    # stored encrypted (ticketing.sealed: "fernet:" + token, about 360 characters for the longest
    # secret): 512 on PostgreSQL; SQLite does not enforce a length, and widening it there would
    # rebuild a table other tables' foreign keys point at (0023_loose_ends)
    handoff_secret: str | None = Field(
        default=None,
        sa_column=Column(
            AutoString(length=200).with_variant(AutoString(length=512), "postgresql"),
            nullable=True,
        ),
    )
    # set when an administrator edits the row: departments.yaml no longer overwrites it
    edited_at: datetime | None = UTCField(default=None)


class AdminSetting(SQLModel, table=True):
    """A setting the administrator edits in the workspace (business hours, the holiday calendar,
    routing keywords), or a bare change stamp ("departments"). `version` grows on every write:
    each process compares it with what it has cached, so a change needs no restart."""

    __tablename__ = "admin_setting"
    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    version: int = 1
    updated_at: datetime = UTCField(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=64)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    display_name: str = Field(default="", max_length=100)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=20)
    department_code: str | None = Field(default=None, foreign_key="department.code", max_length=32)
    active: bool = True
    token_version: int = 1  # bump to revoke every issued token
    is_head: bool = False  # the department's head (单位负责人): acknowledges 督办
    created_at: datetime = UTCField(default_factory=utcnow)


class Enterprise(SQLModel, table=True):
    """一企一档: keyed by the 18-character unified social credit code."""

    id: int | None = Field(default=None, primary_key=True)
    uscc: str = Field(unique=True, index=True, max_length=18)
    name: str = Field(default="", max_length=200)
    industry: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=300)
    contact_phone: str | None = Field(default=None, max_length=20)
    created_at: datetime = UTCField(default_factory=utcnow)
    # The profile the proactive policy push matches on (issue #12, ticketing.profiles): GB/T 4754
    # code (section letter + up to 4 digits, e.g. C1311), size inputs (revenue and assets in 万元),
    # the size band derived from them (enterprise_size.yaml), town/district, tags, the mobile
    # pushes go to, and the enterprise's opt-out.
    industry_code: str | None = Field(default=None, max_length=5, index=True)
    employees: int | None = None
    revenue: float | None = None  # 营业收入, 万元
    assets: float | None = None  # 资产总额, 万元
    size_band: str | None = Field(default=None, max_length=8, index=True)
    region: str | None = Field(default=None, max_length=50, index=True)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    push_mobile: str | None = Field(default=None, max_length=20)
    push_opt_out: bool = False
    push_opt_out_at: datetime | None = UTCField(default=None)
    profile_updated_at: datetime | None = UTCField(default=None)
    profile_updated_by: str | None = Field(default=None, max_length=64)


class Caller(SQLModel, table=True):
    """A person who calls or writes in, keyed by E.164 phone."""

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(unique=True, index=True, max_length=20)
    name: str | None = Field(default=None, max_length=100)
    created_at: datetime = UTCField(default_factory=utcnow)


class TicketCounter(SQLModel, table=True):
    """Per-day sequence for ticket numbers; bumped by one atomic upsert … RETURNING."""

    day: str = Field(primary_key=True, max_length=8)
    value: int = 0


UNCOUNTED = "duplicate_of_id IS NOT NULL OR simulated"  # ix_ticket_uncounted's predicate


class Ticket(SQLModel, table=True):
    __table_args__ = (
        Index("ix_ticket_status_created", "status", "created_at"),
        Index("ix_ticket_category_created", "category", "created_at"),
        Index("ix_ticket_channel_created", "channel", "created_at"),
        Index("ix_ticket_warning_created", "warning", "created_at"),
        Index("uq_ticket_idempotency_key", "idempotency_key", unique=True),
        # 重复件: an intake looks up the same phone's recent tickets (ticketing.duplicates)
        Index("ix_ticket_phone_created", "submitter_phone", "created_at"),
        # the few tickets the assessment leaves out (重复件, simulated): its NOT IN reads them
        # from this index instead of scanning every ticket (ticketing.assessment.indicators)
        Index(
            "ix_ticket_uncounted",
            "id",
            postgresql_where=text(UNCOUNTED),
            sqlite_where=text(UNCOUNTED),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True, max_length=32)
    channel: str = Field(max_length=16)
    title: str = Field(max_length=200)
    content: str = Field(max_length=20000)
    category: str = Field(max_length=16)
    urgency: str = Field(default=Urgency.general, max_length=16)
    status: str = Field(default=TicketStatus.pending_dispatch, max_length=20)
    warning: str = Field(default="none", max_length=8)
    dispatch_mode: str | None = Field(default=None, max_length=8)  # auto | manual
    suggested_department: str | None = Field(default=None, max_length=32)
    classifier_confidence: float | None = None
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id", index=True)
    caller_id: int | None = Field(default=None, foreign_key="caller.id", index=True)
    submitter_name: str | None = Field(default=None, max_length=100)
    submitter_phone: str | None = Field(default=None, max_length=20)
    channel_data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    sla_basis: str | None = Field(default=None, max_length=40)  # e.g. "5 working_days"
    deadline_at: datetime | None = UTCField(default=None, index=True)
    round: int = 1  # evaluation round; bumped on reopen
    reopen_count: int = 0
    responsible_person: str | None = Field(default=None, max_length=100)
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = UTCField(default_factory=utcnow, index=True)
    updated_at: datetime = UTCField(default_factory=utcnow)
    resolved_at: datetime | None = UTCField(default=None)
    closed_at: datetime | None = UTCField(default=None)
    # "<actor>:<Idempotency-Key>" of the request that filed it: a repeat returns this ticket
    idempotency_key: str | None = Field(default=None, max_length=200)
    # 作风投诉 (刁难, 吃拿卡要 …): routed to the business-environment office, never to the accused
    conduct: bool = False
    conduct_accused: str | None = Field(default=None, max_length=200)  # comma-separated codes
    # 重复件: the earlier open (or recently closed) matter of the same submitter this repeats;
    # the assessment counts the chain once (the root has duplicate_of_id None)
    duplicate_of_id: int | None = Field(default=None, index=True)  # a ticket id (no FK: 0015)
    simulated: bool = False  # filed by `callcenter demo` (模拟)
    # §13 clocks (ticketing.sla_clocks): the next instant its warning level can change; due now
    # when written (so any insert path gets evaluated), NULL once nothing can change any more
    sla_next_at: datetime | None = UTCField(default_factory=utcnow, index=True)
    # the instants at which each level starts on the clock's step `sla_bounds_step` (computed
    # once when the step starts, ticketing.sla_clocks; NULL step: not computed yet)
    sla_blue_at: datetime | None = UTCField(default=None)
    sla_yellow_at: datetime | None = UTCField(default=None)
    sla_red_at: datetime | None = UTCField(default=None)
    sla_overdue_at: datetime | None = UTCField(default=None)
    sla_bounds_step: str | None = Field(default=None, max_length=8)


class SubOrder(SQLModel, table=True):
    """One department's share of a ticket (parallel dispatch = several live sub-orders)."""

    __table_args__ = (
        Index("ix_suborder_dept_status", "department_code", "status", "deadline_at"),
        # the department inbox: one department's sub-orders by deadline, paged
        Index("ix_suborder_dept_deadline", "department_code", "deadline_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    department_code: str = Field(foreign_key="department.code", max_length=32)
    round: int = 1
    status: str = Field(default=SubOrderStatus.dispatched, max_length=24)
    instructions: str | None = Field(default=None, max_length=2000)
    deadline_at: datetime | None = UTCField(default=None)
    dispatched_by: str | None = Field(default=None, max_length=64)
    dispatched_at: datetime = UTCField(default_factory=utcnow)
    accepted_at: datetime | None = UTCField(default=None)
    replied_at: datetime | None = UTCField(default=None)
    reply: str | None = Field(default=None, max_length=5000)
    return_reason: str | None = Field(default=None, max_length=1000)
    extension_until: datetime | None = UTCField(default=None)
    extension_reason: str | None = Field(default=None, max_length=1000)
    handoff_status: str | None = Field(default=None, max_length=16)  # queued|sent|failed|None
    external_ref: str | None = Field(default=None, max_length=100)
    role: str | None = Field(default=None, max_length=8)  # lead | assist | None (no lead)
    # a return awaits the dispatcher until handled: re-dispatched, or closed with a reason
    return_handled_at: datetime | None = UTCField(default=None)
    return_resolution: str | None = Field(default=None, max_length=16)  # redispatched | closed
    return_note: str | None = Field(default=None, max_length=1000)
    released_at: datetime | None = UTCField(default=None)
    release_reason: str | None = Field(default=None, max_length=1000)
    # §13 clocks (ticketing.sla_clocks): accept (签收) by accept_due_at, finish (办结) by
    # deadline_at; `warning` is the level reached on `warning_step` (accept | finish)
    accept_due_at: datetime | None = UTCField(default=None)
    warning: str = Field(default="none", max_length=8)
    warning_step: str | None = Field(default=None, max_length=8)
    sla_next_at: datetime | None = UTCField(default_factory=utcnow, index=True)
    # the instants at which each level starts on the clock's step `sla_bounds_step` (computed
    # once when the step starts, ticketing.sla_clocks; NULL step: not computed yet)
    sla_blue_at: datetime | None = UTCField(default=None)
    sla_yellow_at: datetime | None = UTCField(default=None)
    sla_red_at: datetime | None = UTCField(default=None)
    sla_overdue_at: datetime | None = UTCField(default=None)
    sla_bounds_step: str | None = Field(default=None, max_length=8)


class TicketEvent(SQLModel, table=True):
    """Append-only history: every state change, who did it and when."""

    # the monthly assessment reads one kind of event over a period (warnings, returns)
    __table_args__ = (Index("ix_ticketevent_action_at", "action", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    suborder_id: int | None = Field(default=None, foreign_key="suborder.id")
    at: datetime = UTCField(default_factory=utcnow)
    actor: str = Field(max_length=64)  # username, "system", "public", "dept:CODE"
    action: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Notice(SQLModel, table=True):
    """受理告知书 and other notices sent to the submitter; confirmable by token.

    The submitter's secrets never reach staff: `body` is the notice with its links redacted (what
    staff see), `sent_body` what the submitter was given. The two tokens are single-purpose and
    stored as SHA-256 hex digests only: `confirm_token` confirms receipt, `evaluation_token`
    authorises the submitter's own evaluation (ticketing.notices)."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    kind: str = Field(default="acceptance", max_length=20)
    body: str = Field(max_length=5000)
    sent_body: str | None = Field(default=None, max_length=5000)
    confirm_token: str = Field(unique=True, index=True, max_length=64)
    evaluation_token: str | None = Field(default=None, unique=True, index=True, max_length=64)
    created_at: datetime = UTCField(default_factory=utcnow)
    confirmed_at: datetime | None = UTCField(default=None)


class OutboxMessage(SQLModel, table=True):
    """Every outbound SMS: sent through Twilio when configured, otherwise kept as the logged outbox."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    to_phone: str = Field(max_length=20)
    body: str = Field(max_length=2000)
    kind: str = Field(default="sms", max_length=20)
    status: str = Field(default="pending", max_length=12)  # pending|sent|logged|failed
    provider: str | None = Field(default=None, max_length=20)
    provider_id: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = UTCField(default_factory=utcnow)
    sent_at: datetime | None = UTCField(default=None)


class EvaluationSource(StrEnum):
    submitter = "submitter"  # the submitter, by the evaluation link or an SMS reply
    staff = "staff"  # recorded by staff on the caller's behalf (an agent's 回访)
    default = "default"  # 默认满意: no rating within followup.default_after_days (sla.yaml)


class EvaluationChannel(StrEnum):
    link = "link"  # the submitter's evaluation link / public form (evaluation token)
    sms = "sms"  # the submitter's SMS reply
    callback = "callback"  # 回访: an agent's return call, recorded on the caller's behalf
    timeout = "timeout"  # no answer in time, counted as configured (默认满意)


class Evaluation(SQLModel, table=True):
    """满意度评价 on process, timeliness and result; per ticket and round, at most one from the
    submitter and one recorded by staff. The submitter's own rating supersedes a staff-recorded
    one of the same round (`superseded` is then set on the staff row; ticketing.evaluation)."""

    __table_args__ = (
        UniqueConstraint("ticket_id", "round", "source", name="uq_evaluation_round_source"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    round: int
    process: str = Field(max_length=24)
    timeliness: str = Field(max_length=24)
    result: str = Field(max_length=24)
    overall: str = Field(max_length=24)
    comment: str | None = Field(default=None, max_length=2000)
    responsible_person: str | None = Field(default=None, max_length=100)
    submitted_by: str | None = Field(default=None, max_length=64)
    source: str = Field(default=EvaluationSource.submitter, max_length=12)
    channel: str = Field(default=EvaluationChannel.link, max_length=12)
    superseded: bool = False
    created_at: datetime = UTCField(default_factory=utcnow)


class HandoffAttempt(SQLModel, table=True):
    """Outbound hand-off of a sub-order to an external system (§12), with its retries."""

    id: int | None = Field(default=None, primary_key=True)
    suborder_id: int = Field(foreign_key="suborder.id", index=True)
    url: str = Field(max_length=500)
    attempt: int = 1
    status_code: int | None = None
    ok: bool = False
    error: str | None = Field(default=None, max_length=1000)
    at: datetime = UTCField(default_factory=utcnow)


class CallbackTask(SQLModel, table=True):
    """A promise to call someone back: abandoned calls, after-hours voicemails, agent follow-ups."""

    __table_args__ = (
        Index("ix_callback_status_due", "status", "due_at"),
        UniqueConstraint("call_id", "reason", name="uq_callback_call_reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    phone: str = Field(max_length=20)  # E.164
    reason: str = Field(max_length=20)  # abandoned | voicemail | agent
    call_id: str | None = Field(
        default=None, index=True, max_length=64
    )  # unique per (call, reason)
    due_at: datetime = UTCField(default_factory=utcnow)
    status: str = Field(default="open", max_length=12)  # open | done | failed | cancelled
    attempts: int = 0
    assigned_to: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=1000)
    created_at: datetime = UTCField(default_factory=utcnow)
    done_at: datetime | None = UTCField(default=None)


class EscalationKind(StrEnum):
    remind = "remind"  # 催办: the department's handlers are reminded before a step runs out
    supervise = "supervise"  # 督办: the unit head is told and must acknowledge
    special = "special"  # 专办: the city leader's red board, with a coordinator


class Escalation(SQLModel, table=True):
    """One 催办/督办/专办 (§14). Automatic ones carry a dedup_key (kind, clock, round, step, level,
    department) that is unique, so two scans racing never raise the same one twice. The SMS to
    its recipients is pending while notify_after is set (quiet hours), sent (outbox) when due."""

    __table_args__ = (
        Index("ix_escalation_kind_status", "kind", "status", "created_at"),
        Index("ix_escalation_dept_kind_status", "department_code", "kind", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    suborder_id: int | None = Field(default=None, foreign_key="suborder.id")
    department_code: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=12)
    level: str = Field(default="none", max_length=8)
    step: str = Field(default="ticket", max_length=8)
    trigger: str = Field(default="auto", max_length=12)  # auto | manual | redo
    dedup_key: str | None = Field(default=None, unique=True, index=True, max_length=160)
    note: str | None = Field(default=None, max_length=1000)
    due_at: datetime | None = UTCField(default=None)  # a manual 督办's deadline
    status: str = Field(default="open", max_length=12)  # open | acknowledged | closed
    coordinator: str | None = Field(default=None, max_length=100)
    created_by: str = Field(default="system", max_length=64)
    created_at: datetime = UTCField(default_factory=utcnow)
    acknowledged_by: str | None = Field(default=None, max_length=64)
    acknowledged_at: datetime | None = UTCField(default=None)
    notify_after: datetime | None = UTCField(default=None, index=True)
    notified_at: datetime | None = UTCField(default=None)
