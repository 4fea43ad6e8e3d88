"""The assessment's indicators, each defined once: its rows (the population a department is
measured on), its hits (the numerator of a rate) or its measure (an average), as SQL over one of
three base row sets. The same definition makes the monthly aggregate (grouped SUM/COUNT, one query
per base) and the drill-down list of tickets behind a figure, so a department can check it.

Base row sets, all read "as of" the period's end (events and moves after it are not seen):
- suborder:   one row per sub-order (a department's share of a ticket), with its clocks;
- evaluation: one row per (rating, department whose reply was rated);
- warning:    one row per §13 level raised on a department's sub-order (the "warning" event).

Counting rules (documented once, here):
- A department is charged through its sub-orders only. A 直接答复 (answered at intake, no
  sub-order; ticketing.direct_answer) counts in no department's indicator; when it is dispatched
  after 不满意 the sub-orders from then on count as any other.
- A 重复件 (ticket.duplicate_of_id set: it repeats an earlier matter of the same submitter) is
  counted once: only the chain's first ticket counts (`counts_once`), its repeats in no indicator.
  A simulated ticket (`callcenter demo`) counts nowhere.
- A clock is counted in the period in which its outcome became known: the accept (签收) step when
  the department responded (accepted, or returned) or, failing that, when its accept deadline
  passed; the finish (办结) step when it replied or, failing that, when its deadline passed. So
  each clock counts exactly once, and a past month's figure cannot change with later events.
- A deadline is the one the department had at the period's end: an extension approved after it
  is not applied to that period (its event keeps the previous deadline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    func,
    literal,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from config.database import NaiveUTCDateTime
from ticketing.assessment.periods import Period
from ticketing.models import (
    SATISFIED_RATINGS,
    Evaluation,
    SubOrder,
    Ticket,
    TicketEvent,
)

SO = SubOrder.__table__  # type: ignore[attr-defined]
T = Ticket.__table__  # type: ignore[attr-defined]
E = TicketEvent.__table__  # type: ignore[attr-defined]
EV = Evaluation.__table__  # type: ignore[attr-defined]
RATE, COUNT, HOURS = "rate", "count", "hours"
SOURCES = ("suborder", "evaluation", "warning")


@dataclass(frozen=True)
class Parts:
    """What an indicator definition returns over a base subquery."""

    rows: ColumnElement[bool]  # the population (denominator / counted rows / averaged rows)
    hit: ColumnElement[bool] | None = None  # the numerator of a rate
    measure: ColumnElement[Any] | None = None  # seconds, averaged over `rows` (kind hours)


@dataclass(frozen=True)
class Indicator:
    code: str
    label: str
    source: str  # suborder | evaluation | warning
    kind: str  # rate | count | hours
    better: str  # higher | lower
    doc: str
    define: Callable[[Subquery, Period, str], Parts]
    appeal_under: str  # the indicator whose accepted appeals take rows out of this one
    explain: str = ""  # 口径: the definition as users read it (Chinese), beside `doc`

    def parts(self, b: Subquery, period: Period, dialect: str) -> Parts:
        return self.define(b, period, dialect)


INDICATORS: dict[str, Indicator] = {}


def indicator(
    code: str,
    label: str,
    *,
    source: str,
    kind: str,
    better: str = "higher",
    appeal_under: str | None = None,
    explain: str = "",
) -> Callable[[Callable[[Subquery, Period, str], Parts]], Callable[..., Parts]]:
    """Register the decorated definition; its docstring is the indicator's definition."""

    def register(fn: Callable[[Subquery, Period, str], Parts]) -> Callable[..., Parts]:
        doc = " ".join((fn.__doc__ or "").split())
        INDICATORS[code] = Indicator(
            code, label, source, kind, better, doc, fn, appeal_under or code, explain
        )
        return fn

    return register


# ---------------------------------------------------------------- dialect helpers


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    """later − earlier in seconds (a float), on PostgreSQL and SQLite alike."""
    if dialect == "postgresql":
        return type_coerce(func.extract("epoch", later - earlier), Float)
    return type_coerce((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float)


def _json_instant(value: Any, dialect: str) -> ColumnElement[Any]:
    """A naive-UTC ISO instant kept in an event's JSON detail, comparable with stored columns."""
    text = value.as_string()
    if dialect == "postgresql":
        return func.timezone("UTC", text.cast(postgresql.TIMESTAMP()))
    spaced = func.replace(text, "T", " ")  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"
    return case((func.length(spaced) == 19, spaced + ".000000"), else_=spaced)


def counted_ticket(ticket_id: Any) -> ColumnElement[bool]:
    """The tickets an assessment counts: not a 重复件 of an earlier one, not simulated. Written
    as NOT IN over the few that are not (one hashed lookup per row), not as a join of every
    ticket."""
    return ticket_id.not_in(
        select(T.c.id).where((T.c.duplicate_of_id.is_not(None)) | (T.c.simulated == true()))
    )


# ---------------------------------------------------------------- the three base row sets


def _of(column: Any, department: str | None) -> list[ColumnElement[bool]]:
    """The department filter of a base row set (none: every department)."""
    return [] if department is None else [column == department]


def suborder_base(
    period: Period,
    dialect: str,
    lookback_days: int,
    department: str | None = None,
    suborder_ids: Sequence[int] | None = None,
) -> Subquery:
    """Every counted sub-order dispatched before the period's end (and within the lookback); one
    department's only when `department` is given (inside the fenced subquery, where the planner
    can use it: a filter outside the fence would still build every department's rows); only
    the sub-orders `suborder_ids` when given (the portrait's kept slowest matters).

    The history it needs comes in by two grouped reads of the event index (action, at), joined
    by sub-order: each return's instant, and the deadline an extension approved after the end
    replaced (the first such approval: events are append-only, so the lowest id)."""
    returns = (
        select(E.c.suborder_id.label("sid"), func.min(E.c.at).label("at"))
        .where(E.c.action == "suborder_returned", E.c.at < period.end)
        .group_by(E.c.suborder_id)
        .subquery("ret")
    )
    first_later = (
        select(func.min(E.c.id).label("eid"))
        .where(E.c.action == "extension_approved", E.c.at >= period.end)
        .group_by(E.c.suborder_id)
        .subquery("first_later")
    )
    approval = E.alias("approval")
    moved = (
        select(
            approval.c.suborder_id.label("sid"),
            _json_instant(approval.c.detail["previous_deadline"], dialect).label("deadline"),
        )
        .select_from(approval.join(first_later, approval.c.id == first_later.c.eid))
        .subquery("moved")
    )
    deadline = type_coerce(func.coalesce(moved.c.deadline, SO.c.deadline_at), NaiveUTCDateTime)
    returned_at = returns.c.at
    accept_due = type_coerce(func.coalesce(SO.c.accept_due_at, deadline), NaiveUTCDateTime)
    # 重办: the department had replied in the round before (read for reopened tickets only)
    prev = SO.alias("prev")
    redone = (
        select(prev.c.ticket_id, prev.c.department_code, (prev.c.round + 1).label("next_round"))
        .where(
            prev.c.replied_at.is_not(None),
            prev.c.replied_at < period.end,
            prev.c.ticket_id.in_(select(T.c.id).where(T.c.round > 1)),
        )
        .distinct()
        .subquery("redone")
    )
    rework = redone.c.next_round.is_not(None)
    inner = (
        select(
            SO.c.id.label("so_id"),
            SO.c.ticket_id,
            SO.c.department_code.label("dept"),
            SO.c.round,
            SO.c.dispatched_at,
            SO.c.accepted_at,
            SO.c.replied_at,
            SO.c.released_at,
            accept_due.label("accept_due"),
            deadline.label("deadline"),
            type_coerce(returned_at, NaiveUTCDateTime).label("returned_at"),
            rework.label("rework"),
        )
        .select_from(
            SO.outerjoin(returns, returns.c.sid == SO.c.id)
            .outerjoin(moved, moved.c.sid == SO.c.id)
            .outerjoin(
                redone,
                and_(
                    redone.c.ticket_id == SO.c.ticket_id,
                    redone.c.department_code == SO.c.department_code,
                    redone.c.next_round == SO.c.round,
                ),
            )
        )
        .where(
            SO.c.dispatched_at < period.end,
            SO.c.dispatched_at >= period.start - timedelta(days=lookback_days),
            counted_ticket(SO.c.ticket_id),
            *_of(SO.c.department_code, department),
            *([] if suborder_ids is None else [SO.c.id.in_(list(suborder_ids))]),
        )
        .offset(0)  # an optimisation fence: the joined values are computed once per row
        .subquery("so_rows")
    )
    responded = func.coalesce(inner.c.accepted_at, inner.c.returned_at)
    accept_decided = case(
        (and_(responded.is_not(None), responded <= inner.c.accept_due), responded),
        else_=inner.c.accept_due,
    )
    finish_decided = case(
        (
            and_(inner.c.replied_at.is_not(None), inner.c.replied_at <= inner.c.deadline),
            inner.c.replied_at,
        ),
        else_=inner.c.deadline,
    )
    return (
        select(
            *inner.c,
            type_coerce(responded, NaiveUTCDateTime).label("responded_at"),
            type_coerce(accept_decided, NaiveUTCDateTime).label("accept_decided"),
            type_coerce(finish_decided, NaiveUTCDateTime).label("finish_decided"),
        )
        .offset(0)
        .subquery("b")
    )  # fenced too: the derived instants are computed once per row


def evaluation_base(period: Period, department: str | None = None) -> Subquery:
    """The ratings given in the period, one row per department whose reply was rated.

    The rating of a round is the submitter's own when there is one by the period's end, else the
    staff-recorded one (回访) or the default (默认满意). (Staff cannot record over a submitter's
    rating, so a staff rating of the period loses only to a submitter's of the same period.)
    It is attributed to every department that had replied in that round before the rating."""
    submitter = case((EV.c.source == "submitter", 1), else_=0)
    rated = (
        select(
            EV.c.ticket_id,
            EV.c.round,
            EV.c.overall,
            EV.c.source,
            EV.c.created_at,
            func.sum(submitter).over(partition_by=(EV.c.ticket_id, EV.c.round)).label("submitters"),
        )
        .where(EV.c.created_at >= period.start, EV.c.created_at < period.end)
        .subquery("rated")
    )
    return (
        select(
            SO.c.id.label("so_id"),
            SO.c.ticket_id,
            SO.c.department_code.label("dept"),
            rated.c.overall,
            rated.c.source,
            rated.c.created_at.label("at"),
        )
        .select_from(
            rated.join(
                SO,
                and_(
                    SO.c.ticket_id == rated.c.ticket_id,
                    SO.c.round == rated.c.round,
                    SO.c.replied_at.is_not(None),
                    SO.c.replied_at <= rated.c.created_at,
                    *_of(SO.c.department_code, department),
                ),
            )
        )
        .where(
            (rated.c.source == "submitter") | (rated.c.submitters == 0),
            counted_ticket(rated.c.ticket_id),
        )
        .subquery("b")
    )


def warning_base(period: Period, department: str | None = None) -> Subquery:
    """The §13 levels raised on departments' sub-orders in the period ("warning" events)."""
    return (
        select(
            SO.c.id.label("so_id"),
            SO.c.ticket_id,
            SO.c.department_code.label("dept"),
            E.c.detail["to"].as_string().label("level"),
            E.c.detail["step"].as_string().label("step"),
            E.c.at,
        )
        .select_from(E.join(SO, SO.c.id == E.c.suborder_id))
        .where(
            E.c.action == "warning",
            E.c.at >= period.start,
            E.c.at < period.end,
            counted_ticket(E.c.ticket_id),
            *_of(SO.c.department_code, department),
        )
        .subquery("b")
    )


def in_period(col: Any, period: Period) -> ColumnElement[bool]:
    return and_(col >= period.start, col < period.end)


# ---------------------------------------------------------------- the indicators


@indicator(
    "volume",
    "派单量",
    source="suborder",
    kind=COUNT,
    explain="本期派给本部门的子工单数（并行派单各部门各计一件）",
)
def volume(b: Subquery, p: Period, dialect: str) -> Parts:
    """派单量: the sub-orders dispatched to the department in the period (one per ticket and
    round; a parallel dispatch gives each department its own)."""
    return Parts(rows=in_period(b.c.dispatched_at, p))


@indicator(
    "accept_on_time",
    "及时签收率",
    source="suborder",
    kind=RATE,
    explain="签收时限内签收（或说明理由退回）的子工单 ÷ 本期签收环节有结果的子工单（已签收，或签收时限已过）",
)
def accept_on_time(b: Subquery, p: Period, dialect: str) -> Parts:
    """及时签收率 = sub-orders the department responded to (签收, or 退回 with a reason) by their
    accept deadline (sla.yaml accept_policy; the finish deadline when none) ÷ sub-orders whose
    accept step was decided in the period (responded in time, or the accept deadline passed).
    A sub-order released (解除协办) before that is not counted."""
    rows = and_(
        b.c.accept_due.is_not(None),
        in_period(b.c.accept_decided, p),
        ~and_(b.c.released_at.is_not(None), b.c.released_at < b.c.accept_decided),
    )
    hit = and_(b.c.responded_at.is_not(None), b.c.responded_at <= b.c.accept_due)
    return Parts(rows=rows, hit=hit)


def _finish_rows(b: Subquery, p: Period) -> ColumnElement[bool]:
    return and_(
        b.c.deadline.is_not(None),
        in_period(b.c.finish_decided, p),
        ~and_(b.c.returned_at.is_not(None), b.c.returned_at < b.c.finish_decided),
        ~and_(b.c.released_at.is_not(None), b.c.released_at < b.c.finish_decided),
    )


def _finished_in_time(b: Subquery) -> ColumnElement[bool]:
    return and_(b.c.replied_at.is_not(None), b.c.replied_at <= b.c.deadline)


@indicator(
    "finish_on_time",
    "按时办结率",
    source="suborder",
    kind=RATE,
    explain="办理时限内答复的子工单 ÷ 本期办结环节有结果的子工单（已答复，或办理时限已过）；时限按期末已批准的延期计，退回、解除协办的不计",
)
def finish_on_time(b: Subquery, p: Period, dialect: str) -> Parts:
    """按时办结率 = sub-orders replied (办结) by their deadline (as approved extensions left it by
    the period's end) ÷ sub-orders whose finish step was decided in the period (replied in time,
    or the deadline passed). Returned (退回) or released sub-orders are not the department's to
    finish and are not counted."""
    return Parts(rows=_finish_rows(b, p), hit=_finished_in_time(b))


@indicator(
    "overdue",
    "超期件数",
    source="suborder",
    kind=COUNT,
    better="lower",
    appeal_under="finish_on_time",
    explain="本期办理时限已过而未答复的子工单数（即按时办结率中未按时的件数）",
)
def overdue(b: Subquery, p: Period, dialect: str) -> Parts:
    """超期件数: the sub-orders whose deadline passed in the period before the department replied
    (the misses of 按时办结率; an appeal accepted on 按时办结率 takes the ticket out of both)."""
    return Parts(rows=and_(_finish_rows(b, p), ~_finished_in_time(b)))


@indicator(
    "satisfaction",
    "满意率",
    source="evaluation",
    kind=RATE,
    explain="（满意 + 基本满意）÷ 本期对本部门答复的评价数；有提交人本人评价的以本人评价为准",
)
def satisfaction(b: Subquery, p: Period, dialect: str) -> Parts:
    """满意率 = (满意 + 基本满意) ÷ rated: the ratings given in the period (overall, i.e. the worst
    of process, timeliness and result) of the rounds the department replied in."""
    return Parts(rows=true(), hit=b.c.overall.in_(SATISFIED_RATINGS))


@indicator(
    "rework",
    "重办率",
    source="suborder",
    kind=RATE,
    better="lower",
    explain="不满意后再次派给本部门（本部门上一轮已答复）的子工单 ÷ 本期派给本部门的子工单",
)
def rework(b: Subquery, p: Period, dialect: str) -> Parts:
    """重办率 = 重办 sub-orders ÷ sub-orders dispatched to the department in the period, where a
    重办 is a sub-order of a round after 不满意 sent to a department that had replied in the
    previous round (its answer was rejected; ticketing.evaluation reopens the matter)."""
    return Parts(rows=in_period(b.c.dispatched_at, p), hit=b.c.rework == literal(True))


@indicator(
    "returned",
    "回退率",
    source="suborder",
    kind=RATE,
    better="lower",
    explain="本部门退回的子工单 ÷ 本期派给本部门的子工单",
)
def returned(b: Subquery, p: Period, dialect: str) -> Parts:
    """回退率 = sub-orders the department returned (退回, "not ours") by the period's end ÷
    sub-orders dispatched to it in the period."""
    return Parts(rows=in_period(b.c.dispatched_at, p), hit=b.c.returned_at.is_not(None))


def _warning(level: str, label: str) -> None:
    def define(b: Subquery, p: Period, dialect: str) -> Parts:
        return Parts(rows=b.c.level == level)

    define.__doc__ = (
        f"{label}次数: the {level} levels (§13, ticketing.sla_levels) reached in the period on "
        "the department's sub-orders, accept or finish step (each raise once, as the scan "
        'recorded it in a "warning" event).'
    )
    indicator(
        f"warnings_{level}",
        f"{label}次数",
        source="warning",
        kind=COUNT,
        better="lower",
        explain=f"本期本部门子工单触发{label}的次数（签收或办结环节，每次升级计一次）",
    )(define)


_warning("blue", "蓝色预警")
_warning("yellow", "黄色预警")
_warning("red", "红色预警")


@indicator(
    "avg_accept_hours",
    "平均签收时长",
    source="suborder",
    kind=HOURS,
    better="lower",
    explain="本期签收的子工单从派单到签收的平均小时数",
)
def avg_accept_hours(b: Subquery, p: Period, dialect: str) -> Parts:
    """平均签收时长 (hours, wall clock): from dispatch to 签收, over the sub-orders accepted in the
    period."""
    return Parts(
        rows=and_(b.c.accepted_at.is_not(None), in_period(b.c.accepted_at, p)),
        measure=seconds_between(b.c.accepted_at, b.c.dispatched_at, dialect),
    )


@indicator(
    "avg_handle_hours",
    "平均办理时长",
    source="suborder",
    kind=HOURS,
    better="lower",
    explain="本期答复的子工单从派单到答复的平均小时数",
)
def avg_handle_hours(b: Subquery, p: Period, dialect: str) -> Parts:
    """平均办理时长 (hours, wall clock): from dispatch to the reply (办结), over the sub-orders
    replied in the period."""
    return Parts(
        rows=and_(b.c.replied_at.is_not(None), in_period(b.c.replied_at, p)),
        measure=seconds_between(b.c.replied_at, b.c.dispatched_at, dialect),
    )


def base_for(
    source: str,
    period: Period,
    dialect: str,
    lookback_days: int,
    department: str | None = None,
    suborder_ids: Sequence[int] | None = None,
) -> Subquery:
    """One base row set; one department's rows only when `department` is given (and of the
    sub-order base, only `suborder_ids` when given)."""
    if source == "suborder":
        return suborder_base(period, dialect, lookback_days, department, suborder_ids)
    if source == "evaluation":
        return evaluation_base(period, department)
    return warning_base(period, department)


def as_naive(v: Any) -> datetime | None:
    """A datetime from a drill-down row (SQLite may give the stored text of an expression)."""
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v))
