"""§16–17 over the API: a period's ranking, one department's figures, the tickets behind one
indicator, the report exports, and appeals (申诉/免责). Leaders, supervisors and admins read every
department; a department's handler reads its own (another department's: 403, department codes
are public) and files its appeals; an admin decides them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field

from agent_console.access import handler_department, is_handler
from agent_console.deps import RowId, SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import ApiError, responses
from agent_console.schemas import _In, _Out
from config.database import session_scope
from config.settings import Settings
from ticketing import ASSESSMENT_INDICATORS as INDICATORS
from ticketing import (
    AssessmentFigure,
    AssessmentPeriod,
    AssessmentResult,
    AssessmentRow,
    User,
    assess,
    assessment_appeals,
    assessment_csv,
    assessment_period,
    assessment_rows,
    assessment_xlsx,
    decide_assessment_appeal,
    file_assessment_appeal,
    get_assessment_appeal,
    keep_assessment_months,
    previous_assessment_month,
    recompute_assessment_month,
    utcnow,
)

router = APIRouter(prefix="/assessment", tags=["assessment"], route_class=TransactionRoute)
PeriodQ = Annotated[
    str | None,
    Query(
        max_length=7,
        description="考核期：2027-01（月）、2027-H1（半年体检）、2027（年）；默认上一个月",
    ),
]
Code = Annotated[str, Path(min_length=1, max_length=32)]
DEFAULT_PAGE, MAX_PAGE = 500, 5000
IndicatorCode = Literal[tuple(INDICATORS)]  # type: ignore[valid-type]


class FigureOut(_Out):
    numerator: int | None = Field(default=None, description="rates: the rows in the numerator")
    denominator: int = Field(description="rates: the rows measured; counts: the count")
    value: float | None = Field(description="rate 0–1, count, or hours; null: nothing measured")


class DepartmentOut(_Out):
    code: str
    name: str
    rank: int | None = Field(description="null: not ranked (nothing to assess in the period)")
    score: float | None
    band: str
    points: dict[str, float]
    figures: dict[str, FigureOut]


class AssessmentOut(_Out):
    period: str
    label: str
    kind: str
    as_of: datetime = Field(description="the period's end (UTC): nothing later is counted")
    computed_at: datetime | None = Field(
        description="数据截至: when the figures were computed (a closed month's are kept)"
    )
    cached: bool = Field(description="read from the month cache (a closed month)")
    appeals_applied: int
    departments: list[DepartmentOut]
    city: dict[str, FigureOut]


class IndicatorDef(_Out):
    code: str
    label: str
    kind: str
    better: str
    definition: str = Field(description="the definition as computed (English)")
    explain: str = Field(description="口径 as users read it")


class TracedOut(_Out):
    ticket_number: str
    title: str
    suborder_id: int
    in_numerator: bool | None
    appealed: bool
    hours: float | None = None
    times: dict[str, datetime | None]
    extra: dict[str, str | None]


class IndicatorRowsOut(_Out):
    period: str
    department: str
    indicator: IndicatorDef
    rows: list[TracedOut]
    offset: int
    next_offset: int | None = Field(description="the next page's offset; null: the last page")


class AppealIn(_In):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="the month assessed, e.g. 2027-01")
    department: str | None = Field(
        default=None, max_length=32, description="an admin names it; a handler's is its own"
    )
    indicator: IndicatorCode  # type: ignore[valid-type]
    ticket_number: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=1000, description="申诉/免责理由")


class DecisionIn(_In):
    accept: bool
    note: str | None = Field(default=None, max_length=1000, description="审核意见（驳回时必填）")


class AppealOut(_Out):
    id: int
    month: str
    department_code: str
    indicator: str
    ticket_number: str | None = None
    reason: str
    status: str = Field(description="pending | accepted | rejected")
    filed_by: str
    filed_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None


def _period(settings: Settings, key: str | None) -> AssessmentPeriod:
    return assessment_period(settings, key or previous_assessment_month(settings, utcnow()))


def _own(user: User, code: str) -> None:
    if is_handler(user) and code != user.department_code:
        raise ApiError(403, "只能查看本部门的考核", details={"department": code})


def _figs(code_figs: dict[str, AssessmentFigure]) -> dict[str, FigureOut]:
    return {
        k: FigureOut(
            numerator=f.num if INDICATORS[k].kind == "rate" else None,
            denominator=f.den,
            value=f.value,
        )
        for k, f in code_figs.items()
    }


def _dept(r: AssessmentRow) -> DepartmentOut:
    return DepartmentOut(
        code=r.code,
        name=r.name,
        rank=r.rank,
        score=r.score,
        band=r.band,
        points=r.points,
        figures=_figs(r.figures),
    )


def _out(result: AssessmentResult, only: str | None) -> AssessmentOut:
    rows = [r for r in result.rows if only is None or r.code == only]
    return AssessmentOut(
        period=result.period.key,
        label=result.period.label,
        kind=result.period.kind,
        as_of=result.period.end,
        computed_at=result.computed_at,
        cached=result.cached,
        appeals_applied=result.appeals_applied,
        departments=[_dept(r) for r in rows],
        city=_figs(result.city),
    )


@router.get(
    "",
    name="assessment.ranking",
    response_model=AssessmentOut,
    responses=responses(401, 403, 422),
)
def ranking(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQ = None,
    user: User = Depends(require("assessment.ranking")),
) -> AssessmentOut:
    """The period's ranking: every department's figures, points, score, band and rank (a
    handler: its own department's row)."""
    result = assess(session, settings, _period(settings, period))
    keep(request, result)
    return _out(result, handler_department(user))


def keep(request: Request, result: AssessmentResult) -> None:
    """A closed month computed because it was not cached is stored for the next views (a write
    transaction of its own: the view's is read-only)."""
    if result.to_keep is not None:
        with session_scope(request.app.state.engine) as s:
            keep_assessment_months(s, request.app.state.settings, [result.to_keep])


@router.get(
    "/indicators",
    name="assessment.indicators",
    response_model=list[IndicatorDef],
    responses=responses(401, 403),
)
def indicators(user: User = Depends(require("assessment.indicators"))) -> list[IndicatorDef]:
    """Each indicator's definition (as computed)."""
    return [_def(code) for code in INDICATORS]


def _def(code: str) -> IndicatorDef:
    i = INDICATORS[code]
    return IndicatorDef(
        code=i.code,
        label=i.label,
        kind=i.kind,
        better=i.better,
        definition=i.doc,
        explain=i.explain,
    )


@router.get(
    "/departments/{code}/indicators/{indicator}",
    name="assessment.trace",
    response_model=IndicatorRowsOut,
    responses=responses(401, 403, 404, 422),
)
def trace(
    code: Code,
    indicator: IndicatorCode,  # type: ignore[valid-type]
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQ = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    user: User = Depends(require("assessment.trace")),
) -> IndicatorRowsOut:
    """The tickets behind one indicator of one department: the rows measured, each marked in or
    out of the numerator, and whether an accepted appeal took it out; a page of `limit` rows
    from `offset` (by ticket number), `next_offset` for the next."""
    _own(user, code)
    p = _period(settings, period)
    rows = assessment_rows(
        session, settings, p, code, str(indicator), limit=limit + 1, offset=offset
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return IndicatorRowsOut(
        period=p.key,
        department=code,
        indicator=_def(str(indicator)),
        offset=offset,
        next_offset=offset + limit if more else None,
        rows=[
            TracedOut(
                ticket_number=r.number,
                title=r.title,
                suborder_id=r.suborder_id,
                in_numerator=r.hit,
                appealed=r.appealed,
                hours=r.hours,
                times=r.times,
                extra={k: None if v is None else str(v) for k, v in r.extra.items()},
            )
            for r in rows
        ],
    )


@router.get(
    "/export",
    name="assessment.export",
    responses={**responses(401, 403, 422), 200: {"content": {"text/csv": {}}}},
    response_class=Response,
)
def export(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQ = None,
    format: Literal["csv", "xlsx"] = "xlsx",
    user: User = Depends(require("assessment.export")),
) -> Response:
    """The ranking as a report: xlsx or CSV, Chinese headers, one row per department."""
    result = assess(session, settings, _period(settings, period))
    keep(request, result)
    return export_response(result, format)


def export_response(result: AssessmentResult, fmt: str) -> Response:
    name = f"assessment-{result.period.key}.{fmt}"
    if fmt == "csv":
        body, media = assessment_csv(result), "text/csv; charset=utf-8"
    else:
        body = assessment_xlsx(result)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _appeal_out(a: object, number: str | None) -> AppealOut:
    return AppealOut.model_validate(a).model_copy(update={"ticket_number": number})


@router.get(
    "/appeals",
    name="assessment.appeals",
    response_model=list[AppealOut],
    responses=responses(401, 403, 422),
)
def appeals(
    session: SessionDep,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
    status: Literal["pending", "accepted", "rejected"] | None = None,
    user: User = Depends(require("assessment.appeals")),
) -> list[AppealOut]:
    """Appeals, newest first (a handler: its own department's)."""
    rows = assessment_appeals(
        session, month=month, department=handler_department(user), status=status
    )
    return [_appeal_out(a, n) for a, n in rows]


@router.post(
    "/appeals",
    name="assessment.appeal_file",
    status_code=201,
    response_model=AppealOut,
    responses=responses(401, 403, 409, 422),
)
def file(
    body: AppealIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("assessment.appeal_file")),
) -> AppealOut:
    """申诉/免责: one ticket out of one indicator of one month, with a reason."""
    dept = handler_department(user) or body.department
    if not dept:
        raise ApiError(422, "请指定部门", details={"field": "department"})
    _own(user, dept)
    a = file_assessment_appeal(
        session,
        settings,
        month=body.month,
        department=dept,
        indicator=str(body.indicator),
        ticket_number=body.ticket_number,
        reason=body.reason,
        actor=user.username,
    )
    return _appeal_out(a, body.ticket_number)


@router.post(
    "/appeals/{appeal_id}/decision",
    name="assessment.appeal_decide",
    response_model=AppealOut,
    responses=responses(401, 403, 404, 409, 422),
)
def decide(
    appeal_id: RowId,
    body: DecisionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("assessment.appeal_decide")),
) -> AppealOut:
    """An admin accepts (the ticket leaves the indicator) or rejects (with a note) an appeal."""
    get_assessment_appeal(session, appeal_id)
    a = decide_assessment_appeal(
        session, settings, appeal_id, accept=body.accept, note=body.note, actor=user.username
    )
    return _appeal_out(a, None)


class RecomputeIn(_In):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="a closed month, e.g. 2027-01")


class RecomputeOut(_Out):
    month: str
    status: Literal["queued"] = "queued"


@router.post(
    "/recompute",
    name="assessment.recompute",
    status_code=202,
    response_model=RecomputeOut,
    responses=responses(401, 403, 422),
)
def recompute(
    body: RecomputeIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("assessment.recompute")),
) -> RecomputeOut:
    """重新计算: a closed month's kept figures are dropped and computed again by an RQ job
    (queued once this request commits; until it has run, views compute the month live). For
    after a correction of stored data. A month not closed is computed live anyway: 422."""
    p = recompute_assessment_month(session, settings, body.month, utcnow())
    return RecomputeOut(month=p.key)
