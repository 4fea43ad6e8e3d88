"""高频事项分析 page (plan §19; leaders, supervisors, admins: roles row web.hotspots).

/hotspots                 the month's top categories (bar), trends (lines), the keyword ranking with
                          rise arrows, the rising topics, department × category; filters month,
                          channel, category (a plain GET form: the URL names the view)
/hotspots/tickets         drill-down: the counted tickets behind a keyword / category / department
                          (a fragment for htmx, a page otherwise), each linked to its ticket page
/hotspots/export.xlsx     the same figures as a workbook (callcenter.report.to_xlsx)
Every figure and definition is ticketing.hotspots'; charts are drawn by static/hotspots.js from
JSON in data attributes (no inline script).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.web.core import page_user, render
from callcenter.report import to_xlsx
from config.database import session_scope
from ticketing import (
    MONTH_PATTERN,
    HotspotQuery,
    HotspotReport,
    Topic,
    User,
    all_departments,
    hotspot_report,
    hotspot_tickets,
    save_months,
    this_month,
    utcnow,
)

router = APIRouter(include_in_schema=False)
DRILL_LIMIT = 100
HEAT_ROWS = 15  # departments in the department × category table (the busiest)
LINES = 5  # series in a trend chart


def _form(request: Request) -> tuple[HotspotQuery, dict[str, str], str | None]:
    """The filters from the query string: (query, the form's values, an error message)."""
    import re

    settings = request.app.state.settings
    labels = request.app.state.web.labels
    p = request.query_params
    month = (p.get("month") or "").strip() or this_month(settings)
    channel = p.get("channel") or None
    category = p.get("category") or None
    error = None
    if not re.match(MONTH_PATTERN, month):
        error, month = "月份格式应为 YYYY-MM", this_month(settings)
    if channel not in (None, *labels["channels"]):
        error, channel = "渠道不存在", None
    if category not in (None, *labels["categories"]):
        error, category = "类别不存在", None
    form = {"month": month, "channel": channel or "", "category": category or ""}
    return HotspotQuery(month=month, channel=channel, category=category, top=15), form, error


def _report(request: Request, q: HotspotQuery) -> HotspotReport:
    """The report; the months it had to count are kept for the next views (a write of its own)."""
    engine = request.app.state.engine
    with session_scope(engine, read_only=True) as s:
        r = hotspot_report(s, request.app.state.settings, q)
    if r.computed:
        with session_scope(engine) as s:
            save_months(s, r)
    return r


def _names(request: Request) -> dict[str, str]:
    with session_scope(request.app.state.engine, read_only=True) as s:
        return {d.code: d.name for d in all_departments(s)}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _hours(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _charts(r: HotspotReport, labels: dict[str, dict[str, str]]) -> dict[str, str]:
    cats = labels["categories"]
    top_cats = [{"name": cats.get(t.key, t.key), "value": t.count} for t in r.categories]

    def lines(topics: list[Topic], name: Any) -> dict[str, Any]:
        return {
            "kind": "lines",
            "months": r.months,
            "series": [
                {"name": name(t.key), "data": [m.count for m in t.trend]} for t in topics[:LINES]
            ],
        }

    satisfaction = [
        None if m.satisfaction is None else round(m.satisfaction * 100, 1) for m in r.totals
    ]
    specs = {
        "categories": {"kind": "hbar", "data": top_cats[::-1]},
        "keyword_trend": lines(r.keywords, lambda k: k),
        "category_trend": lines(r.categories, lambda k: cats.get(k, k)),
        "totals": {
            "kind": "volume",
            "months": r.months,
            "count": [m.count for m in r.totals],
            "hours": [m.avg_hours for m in r.totals],
            "satisfaction": satisfaction,
        },
    }
    return {k: json.dumps(v, ensure_ascii=False) for k, v in specs.items()}


def _heat(r: HotspotReport) -> tuple[list[str], list[tuple[str, list[int], int]], int]:
    """Department rows (busiest first) × the categories present, and the largest cell."""
    cats = sorted({c for row in r.heat.values() for c in row})
    rows = sorted(
        ((d, [row.get(c, 0) for c in cats], sum(row.values())) for d, row in r.heat.items()),
        key=lambda x: (-x[2], x[0]),
    )
    peak = max((n for _, cells, _ in rows for n in cells), default=0)
    return cats, rows, peak


def _heat_page(r: HotspotReport) -> tuple[list[str], list[tuple[str, list[int], int]], int, int]:
    """As _heat, the busiest HEAT_ROWS departments only, and how many more there are."""
    cats, rows, peak = _heat(r)
    return cats, rows[:HEAT_ROWS], peak, max(len(rows) - HEAT_ROWS, 0)


@router.get("/hotspots", name="web.hotspots")
def hotspots_page(request: Request, user: User = Depends(page_user("web.hotspots"))) -> Response:
    q, form, error = _form(request)
    labels = request.app.state.web.labels
    r = _report(request, q)
    names = _names(request)
    cats, heat_rows, peak, heat_more = _heat_page(r)
    prev = r.totals[-1 - r.rule.baseline_months : -1]
    base = sum(m.count for m in prev) / len(prev) if prev else 0
    query = urlencode({k: v for k, v in form.items() if v})
    return render(
        request,
        "hotspots.html",
        {
            "r": r,
            "form": form,
            "error": error,
            "query": query,
            "charts": _charts(r, labels),
            "names": names,
            "heat_cats": cats,
            "heat_rows": heat_rows,
            "heat_peak": peak,
            "heat_more": heat_more,
            "baseline_total": base,
            "pct": _pct,
            "hours": _hours,
            "now": utcnow(),
        },
    )


@router.get("/hotspots/tickets", name="web.hotspots_tickets")
def hotspots_tickets(request: Request, user: User = Depends(page_user("web.hotspots"))) -> Response:
    q, form, error = _form(request)
    p = request.query_params
    keyword = (p.get("keyword") or "").strip()[:32] or None
    department = (p.get("department") or "").strip()[:32] or None
    settings, labels = request.app.state.settings, request.app.state.web.labels
    with session_scope(request.app.state.engine, read_only=True) as s:
        total, items = hotspot_tickets(
            s, settings, q, keyword=keyword, department=department, limit=DRILL_LIMIT
        )
    names = _names(request)
    what = [f"{q.month}"]
    if q.channel:
        what.append(labels["channels"].get(q.channel, q.channel))
    if q.category:
        what.append(labels["categories"].get(q.category, q.category))
    if department:
        what.append(names.get(department, department))
    if keyword:
        what.append(f"关键词“{keyword}”")
    ctx = {
        "items": items,
        "total": total,
        "limit": DRILL_LIMIT,
        "what": " · ".join(what),
        "now": utcnow(),
        "form": form,
        "error": error,
    }
    fragment = request.headers.get("HX-Request") == "true"
    return render(request, "_hotspots_drill.html" if fragment else "hotspots_tickets.html", ctx)


@router.get("/hotspots/export.xlsx", name="web.hotspots_export")
def hotspots_export(request: Request, user: User = Depends(page_user("web.hotspots"))) -> Response:
    q = _form(request)[0]
    labels = request.app.state.web.labels
    r = _report(request, q)
    names = _names(request)
    cats, chans = labels["categories"], labels["channels"]
    scope = [r.month]
    if q.channel:
        scope.append(chans.get(q.channel, q.channel))
    if q.category:
        scope.append(cats.get(q.category, q.category))
    title = f"店小二热线 高频事项分析 {' '.join(scope)}（北京时间，重复件只计一次）"

    def topic_rows(topics: list[Topic], name: Any) -> list[list[Any]]:
        return [
            [
                i,
                name(t.key),
                t.count,
                round(t.baseline, 2),
                t.score,
                "上升" if t.rising else ("下降" if t.direction == "down" else ""),
                "" if t.avg_hours is None else t.avg_hours,
                "" if t.satisfaction is None else round(t.satisfaction, 4),
                *[m.count for m in t.trend],
            ]
            for i, t in enumerate(topics, 1)
        ]

    head = ["排名", "名称", "本月件数", "前三月月均", "上升指数", "趋势", "平均办理时长(小时)", "满意率",
            *r.months]  # fmt: skip
    heat_cats, heat_rows, _ = _heat(r)
    tabs = [
        ("类别", head, topic_rows(r.categories, lambda k: cats.get(k, k))),
        ("部门", head, topic_rows(r.departments, lambda k: names.get(k, k))),
        ("关键词", head, topic_rows(r.keywords, lambda k: k)),
        ("上升话题", head, topic_rows(r.rising, lambda k: k)),
        (
            "部门×类别",
            ["部门", *(cats.get(c, c) for c in heat_cats), "合计"],
            [[names.get(d, d), *cells, n] for d, cells, n in heat_rows],
        ),
        (
            "月度合计",
            ["月份", "件数", "平均办理时长(小时)", "满意率", "评价数"],
            [
                [
                    m.month,
                    m.count,
                    "" if m.avg_hours is None else m.avg_hours,
                    "" if m.satisfaction is None else round(m.satisfaction, 4),
                    m.rated,
                ]
                for m in r.totals
            ],
        ),
    ]
    name = f"hotspots-{r.month}.xlsx"
    return Response(
        to_xlsx(title, tabs),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
