"""The administrator's home, holiday calendar and business-hours pages (role admin: "web.admin").

Everything edited here is kept in the database (ticketing.admin_settings) and read by every
process without a restart; the YAML files stay the seed. Forms carry the session's CSRF token
(page_user checks it before anything else); a refused input re-renders the form with what was
typed and a Chinese message (422), nothing stored.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import func, select

from agent_console.web.core import page_user, redirect, render, to_local
from config.database import session_scope
from config.loader import load_yaml
from ticketing import (
    BUSINESS_HOURS,
    InvalidInput,
    TicketingError,
    User,
    all_departments,
    business_hours_data,
    coverage_warning,
    covered_years,
    delete_year,
    format_opening,
    is_digits,
    load_business_hours,
    package_years,
    parse_days,
    save_year,
    stored_calendar,
    utcnow,
    write_setting,
)

router = APIRouter(include_in_schema=False)
ROW = "web.admin"
MAX_PERIODS = 3
MAX_MESSAGE = 300

# ?done=... after a redirect: what the page confirms
DONE = {
    "calendar": "节假日安排已保存，办理时限和工作时间立即按新安排计算。",
    "calendar_deleted": "该年度的录入已删除。",
    "hours": "工作时间与非工作时间提示已保存，各服务进程无需重启即生效。",
}


def today_local(request: Request) -> Any:
    return to_local(request.app.state.settings, utcnow()).date()


@router.get("/admin", name="web.admin")
def admin_home(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    settings = request.app.state.settings
    with session_scope(request.app.state.engine, read_only=True) as s:
        users_active = s.exec(select(func.count()).select_from(User).where(User.active)).one()
        users_total = s.exec(select(func.count()).select_from(User)).one()
        admins = s.exec(
            select(func.count()).select_from(User).where(User.active, User.role == "admin")
        ).one()
        depts = all_departments(s)  # in the configured order, as every list of them
    active = [d for d in depts if d.active]
    no_phone = [(d.code, d.name) for d in active if d.head_phone is None]
    hours = load_business_hours(settings)
    now = utcnow()
    return render(
        request,
        "admin_home.html",
        {
            "title": "系统管理",
            "tab": "home",
            "users_active": users_active,
            "users_total": users_total,
            "admins": admins,
            "depts_active": len(active),
            "depts_total": len(depts),
            "no_phone": no_phone,
            "calendar_warning": coverage_warning(settings, today_local(request)),
            "years": covered_years(settings),
            "hours": hours,
            "is_open": hours.is_open(now),
            "next_opening": format_opening(hours.next_opening(now)),
        },
    )


# ---------------------------------------------------------------- calendar
def _calendar_context(
    request: Request, form: dict[str, str] | None = None, error: str | None = None
) -> dict[str, Any]:
    settings = request.app.state.settings
    with session_scope(request.app.state.engine, read_only=True) as s:
        cal = stored_calendar(s)
    pkg = package_years()
    entered = {int(y): v for y, v in cal["years"].items()}
    today = today_local(request)
    year_q = request.query_params.get("year", "")
    if form is None:
        year = int(year_q) if is_digits(year_q) else max(pkg[-1] + 1, today.year)
        entry = entered.get(year) or {}
        form = {
            "year": str(year),
            "holidays": _lines(entry.get("holidays") or []),
            "workdays": _lines(entry.get("workdays") or []),
        }
    return {
        "title": "节假日日历",
        "tab": "calendar",
        "package_range": (pkg[0], pkg[-1]) if pkg else None,
        "entered": dict(sorted(entered.items())),
        "summary": {
            y: {k: _lines(v.get(k) or []).splitlines() for k in ("holidays", "workdays")}
            for y, v in entered.items()
        },
        "covered": covered_years(settings),
        "warning": coverage_warning(settings, today),
        "form": form,
        "error": error,
        "done": DONE.get(request.query_params.get("done", "")),
    }


def _lines(entries: list[dict[str, str]]) -> str:
    """Stored days back as the form's lines, consecutive days with one note joined as a range."""
    out: list[str] = []
    run: list[dict[str, str]] = []

    def flush() -> None:
        if run:
            first, last = run[0]["day"], run[-1]["day"]
            span = first if first == last else f"{first}~{last}"
            out.append(f"{span} {run[0]['note']}".strip())

    for e in entries:
        if run:
            prev = datetime.fromisoformat(run[-1]["day"]).date()
            cur = datetime.fromisoformat(e["day"]).date()
            if (cur - prev).days == 1 and e["note"] == run[-1]["note"]:
                run.append(e)
                continue
        flush()
        run = [e]
    flush()
    return "\n".join(out)


@router.get("/admin/calendar", name="web.admin_calendar")
def calendar_page(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_calendar.html", _calendar_context(request))


@router.post("/admin/calendar", name="web.admin_calendar_save")
async def calendar_save(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("year", "holidays", "workdays")}
    try:
        if not is_digits(form["year"]):
            raise InvalidInput("请填写年份（如 2027）", field="year")
        year = int(form["year"])
        holidays = parse_days(form["holidays"], year, "放假日期")
        workdays = parse_days(form["workdays"], year, "调休上班日期")
        with session_scope(request.app.state.engine) as s:
            if raw.get("delete") == "1":
                delete_year(s, year, by=user.username)
            else:
                save_year(s, year, holidays, workdays, by=user.username)
    except TicketingError as e:
        ctx = _calendar_context(request, form, e.message)
        return render(request, "admin_calendar.html", ctx, status=422)
    done = "calendar_deleted" if raw.get("delete") == "1" else "calendar"
    return redirect(f"/admin/calendar?year={year}&done={done}", request)


# ---------------------------------------------------------------- business hours
def _hours_context(
    request: Request, form: dict[str, Any] | None = None, error: str | None = None
) -> dict[str, Any]:
    settings = request.app.state.settings
    hours = load_business_hours(settings)
    if form is None:
        data = business_hours_data(settings)
        form = {
            "periods": [[str(a), str(b)] for a, b in data.get("periods") or []],
            "message": hours.after_hours_message or "",
        }
    periods = list(form["periods"]) + [["", ""]] * (MAX_PERIODS - len(form["periods"]))
    now = utcnow()
    return {
        "title": "工作时间",
        "tab": "hours",
        "periods": periods[:MAX_PERIODS],
        "message": form["message"],
        # the IVR's own wording of the after-hours prompt (used while none is stored)
        "default_message": default_after_hours(settings),
        "timezone": str(hours.tz),
        "is_open": hours.is_open(now),
        "next_opening": format_opening(hours.next_opening(now)),
        "error": error,
        "done": DONE.get(request.query_params.get("done", "")),
    }


def default_after_hours(settings: Any) -> str:
    """ivr.yaml's own "closed" prompt (read as config: the IVR package is downstream)."""
    prompt = (load_yaml(settings, "ivr.yaml").get("prompts") or {}).get("closed") or {}
    return str(prompt.get("text") or "")


@router.get("/admin/hours", name="web.admin_hours")
def hours_page(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_hours.html", _hours_context(request))


def _hhmm(text: str) -> str:
    try:
        t = datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise InvalidInput(f"时间格式不正确：“{text}”（应为 08:30 这样的时:分）") from None
    return t.strftime("%H:%M")


def parse_periods(pairs: list[tuple[str, str]]) -> list[list[str]]:
    """Opening periods from the form: filled rows only, each start < end, not overlapping."""
    out: list[list[str]] = []
    for i, (a, b) in enumerate(pairs, 1):
        if not a.strip() and not b.strip():
            continue
        if not a.strip() or not b.strip():
            raise InvalidInput(f"第{i}个时段需要同时填写开始和结束时间", field="periods")
        start, end = _hhmm(a), _hhmm(b)
        if end <= start:
            raise InvalidInput(f"第{i}个时段的结束时间必须晚于开始时间", field="periods")
        out.append([start, end])
    if not out:
        raise InvalidInput("至少需要一个工作时段", field="periods")
    out.sort()
    for prev, cur in itertools.pairwise(out):
        if cur[0] < prev[1]:
            raise InvalidInput("工作时段不能相互重叠", field="periods")
    return out


@router.post("/admin/hours", name="web.admin_hours_save")
async def hours_save(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    raw = await request.form()
    starts = [str(x) for x in raw.getlist("start")][:MAX_PERIODS]
    ends = [str(x) for x in raw.getlist("end")][:MAX_PERIODS]
    pairs = list(zip(starts, ends, strict=False))
    message = str(raw.get("message") or "").strip()
    try:
        periods = parse_periods(pairs)
        if len(message) > MAX_MESSAGE:
            raise InvalidInput(f"非工作时间提示不能超过{MAX_MESSAGE}个字", field="message")
        if message and "{callback}" in message.replace("{callback}", "", 1):
            raise InvalidInput("提示语中 {callback} 只能出现一次", field="message")
        with session_scope(request.app.state.engine) as s:
            write_setting(
                s,
                BUSINESS_HOURS,
                {"periods": periods, "after_hours_message": message or None},
                by=user.username,
            )
    except TicketingError as e:
        form = {"periods": [[a, b] for a, b in pairs], "message": message}
        ctx = _hours_context(request, form, e.message)
        return render(request, "admin_hours.html", ctx, status=422)
    return redirect("/admin/hours?done=hours", request)
