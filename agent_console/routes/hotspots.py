"""高频事项分析 (plan §19): thin routes over ticketing.hotspots, which holds every definition.

GET /hotspots          the month's top categories, departments and keywords, their trends
                       (volume, handling time, satisfaction), the rising topics, department ×
                       category; filters: month (YYYY-MM, Asia/Shanghai), channel, category
GET /hotspots/tickets  the counted tickets behind one figure (a keyword, a department, filters)
Roles: agent_console.roles (hotspots.*: leaders, supervisors, admins).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from agent_console.deps import SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import Instant
from config.database import session_scope
from ticketing import (
    MONTH_PATTERN,
    Category,
    Channel,
    HotspotQuery,
    User,
    hotspot_report,
    hotspot_tickets,
    save_months,
)

router = APIRouter(tags=["hotspots"], route_class=TransactionRoute)

Month = Annotated[
    str | None,
    Query(pattern=MONTH_PATTERN, description="YYYY-MM in Asia/Shanghai; default this month"),
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MonthFiguresOut(_Out):
    month: str
    count: int
    avg_hours: float | None  # 办理时长: resolved − created, hours, over resolved tickets
    satisfaction: float | None  # (满意 + 基本满意) ÷ ratings in force
    rated: int


class TopicOut(_Out):
    key: str  # category code, department code or keyword
    count: int
    baseline: float  # average of the previous months (rising.baseline_months), × elapsed
    score: float  # (count + 1) ÷ (baseline + 1)
    rising: bool
    direction: str  # up | flat | down
    avg_hours: float | None
    satisfaction: float | None
    trend: list[MonthFiguresOut]


class RisingRuleOut(_Out):
    baseline_months: int
    min_volume: int
    min_score: float


class HotspotsOut(_Out):
    month: str
    months: list[str]
    channel: str | None
    category: str | None
    total: int
    totals: list[MonthFiguresOut]
    categories: list[TopicOut]
    departments: list[TopicOut]
    keywords: list[TopicOut]
    rising: list[TopicOut]
    heat: dict[str, dict[str, int]]
    rule: RisingRuleOut
    elapsed: float  # share of the month gone by (< 1 while it runs: baselines scaled to it)
    unindexed: int  # tickets whose keywords are not stored yet


class HotspotTicketOut(_Out):
    number: str
    title: str
    channel: str
    category: str
    urgency: str
    status: str
    created_at: Instant
    resolved_at: Instant | None


class HotspotTicketsOut(BaseModel):
    total: int
    items: list[HotspotTicketOut]


def _query(
    month: str | None, months: int, channel: Channel | None, category: Category | None, top: int
) -> HotspotQuery:
    return HotspotQuery(
        month=month,
        months=months,
        channel=channel.value if channel else None,
        category=category.value if category else None,
        top=top,
    )


@router.get(
    "/hotspots",
    name="hotspots.report",
    response_model=HotspotsOut,
    responses=responses(401, 403, 422),
)
def report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    month: Month = None,
    months: Annotated[int, Query(ge=1, le=24)] = 6,
    channel: Channel | None = None,
    category: Category | None = None,
    top: Annotated[int, Query(ge=1, le=50)] = 10,
    user: User = Depends(require("hotspots.report")),
) -> HotspotsOut:
    """The month's high-frequency matters and rising topics (重复件 counted once)."""
    r = hotspot_report(session, settings, _query(month, months, channel, category, top))
    if r.computed:  # kept for the next views, in a write transaction of its own
        with session_scope(request.app.state.engine) as s:
            save_months(s, r)
    return HotspotsOut.model_validate(r)


@router.get(
    "/hotspots/tickets",
    name="hotspots.tickets",
    response_model=HotspotTicketsOut,
    responses=responses(401, 403, 422),
)
def tickets(
    session: SessionDep,
    settings: SettingsDep,
    month: Month = None,
    channel: Channel | None = None,
    category: Category | None = None,
    keyword: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    department: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    user: User = Depends(require("hotspots.tickets")),
) -> HotspotTicketsOut:
    """The counted tickets of the month behind a keyword, a department or the filters."""
    total, rows = hotspot_tickets(
        session,
        settings,
        _query(month, 6, channel, category, 10),
        keyword=keyword,
        department=department,
        limit=limit,
        offset=offset,
    )
    return HotspotTicketsOut(total=total, items=[HotspotTicketOut.model_validate(t) for t in rows])
