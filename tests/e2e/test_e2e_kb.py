"""The knowledge base in a real Chromium against `callcenter run` (starter articles seeded at
start): an agent answers a caller's consultation from a suggested article and closes it at intake
(直接答复), and a citizen on a phone finds an article before submitting and says it solved the
problem (a deflection in the database). The call is written to Redis as the bridge publishes it;
the pop is fetched as the console's SSE pop does (that path has its own e2e test)."""

from __future__ import annotations

import json
import sqlite3

import pytest
import redis
from e2e_helpers import shot

from callcenter.ami.publish import keys

pytestmark = pytest.mark.e2e
CALL = "1795569999.7"


def _live_call(server) -> None:
    r = redis.Redis.from_url(server.redis_url)
    k = keys(server.namespace, "pbx1")
    call = {"call_id": CALL, "caller": "13912345678", "caller_name": "李女士", "status": "talking",
            "started": 0, "ivr_path": "3", "category": "complaint", "queue": "dxe-enterprise",
            "position": 0, "wait_seconds": 6, "answered": None, "agent": "", "agent_name": "",
            "hold": False, "recording": "", "ticket_number": "", "legs": []}  # fmt: skip
    r.sadd(k["servers"], "pbx1")
    r.hset(k["calls"], CALL, json.dumps(call, ensure_ascii=False))
    r.close()


def _db(server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "callcenter.db")


def test_agent_answers_a_consultation_from_a_suggested_article(page_for, server):
    _live_call(server)
    page = page_for("agent")
    page.evaluate(
        "id => window.htmx.ajax('GET', '/console/pop/' + id, {target: '#pop', swap: 'innerHTML'})",
        CALL,
    )
    page.wait_for_selector("#kb-panel", timeout=10000)
    page.fill("#pop-form textarea[name=content]", "我想开个小吃店，办个体户营业执照要准备哪些材料")
    page.wait_for_selector("#kb-sugg a[data-n='1']", timeout=10000)
    first = page.inner_text("#kb-sugg a[data-n='1']")
    page.keyboard.press("Alt+1")  # one key opens the first suggestion
    page.wait_for_selector("#kb-view-title", timeout=10000)
    assert page.inner_text("#kb-view-title") in first
    page.click("#kb-sms-btn")
    page.wait_for_selector("text=已发送短信给来电人", timeout=10000)
    page.check("#kb-sugg li:first-child input[name=article_ids]")
    page.fill("#kb-direct textarea[name=note]", "已告知个体户登记所需材料与办理地点")
    page.locator("#kb-panel").scroll_into_view_if_needed()
    shot(page, "60-console-kb-suggest")
    page.click("#kb-direct-btn")
    page.wait_for_selector("text=已直接答复并办结", timeout=10000)
    number = page.inner_text("#pop-ticket")
    assert number.startswith("DXE-")
    shot(page, "61-console-direct-answered")
    with _db(server) as db:
        status, mode, deadline = db.execute(
            "SELECT status, dispatch_mode, deadline_at FROM ticket WHERE number = ?", (number,)
        ).fetchone()
        assert (status, mode, deadline) == ("resolved", "direct", None)
        # not dispatched: no sub-order of its own (the server is shared with other e2e modules)
        subs = db.execute(
            "SELECT count(*) FROM suborder JOIN ticket ON ticket.id = suborder.ticket_id"
            " WHERE ticket.number = ?",
            (number,),
        ).fetchone()[0]
        assert subs == 0
        kinds = {k for (k,) in db.execute("SELECT kind FROM outboxmessage")}
        assert {"kb_article", "direct_answer"} <= kinds
    leader = page_for("leader")
    leader.wait_for_selector("#leader-kb")
    assert leader.inner_text("#kb-direct-rate") != "—"
    leader.locator("#leader-kb").scroll_into_view_if_needed()
    shot(leader, "62-leader-first-contact")
    # the staff pages: search with the matching passage, an article with its versions
    leader.goto(server.url + "/kb?q=公积金怎么提取")
    leader.wait_for_selector(".kb-hits .kb-title")
    shot(leader, "66-kb-search")
    leader.click(".kb-hits .kb-title >> nth=0")
    leader.wait_for_selector("#kb-versions")
    shot(leader, "67-kb-article")


def test_citizen_finds_an_article_on_a_phone_before_submitting(browser, server):
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True, has_touch=True
    )
    page = ctx.new_page()
    page.goto(server.url + "/portal/kb")
    page.fill("#pkb-q", "开小吃店要办什么证")
    page.wait_for_selector("#pkb-suggest .pkb-suggest-link", timeout=10000)
    assert "您是不是要找" in page.inner_text("#pkb-suggest")
    shot(page, "63-portal-suggest-phone")
    page.click("#pkb-suggest .pkb-suggest-link >> nth=0")
    page.wait_for_selector("#pkb-title", timeout=10000)
    title = page.inner_text("#pkb-title")
    shot(page, "64-portal-article-phone")
    page.click("#pkb-resolved")
    page.wait_for_selector("#pkb-done", timeout=10000)
    shot(page, "65-portal-resolved-phone")
    with _db(server) as db:
        row = db.execute(
            "SELECT l.query, a.title FROM kb_query_log l JOIN kb_article a ON a.id = l.article_id "
            "WHERE l.kind = 'deflected'"
        ).fetchone()
    assert row == ("开小吃店要办什么证", title)
    ctx.close()
