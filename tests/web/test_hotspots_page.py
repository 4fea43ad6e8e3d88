"""The 高频事项分析 page (/hotspots), its drill-down and xlsx export, and /api/v1/hotspots: who may
open them, and what they show for a few tickets of November 2026 (figures: tests/ticketing/
test_hotspots.py)."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import datetime, timedelta

import pytest
from console_helpers import DEPT_A
from web_helpers import Web

from config.database import session_scope
from ticketing import SubOrder, Ticket, index_all

MONTH = "2026-11"


@pytest.fixture
def filed(web: Web) -> list[str]:
    """7 tickets about 停电 in November (5 in Aug–Oct before: 1 a month), 2 about 营业执照."""
    numbers = []
    with session_scope(web.engine) as s:

        def add(title: str, at: datetime, dept: str | None = DEPT_A) -> None:
            t = Ticket(number=f"T-{uuid.uuid4().hex[:10]}", channel="hotline", title=title,
                       content=f"你好，请问那个{title}了，我想问一下", category="enterprise",
                       status="dispatched", created_by="test", created_at=at)  # fmt: skip
            s.add(t)
            s.flush()
            if dept:
                s.add(SubOrder(ticket_id=t.id, department_code=dept, dispatched_at=at))
            numbers.append(t.number)

        for m in (8, 9, 10):
            add("停电", datetime(2026, m, 10, 3))
        for i in range(7):
            add("停电", datetime(2026, 11, 5, 3) + timedelta(hours=i))
        for i in range(2):
            add("营业执照", datetime(2026, 11, 6, 3) + timedelta(hours=i), dept=None)
        index_all(s, web.settings)
    return numbers


@pytest.mark.parametrize("role", ["leader", "supervisor", "admin"])
def test_allowed_roles_see_the_page_in_their_nav(web: Web, role: str):
    web.login(role)
    r = web.client.get("/hotspots")
    assert r.status_code == 200
    assert "高频事项分析" in r.text and 'href="/hotspots"' in r.text
    assert "/static/vendor/echarts.min.js" in r.text and "/static/hotspots.js" in r.text


@pytest.mark.parametrize("role", ["dispatcher", "agent", "handler"])
def test_other_roles_are_refused(web: Web, role: str):
    web.login(role)
    assert 'href="/hotspots"' not in web.client.get("/search").text
    for path in ("/hotspots", f"/hotspots/tickets?month={MONTH}", "/hotspots/export.xlsx"):
        assert web.client.get(path).status_code == 403, path
    assert web.client.get("/api/v1/hotspots").status_code == 403


def test_not_signed_in_goes_to_login(web: Web):
    web.client.cookies.clear()
    r = web.client.get("/hotspots", follow_redirects=False)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def test_page_shows_the_ranking_rising_topic_heat_and_charts(web: Web, filed):
    web.login("leader")
    html = web.client.get(f"/hotspots?month={MONTH}").text
    table = html[html.index('id="keyword-table"') : html.index('id="rising-table"')]
    assert table.index("停电") < table.index("营业执照")
    assert "rise-up" in table  # 停电: 7 against 1 a month
    rising = html[html.index('id="rising-table"') : html.index('id="drill"')]
    assert "停电" in rising and "营业执照" not in rising
    heat = html[html.index('id="heat-table"') :]
    assert "企业服务" in heat or "enterprise" in heat
    charts = re.findall(r'data-hchart="([^"]+)"', html)
    assert len(charts) == 4
    import html as h

    specs = [json.loads(h.unescape(c)) for c in charts]
    trend = next(s for s in specs if s["kind"] == "lines" and s["series"][0]["name"] == "停电")
    assert trend["series"][0]["data"][-4:] == [1, 1, 1, 7]


def test_filters_and_bad_input(web: Web, filed):
    web.login("supervisor")
    html = web.client.get(f"/hotspots?month={MONTH}&channel=web").text
    assert "本月暂无关键词" in html
    r = web.client.get("/hotspots?month=2026-13&category=nope")
    assert r.status_code == 200 and ("类别不存在" in r.text or "月份格式" in r.text)


def test_drill_down_lists_the_tickets_with_links(web: Web, filed):
    web.login("leader")
    r = web.client.get(
        f"/hotspots/tickets?month={MONTH}&keyword=停电", headers={"HX-Request": "true"}
    )
    assert r.status_code == 200 and "<html" not in r.text
    assert "共 7 件" in r.text
    assert r.text.count('href="/tickets/') == 7
    assert f'href="/tickets/{filed[3]}"' in r.text and filed[0] not in r.text
    page = web.client.get(f"/hotspots/tickets?month={MONTH}&department={DEPT_A}")
    assert "<html" in page.text and "共 7 件" in page.text


def test_xlsx_export(web: Web, filed):
    from openpyxl import load_workbook

    web.login("admin")
    r = web.client.get(f"/hotspots/export.xlsx?month={MONTH}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["类别", "部门", "关键词", "上升话题", "部门×类别", "月度合计"]
    rows = list(wb["关键词"].iter_rows(min_row=3, values_only=True))
    assert rows[0][1:5] == ("停电", 7, 1, 4)
    assert [r[1] for r in wb["上升话题"].iter_rows(min_row=3, values_only=True)] == ["停电"]


def test_api(web: Web, filed):
    web.login("leader")
    r = web.client.get(f"/api/v1/hotspots?month={MONTH}&top=5")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 9
    assert [(k["key"], k["count"], k["rising"]) for k in body["keywords"]] == [
        ("停电", 7, True),
        ("营业执照", 2, False),
    ]
    assert body["rule"] == {"baseline_months": 3, "min_volume": 5, "min_score": 1.5}
    r = web.client.get(f"/api/v1/hotspots/tickets?month={MONTH}&keyword=营业执照")
    assert r.status_code == 200 and r.json()["total"] == 2
    assert r.json()["items"][0]["created_at"].endswith("+08:00")
    assert web.client.get("/api/v1/hotspots?month=2026-13").status_code == 422
