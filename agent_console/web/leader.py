"""The leader's overview (read only): today's intake by channel and category, open tickets by
warning level, the overdue list. Charts are ECharts, fed from JSON in the page (no inline script)."""

from __future__ import annotations

import json
from datetime import datetime, time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.web.core import page_user, render, to_local, to_utc_naive
from agent_console.web.kb import first_contact_card
from config.database import session_scope
from config.settings import Settings
from ticketing import User, intake_summary, overdue_tickets, utcnow

router = APIRouter(include_in_schema=False)


def local_midnight(settings: Settings, now: datetime) -> datetime:
    """Today's 00:00 in the configured zone, as naive UTC."""
    local_now = to_local(settings, now)
    return to_utc_naive(datetime.combine(local_now.date(), time(), tzinfo=local_now.tzinfo))


@router.get("/leader", name="web.leader")
def leader_page(request: Request, user: User = Depends(page_user("web.leader"))) -> Response:
    settings = request.app.state.settings
    labels = request.app.state.web.labels
    now = utcnow()
    with session_scope(request.app.state.engine, read_only=True) as s:
        summary = intake_summary(s, local_midnight(settings, now))
        overdue = overdue_tickets(s, now, limit=30)
        kb_figures = first_contact_card(s, settings)

    def series(key: str, names: dict[str, str]) -> list[dict]:
        counts = summary.get(key, {})
        return [{"name": names.get(k, k), "value": counts.get(k, 0)} for k in names]

    charts = {
        "channel": {"kind": "bar", "data": series("channel", labels["channels"])},
        "category": {"kind": "pie", "data": series("category", labels["categories"])},
    }
    warn = summary.get("warning", {})
    return render(
        request,
        "leader.html",
        {
            "today_total": sum(summary.get("channel", {}).values()),
            "warns": {k: warn.get(k, 0) for k in ("none", "blue", "yellow", "red")},
            "open_total": sum(warn.values()),
            "overdue": overdue,
            "charts_json": {k: json.dumps(v, ensure_ascii=False) for k, v in charts.items()},
            "now": now,
            "kb_figures": kb_figures,
        },
    )
