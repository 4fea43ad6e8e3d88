"""The assessment pages and API (agent_console.web.assessment, routes/assessment.py): the
ranking with its exports, a department's figures and drill-down, appeals filed by a handler and
decided by an admin through the forms (CSRF), the row-level rule (a handler: its own department
only, 403 otherwise), and a screenshot of /assessment at 1366×768 in Debian's Chromium."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from console_helpers import DEPT_A, DEPT_B, PASSWORD
from openpyxl import load_workbook

from config.database import session_scope
from ticketing.models import SubOrder, Ticket, TicketEvent

MONTH = "2027-01"
ARTIFACTS = Path(__file__).resolve().parents[1] / "e2e" / "artifacts"


def L(text: str) -> datetime:
    return datetime.fromisoformat(text) - timedelta(hours=8)


def seed_month(engine, month: str = MONTH, prefix: str = "W") -> dict[str, str]:
    """Two tickets in January 2027: T1 to DEPT_A on time; T2 to DEPT_B, accepted late and
    replied after its deadline (a red warning on the way)."""
    numbers = {}
    with session_scope(engine) as s:
        for key, dept, late in (("T1", DEPT_A, False), ("T2", DEPT_B, True)):
            t = Ticket(
                number=f"{prefix}{key}",
                channel="web",
                title=f"园区照明{key}",
                content="内容",
                category="enterprise",
                status="resolved",
                created_at=L(f"{month}-05 08:00"),
            )
            s.add(t)
            s.flush()
            so = SubOrder(
                ticket_id=t.id,
                department_code=dept,
                status="replied",
                dispatched_at=L(f"{month}-05 09:00"),
                accept_due_at=L(f"{month}-05 17:00"),
                accepted_at=L(f"{month}-06 09:00" if late else f"{month}-05 10:00"),
                deadline_at=L(f"{month}-12 18:00"),
                replied_at=L(f"{month}-13 09:00" if late else f"{month}-08 10:00"),
            )
            s.add(so)
            s.flush()
            if late:
                s.add(
                    TicketEvent(
                        ticket_id=t.id,
                        suborder_id=so.id,
                        actor="system",
                        action="warning",
                        at=L(f"{month}-12 12:00"),
                        detail={"to": "red", "step": "finish"},
                    )
                )
            numbers[key] = t.number
    return numbers


@pytest.fixture
def month(web):
    return seed_month(web.engine)


def test_leader_sees_the_ranking_and_exports(web, month):
    web.login("leader")
    r = web.client.get(f"/assessment?period={MONTH}")
    assert r.status_code == 200
    assert "部门考核 · 2027年1月" in r.text and "全市" in r.text
    # DEPT_A (all on time) ranks above DEPT_B
    assert r.text.index(f"/assessment/departments/{DEPT_A}?") < r.text.index(
        f"/assessment/departments/{DEPT_B}?"
    )
    x = web.client.get(f"/assessment/export?period={MONTH}&format=xlsx")
    assert x.status_code == 200 and "attachment" in x.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws["A1"].value == "2027年1月部门考核排名" and ws["A2"].value == "排名"
    assert ws["A3"].value == 1
    c = web.client.get(f"/assessment/export?period={MONTH}&format=csv")
    assert c.content.startswith("\ufeff排名,部门".encode())


def test_department_page_and_drill_down(web, month):
    web.login("supervisor")
    r = web.client.get(f"/assessment/departments/{DEPT_B}?period={MONTH}")
    assert r.status_code == 200 and "按时办结率" in r.text and "0 / 1" in r.text
    # the portrait's slowest matters: T2, replied after 8 days (192 hours)
    assert "办理最慢的事项" in r.text and "192.0" in r.text and month["T2"] in r.text
    d = web.client.get(f"/assessment/departments/{DEPT_B}/indicators/finish_on_time?period={MONTH}")
    assert d.status_code == 200 and month["T2"] in d.text and month["T1"] not in d.text
    w = web.client.get(f"/assessment/departments/{DEPT_B}/indicators/warnings_red?period={MONTH}")
    assert month["T2"] in w.text and "红色" in w.text


def test_roles_on_the_pages(web, month):
    web.login("handler")  # DEPT_A's handler
    r = web.client.get("/assessment", follow_redirects=False)
    assert r.status_code == 303 and f"/assessment/departments/{DEPT_A}" in r.headers["location"]
    assert web.client.get(f"/assessment/departments/{DEPT_A}?period={MONTH}").status_code == 200
    assert web.client.get(f"/assessment/departments/{DEPT_B}?period={MONTH}").status_code == 403
    other = f"/assessment/departments/{DEPT_B}/indicators/finish_on_time?period={MONTH}"
    assert web.client.get(other).status_code == 403
    assert web.client.get(f"/assessment/export?period={MONTH}").status_code == 403
    for role in ("dispatcher", "agent"):
        web.login(role)
        assert web.client.get(f"/assessment?period={MONTH}").status_code == 403


def _csrf(web, path: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', web.client.get(path).text).group(1)


def test_appeal_filed_by_the_handler_and_accepted_by_an_admin(web, month):
    trace = f"/assessment/departments/{DEPT_B}/indicators/finish_on_time?period={MONTH}"
    web.login("handler_b")
    form = {
        "month": MONTH,
        "department": DEPT_B,
        "indicator": "finish_on_time",
        "ticket_number": month["T2"],
        "reason": "企业要求改期，非本部门原因",
    }
    assert web.client.post("/assessment/appeals", data=form).status_code == 403  # no CSRF token
    r = web.client.post(
        "/assessment/appeals",
        data={**form, "csrf_token": _csrf(web, trace)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=filed" in r.headers["location"]
    assert "已申诉" in web.client.get(trace).text
    web.login("admin")
    page = web.client.get("/assessment/appeals")
    assert month["T2"] in page.text and "采纳" in page.text
    appeal_id = re.search(r"/assessment/appeals/(\d+)/decision", page.text).group(1)
    before = web.client.get(f"/api/v1/assessment?period={MONTH}").json()
    r = web.client.post(
        f"/assessment/appeals/{appeal_id}/decision",
        data={
            "decision": "accept",
            "note": "属实",
            "csrf_token": _csrf(web, "/assessment/appeals"),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    after = web.client.get(f"/api/v1/assessment?period={MONTH}").json()
    b = {d["code"]: d for d in before["departments"]}[DEPT_B]
    a = {d["code"]: d for d in after["departments"]}[DEPT_B]
    assert b["figures"]["finish_on_time"]["denominator"] == 1
    assert a["figures"]["finish_on_time"]["denominator"] == 0 and a["score"] > b["score"]
    assert after["appeals_applied"] == 1
    assert "已免责" in web.client.get(trace).text
    page = web.client.get("/assessment/appeals?status=accepted")
    assert "admin：属实" in page.text


def test_api_rows_and_department_rule(web, month):
    from console_helpers import Api

    api = Api(web.client, web.settings, web.engine, web.user_ids)
    r = web.client.get(f"/api/v1/assessment?period={MONTH}", headers=api.auth("leader"))
    assert r.status_code == 200 and {d["code"] for d in r.json()["departments"]} >= {DEPT_A, DEPT_B}
    h = api.auth("handler")
    mine = web.client.get(f"/api/v1/assessment?period={MONTH}", headers=h).json()
    assert [d["code"] for d in mine["departments"]] == [DEPT_A]
    other = f"/api/v1/assessment/departments/{DEPT_B}/indicators/finish_on_time?period={MONTH}"
    assert web.client.get(other, headers=h).status_code == 403
    own = f"/api/v1/assessment/departments/{DEPT_A}/indicators/finish_on_time?period={MONTH}"
    rows = web.client.get(own, headers=h).json()["rows"]
    assert [x["ticket_number"] for x in rows] == [month["T1"]] and rows[0]["in_numerator"]
    bad = web.client.get("/api/v1/assessment?period=2027-13", headers=api.auth("leader"))
    assert bad.status_code == 422
    defs = web.client.get("/api/v1/assessment/indicators", headers=h).json()
    assert {d["code"] for d in defs} >= {"finish_on_time", "satisfaction", "rework"}


def _free_port() -> int:
    for port in range(19000, 19100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 19000-19099")


def test_screenshot_of_the_ranking(settings, engine):
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    if engine.dialect.name != "sqlite":
        pytest.skip("one screenshot is enough (SQLite)")
    import uvicorn
    from console_helpers import seed
    from playwright.sync_api import sync_playwright

    from agent_console.app import create_app

    seed(engine, settings)
    seed_month(engine)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "leader")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/leader.*"))
            page.goto(f"{base}/assessment?period={MONTH}")
            page.wait_for_selector("#chart-scores canvas")
            assert page.locator("h1").inner_text() == "部门考核 · 2027年1月"
            assert page.locator(".assess-table tbody tr").count() >= 3
            # every column fits at 1366 px: the ranking does not scroll sideways
            overflow = page.evaluate(
                "() => { const w = document.querySelector('.assess-table').closest('.table-wrap');"
                " return w.scrollWidth - w.clientWidth; }"
            )
            assert overflow <= 0, f"the ranking is {overflow} px wider than its card"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "assessment_ranking.png"), full_page=False)
            page.goto(f"{base}/assessment/departments/{DEPT_B}?period={MONTH}")
            page.wait_for_selector("#chart-trend canvas")
            spec = json.loads(page.locator("#chart-trend").get_attribute("data-chart") or "{}")
            assert spec["months"][-1] == MONTH
            assert spec["series"]["score"][-1] == 57.0  # the month on the page is its last point
            page.wait_for_timeout(600)  # the lines' 300 ms animation
            page.screenshot(path=str(ARTIFACTS / "assessment_department.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_public_summary_has_departments_figures_only(web):
    past = seed_month(web.engine, "2025-03", prefix="P")
    web.client.cookies.clear()
    r = web.client.get("/portal/assessment?period=2025-03")
    assert r.status_code == 200 and "各部门办事质效 · 2025年3月" in r.text
    assert "全市" in r.text and "按时办结率" in r.text and "100.0%" in r.text
    assert past["T1"] not in r.text and past["T2"] not in r.text  # no ticket, no person
    # a month not yet complete is not published: the latest complete one is shown instead
    assert "2099年" not in web.client.get("/portal/assessment?period=2099-01").text


def test_public_summary_computes_and_keeps_no_month_before_the_first_ticket(web):
    """An anonymous visitor cannot make the server compute and keep figures for any month back
    to year 1: before the first ticket's month the latest complete month is shown instead."""
    from sqlalchemy import func, select

    from ticketing.assessment import AssessmentMonthCache

    def kept() -> set[str]:
        with session_scope(web.engine, read_only=True) as s:
            return set(s.execute(select(AssessmentMonthCache.month)).scalars())

    seed_month(web.engine, "2025-03", prefix="F")
    with session_scope(web.engine, read_only=True) as s:
        assert s.execute(select(func.min(Ticket.created_at))).scalar() is not None
    web.client.cookies.clear()
    for month in ("2025-02", "1990-01", "0001-01", "2024-12"):
        r = web.client.get(f"/portal/assessment?period={month}")
        assert r.status_code == 200
        assert f"{int(month[:4])}年{int(month[5:])}月" not in r.text, month
        assert month not in kept(), month
    # the first ticket's month itself is published (and kept: a closed month)
    r = web.client.get("/portal/assessment?period=2025-03")
    assert "各部门办事质效 · 2025年3月" in r.text
    assert "2025-03" in kept()


# ---------------------------------------------------------------- the month cache
PAST = "2025-03"  # a closed month: its figures are kept (ticketing.assessment.cache)


def _cache_row(engine, month: str = PAST):
    from ticketing.assessment import AssessmentMonthCache

    with session_scope(engine, read_only=True) as s:
        return s.get(AssessmentMonthCache, month)


def _queue(web):
    from config.queues import get_queue

    return get_queue(web.settings, "default")


def _run_jobs(web) -> None:
    from rq import SimpleWorker

    q = _queue(web)
    SimpleWorker([q], connection=q.connection, name=f"{web.settings.redis_namespace}-w").work(
        burst=True
    )


def test_closed_month_is_kept_and_recomputed_after_an_accepted_appeal(web):
    from console_helpers import Api

    past = seed_month(web.engine, PAST, prefix="C")
    api = Api(web.client, web.settings, web.engine, web.user_ids)
    _queue(web).empty()
    web.login("leader")
    page = web.client.get(f"/assessment?period={PAST}")
    assert page.status_code == 200 and "数据截至" in page.text
    row = _cache_row(web.engine)  # the first view computed the closed month and kept it
    assert row is not None and row.data is not None and row.generation == 0
    got = web.client.get(f"/api/v1/assessment?period={PAST}", headers=api.auth("leader")).json()
    assert got["cached"] and got["computed_at"].startswith(row.computed_at.isoformat()[:19])
    filed = web.client.post(
        "/api/v1/assessment/appeals",
        json={
            "month": PAST,
            "indicator": "finish_on_time",
            "ticket_number": past["T2"],
            "reason": "企业要求改期",
        },
        headers=api.auth("handler_b"),
    )
    assert filed.status_code == 201, filed.text
    decided = web.client.post(
        f"/api/v1/assessment/appeals/{filed.json()['id']}/decision",
        json={"accept": True, "note": "属实"},
        headers=api.auth("admin"),
    )
    assert decided.status_code == 200, decided.text
    row = _cache_row(web.engine)
    assert row.data is None and row.generation == 1  # invalidated with the decision
    assert [j.args[0] for j in _queue(web).jobs] == [PAST]  # the job, queued after commit
    _run_jobs(web)  # a real worker runs ticketing.jobs.run_assessment_month
    row = _cache_row(web.engine)
    assert row.data is not None and row.generation == 1
    after = web.client.get(f"/api/v1/assessment?period={PAST}", headers=api.auth("leader")).json()
    b = {d["code"]: d for d in after["departments"]}[DEPT_B]
    assert after["cached"] and after["appeals_applied"] == 1
    assert b["figures"]["finish_on_time"]["denominator"] == 0
    # the appeal's steps on the ticket's history
    web.login("admin")
    t = web.client.get(f"/tickets/{past['T2']}").text
    assert "考核申诉" in t and "考核申诉审核" in t and "已采纳" in t and "企业要求改期" in t


def test_recompute_is_for_admins_with_csrf(web):
    from console_helpers import Api

    seed_month(web.engine, PAST, prefix="R")
    api = Api(web.client, web.settings, web.engine, web.user_ids)
    _queue(web).empty()
    url = "/api/v1/assessment/recompute"
    for role in ("leader", "supervisor", "handler", "dispatcher"):
        r = web.client.post(url, json={"month": PAST}, headers=api.auth(role))
        assert r.status_code == 403, role
    assert _queue(web).count == 0
    r = web.client.post(url, json={"month": PAST}, headers=api.auth("admin"))
    assert r.status_code == 202 and r.json() == {"month": PAST, "status": "queued"}
    assert [(j.func_name, j.args[0]) for j in _queue(web).jobs] == [
        ("ticketing.jobs.run_assessment_month", PAST)
    ]
    assert _cache_row(web.engine).generation == 1
    for bad in ("2099-01", "2025-H1"):  # a month not closed (computed live anyway), not a month
        assert (
            web.client.post(url, json={"month": bad}, headers=api.auth("admin")).status_code == 422
        )
    # the form on the ranking page: admins only, with the CSRF token
    web.login("leader")
    assert "重新计算" not in web.client.get(f"/assessment?period={PAST}").text
    token = _csrf(web, f"/assessment?period={PAST}")
    form = {"month": PAST, "csrf_token": token}
    assert web.client.post("/assessment/recompute", data=form).status_code == 403
    web.login("admin")
    page = web.client.get(f"/assessment?period={PAST}").text
    assert 'action="/assessment/recompute"' in page
    assert web.client.post("/assessment/recompute", data={"month": PAST}).status_code == 403
    r = web.client.post(
        "/assessment/recompute",
        data={"month": PAST, "csrf_token": _csrf(web, f"/assessment?period={PAST}")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=recompute" in r.headers["location"]
    assert _cache_row(web.engine).generation == 2
    _queue(web).empty()


def test_drill_down_is_paged(web, monkeypatch):
    from console_helpers import Api

    import agent_console.web.assessment as pages

    seed_month(web.engine)
    more = seed_month(web.engine, prefix="X")  # DEPT_A has two rows: WT1, XT1
    api = Api(web.client, web.settings, web.engine, web.user_ids)
    own = f"/api/v1/assessment/departments/{DEPT_A}/indicators/volume?period={MONTH}"
    h = api.auth("leader")
    first = web.client.get(own + "&limit=1", headers=h).json()
    assert [x["ticket_number"] for x in first["rows"]] == ["WT1"] and first["next_offset"] == 1
    second = web.client.get(own + "&limit=1&offset=1", headers=h).json()
    assert [x["ticket_number"] for x in second["rows"]] == [more["T1"]]
    assert second["next_offset"] is None
    monkeypatch.setattr(pages, "TRACE_PAGE", 1)
    web.login("supervisor")
    trace = f"/assessment/departments/{DEPT_A}/indicators/volume?period={MONTH}"
    p1 = web.client.get(trace).text
    assert "WT1" in p1 and more["T1"] not in p1 and "下一页" in p1 and "数据截至" in p1
    p2 = web.client.get(trace + "&page=2").text
    assert more["T1"] in p2 and "WT1" not in p2 and "上一页" in p2 and "下一页" not in p2
