"""Request and response models of the REST API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from config.settings import get_settings
from ticketing import Category, Rating, Role, Urgency, detail_time


@lru_cache(maxsize=1)
def service_zone() -> tzinfo:
    """The service's time zone (settings.timezone, Asia/Shanghai by default)."""
    return ZoneInfo(get_settings().timezone)


def with_offset(value: datetime) -> datetime:
    """Stored times are naive UTC: the API says so, in the service's time zone, with its offset
    (ISO 8601, e.g. 2026-12-07T09:00:00+08:00), as every time it answers."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(service_zone())


# Every time the API answers (inputs stay `datetime`: an offset is honoured, naive means UTC)
Instant = Annotated[datetime, AfterValidator(with_offset)]


def detail_with_offset(value: Any) -> Any:
    """An event's detail with every time in it said as `with_offset` says times (older rows hold
    naive UTC text: ticketing.events.detail_time reads it as UTC)."""
    if isinstance(value, dict):
        return {k: detail_with_offset(v) for k, v in value.items()}
    if isinstance(value, list):
        return [detail_with_offset(v) for v in value]
    t = detail_time(value) if isinstance(value, str) else None
    return value if t is None else with_offset(t).isoformat()


EventDetail = Annotated[dict[str, Any], AfterValidator(detail_with_offset)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth / users -------------------------------------------------------------------------------
class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(_Out):
    id: int
    username: str
    display_name: str
    role: str
    department_code: str | None
    active: bool
    is_head: bool = False  # the department's head (单位负责人): acknowledges 督办
    created_at: Instant


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: Instant
    user: UserOut


class OkOut(BaseModel):
    ok: bool = True


class UserCreate(_In):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role
    department_code: str | None = Field(default=None, max_length=32)
    display_name: str = Field(default="", max_length=100)
    is_head: bool = False  # a handler only: the department's head, who acknowledges 督办


class UserUpdate(_In):
    role: Role | None = None
    department_code: str | None = Field(default=None, max_length=32)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
    display_name: str | None = Field(default=None, max_length=100)
    is_head: bool | None = None


# --- departments / tickets ----------------------------------------------------------------------
class DepartmentOut(_Out):
    code: str
    name: str
    head_name: str | None = None
    active: bool = True


class DepartmentAdminOut(DepartmentOut):
    """What the administrator sees; the hand-off secret only as set / not set."""

    head_phone: str | None = None
    leaders: list[str] = Field(default_factory=list)
    handoff_url: str | None = None
    has_handoff_secret: bool = False
    routing_keywords: list[str] = Field(default_factory=list)


class DepartmentChange(_In):
    """Fields to change (absent: kept). handoff_secret is write-only: "" removes it."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    head_name: str | None = Field(default=None, max_length=50)
    head_phone: str | None = Field(default=None, max_length=40)
    leaders: list[str] | None = Field(default=None, max_length=10)
    handoff_url: str | None = Field(default=None, max_length=500)
    handoff_secret: str | None = Field(default=None, max_length=200)
    active: bool | None = None
    routing_keywords: list[str] | None = Field(default=None, max_length=60)


class DepartmentCreate(DepartmentChange):
    code: str = Field(min_length=2, max_length=32)
    name: str | None = Field(default=None, min_length=1, max_length=100)


class SubOrderOut(_Out):
    id: int
    ticket_id: int
    department_code: str
    round: int
    status: str
    instructions: str | None = None
    deadline_at: Instant | None = None
    dispatched_by: str | None = None
    dispatched_at: Instant
    accepted_at: Instant | None = None
    replied_at: Instant | None = None
    reply: str | None = None
    return_reason: str | None = None
    extension_until: Instant | None = None
    extension_reason: str | None = None
    handoff_status: str | None = None
    external_ref: str | None = None
    role: str | None = Field(default=None, description="lead 主办 | assist 协办 | null (no lead)")
    return_handled_at: Instant | None = None
    return_resolution: str | None = Field(
        default=None, description="a return looked at by the dispatcher: redispatched | closed"
    )
    return_note: str | None = None
    released_at: Instant | None = None
    release_reason: str | None = None


class TicketOut(_Out):
    id: int
    number: str
    channel: str
    title: str
    content: str
    category: str
    urgency: str
    status: str
    warning: str
    dispatch_mode: str | None = None
    suggested_department: str | None = None
    classifier_confidence: float | None = None
    enterprise_id: int | None = None
    submitter_name: str | None = None
    submitter_phone: str | None = None
    channel_data: dict[str, Any] = Field(default_factory=dict)
    sla_basis: str | None = None
    deadline_at: Instant | None = None
    round: int
    reopen_count: int
    responsible_person: str | None = None
    created_by: str | None = None
    created_at: Instant
    updated_at: Instant
    resolved_at: Instant | None = None
    closed_at: Instant | None = None
    conduct: bool = Field(
        default=False, description="作风投诉: sent to the business-environment office, flagged"
    )
    conduct_accused: str | None = Field(
        default=None, description="the departments a conduct complaint is about (comma-separated)"
    )
    duplicate_of_id: int | None = Field(
        default=None, description="重复件: the first ticket of the chain this repeats"
    )
    simulated: bool = Field(default=False, description="filed by `callcenter demo` (模拟)")

    @computed_field(  # type: ignore[prop-decorator]
        description="a 重复件: the assessment counts its chain once (its first ticket counts)"
    )
    @property
    def counts_once(self) -> bool:
        return self.duplicate_of_id is not None


class EventOut(_Out):
    id: int
    suborder_id: int | None = None
    at: Instant
    actor: str
    action: str
    detail: EventDetail = Field(default_factory=dict)


class NoticeOut(_Out):
    """The confirm token is deliberately absent: it authorises the submitter, not staff."""

    id: int
    kind: str
    body: str
    created_at: Instant
    confirmed_at: Instant | None = None


class EvaluationOut(_Out):
    id: int
    round: int
    process: str
    timeliness: str
    result: str
    overall: str
    comment: str | None = None
    responsible_person: str | None = None
    submitted_by: str | None = None
    source: str = Field(description="submitter | staff (recorded on the caller's behalf)")
    channel: str = Field(description="link | sms (the submitter) | callback (回访 by staff)")
    superseded: bool = Field(description="a staff-recorded rating the submitter's own replaced")
    created_at: Instant


class RelatedTicket(_Out):
    """An earlier matter of the same submitter (重复件 history), shown to whoever sees this one."""

    number: str
    title: str
    status: str
    created_at: Instant
    closed_at: Instant | None = None
    replies: list[str] = Field(default_factory=list)


class TicketDetail(TicketOut):
    duplicate_of: RelatedTicket | None = None
    suborders: list[SubOrderOut]
    events: list[EventOut]
    notices: list[NoticeOut]
    evaluations: list[EvaluationOut]


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    page: int
    page_size: int


class EnterpriseOut(_Out):
    id: int
    uscc: str
    name: str
    industry: str | None = None
    address: str | None = None
    contact_phone: str | None = None
    created_at: Instant


class EnterpriseFile(BaseModel):
    enterprise: EnterpriseOut
    tickets: list[TicketOut]


class InboxItem(BaseModel):
    suborder: SubOrderOut
    ticket: TicketOut


class InboxOut(BaseModel):
    department: str
    items: list[InboxItem]
    total: int
    page: int
    page_size: int


# --- actions ------------------------------------------------------------------------------------
class DispatchIn(_In):
    departments: list[str] = Field(min_length=1, max_length=20)
    instructions: str | None = Field(default=None, max_length=2000)
    deadline: datetime | None = Field(
        default=None, description="sub-order deadline; default the ticket's committed deadline"
    )
    allow_beyond_ticket_deadline: bool = False
    lead: str | None = Field(
        default=None,
        max_length=32,
        description="主办: one of `departments`; the others (and the round's earlier ones) 协办. "
        "The lead's reply resolves the ticket once every 协办 replied or was released",
    )
    deadlines: dict[str, datetime] | None = Field(
        default=None, description="a department's own deadline (department code → time)"
    )


class ReclassifyIn(_In):
    """Correct the grade after intake; the committed deadline follows it from now."""

    category: Category | None = None
    urgency: Urgency | None = None
    reason: str = Field(min_length=1, max_length=1000)


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=1000)


class DispatchOut(BaseModel):
    ticket: TicketOut
    suborders: list[SubOrderOut]


class ReplyIn(_In):
    text: str = Field(min_length=1, max_length=5000)


class ReturnIn(_In):
    reason: str = Field(min_length=1, max_length=1000)


class ExtensionIn(_In):
    """Either amount + unit (hours / working_days) or until."""

    reason: str = Field(min_length=1, max_length=1000)
    amount: int | None = Field(default=None, ge=1, le=10000)
    unit: Literal["hours", "working_days"] | None = None
    until: datetime | None = None


class ExtensionDecisionIn(_In):
    approve: bool
    note: str | None = Field(default=None, max_length=1000)


class EvaluationIn(_In):
    process: Rating
    timeliness: Rating
    result: Rating
    comment: str | None = Field(default=None, max_length=2000)
    responsible_person: str | None = Field(default=None, max_length=100)


# --- public -------------------------------------------------------------------------------------
class PublicTicketIn(_In):
    """What the public web/mobile form may send; urgency and routing are decided by us."""

    channel: Literal["web", "mobile"]
    content: str = Field(min_length=1, max_length=20000)
    title: str | None = Field(default=None, max_length=200)
    category: Category | None = None
    submitter_name: str | None = Field(default=None, max_length=100)
    submitter_phone: str = Field(min_length=1, max_length=40)
    enterprise_uscc: str | None = Field(default=None, max_length=40)
    enterprise_name: str | None = Field(default=None, max_length=200)


class PublicTicketOut(BaseModel):
    number: str
    status: str
    deadline_at: Instant | None = None
    notice_token: str | None = Field(
        description="confirms the acceptance notice (that only; see evaluation_token)"
    )
    evaluation_token: str | None = Field(
        default=None, description="authorises the submitter's own evaluation (that only)"
    )
    sms_sent: bool = Field(
        default=False,
        description="the acceptance notice is texted (mainland mobile numbers only); otherwise "
        "`notice` is the submitter's copy, to show on the page",
    )
    notice: str | None = Field(default=None, description="the acceptance notice (受理告知书)")


class PublicEvaluationIn(EvaluationIn):
    evaluation_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the evaluation token (or the link's ?token=); the confirm token does not do",
    )


class ResolutionSummaryIn(_In):
    text: str = Field(min_length=1, max_length=1000, description="what the submitter is told")


class ResolutionSummaryOut(BaseModel):
    number: str
    sms_sent: bool = Field(description="texted (mainland mobiles only)")


class NoticeConfirmOut(BaseModel):
    ticket_number: str
    confirmed_at: Instant


class HealthOut(BaseModel):
    status: Literal["ok", "down"]
    checks: dict[str, str]
    pbx: dict[str, dict[str, Any]] = {}  # per PBX: ok | degraded | unknown, since, detail
    agi: dict[str, Any] = {}  # the FastAGI server's heartbeat: ok | degraded, since
