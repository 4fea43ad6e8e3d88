"""The agent console's server side (TestClient): queue commands with no bridge give a clear
error; the pop of a live call (written to Redis as the bridge's Publisher writes it) files one
ticket per call, linked to the call, and shows the caller's history; only agents (and admin)."""

from __future__ import annotations

import json
import re

import redis
from sqlmodel import func, select
from web_helpers import Web

from callcenter.ami.publish import keys
from config.database import session_scope
from ticketing import Ticket

CALL = "1795569321.1"


def live_call(web: Web, phone: str = "13800138000") -> None:
    r = redis.Redis.from_url(web.settings.redis_url)
    k = keys(web.settings.redis_namespace, "pbx1")
    call = {"call_id": CALL, "caller": phone, "caller_name": "张三", "status": "ringing",
            "started": 0, "ivr_path": "1", "category": "enterprise", "queue": "dxe-enterprise",
            "position": 0, "wait_seconds": 4, "answered": None, "agent": "", "agent_name": "",
            "hold": False, "recording": "", "ticket_number": "", "legs": []}  # fmt: skip
    r.sadd(k["servers"], "pbx1")
    r.hset(k["calls"], CALL, json.dumps(call, ensure_ascii=False))
    r.close()


def test_queue_login_without_a_bridge_is_a_clear_error(web: Web):
    web.login("agent")
    page = web.client.get("/console")
    assert page.status_code == 200 and "签入" in page.text
    csrf = web.csrf("/console")
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    r = web.client.post("/console/queue", data={"action": "login", "ext": "12a"}, headers=h)
    assert r.status_code == 422 and "分机号应为 2-8 位数字" in r.text
    for ext in ("²²", "８００１"):  # str.isdigit() says yes; no PBX dials them
        r = web.client.post("/console/queue", data={"action": "login", "ext": ext}, headers=h)
        assert r.status_code == 422 and "分机号应为 2-8 位数字" in r.text
    r = web.client.post(
        "/console/queue",
        data={"action": "login", "ext": "8001", "server": "pbx1", "queues": ["dxe-enterprise"]},
        headers=h,
    )
    assert r.status_code == 422 and "桥接服务无应答" in r.text
    assert 'value="8001"' in r.text  # what was typed is kept
    r = web.client.post("/console/queue", data={"action": "ready"}, headers=h)
    assert "请先签入队列" in r.text


def test_pop_files_one_ticket_per_call_and_links_it(web: Web):
    live_call(web)
    web.login("agent")
    pop = web.client.get(f"/console/pop/{CALL}")
    assert pop.status_code == 200
    assert "13800138000" in pop.text and "首次来电" in pop.text
    assert web.client.get("/console/pop/no-such-call").status_code == 404
    csrf = web.csrf("/console")
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    bad = web.client.post(f"/console/pop/{CALL}/ticket", data={"content": ""}, headers=h)
    assert bad.status_code == 422 and "请填写诉求内容" in bad.text
    for _ in range(2):  # the second save returns the same ticket: one per call
        r = web.client.post(
            f"/console/pop/{CALL}/ticket",
            data={"content": "咨询营业执照办理进度", "category": "enterprise"},
            headers=h,
        )
        assert r.status_code == 200, r.text
    number = re.search(r'id="pop-ticket">([A-Z0-9-]+)<', r.text).group(1)
    with session_scope(web.engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 1
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        assert t.channel == "hotline" and t.channel_data["call_id"] == CALL
        assert t.created_by == "agent"
    r = redis.Redis.from_url(web.settings.redis_url)
    link = r.hget(f"{web.settings.redis_namespace}:live:ticket-links", CALL)
    r.close()
    assert link.decode() == number  # the bridge files no second ticket when the call ends
    # the next pop of this caller shows the ticket in the caller's history
    assert number in web.client.get(f"/console/pop/{CALL}").text
    r = web.client.post(f"/console/pop/{CALL}/wrapup", data={"disposition": "nope"}, headers=h)
    assert r.status_code == 422 and "请选择话后小结" in r.text
    r = web.client.post(f"/console/pop/{CALL}/wrapup", data={"disposition": "ticket"}, headers=h)
    assert r.status_code == 200 and "话后小结：已登记工单" in r.text


def test_console_is_for_agents(web: Web):
    live_call(web)
    for who in ("dispatcher", "handler", "leader"):
        web.login(who)
        assert web.client.get("/console").status_code == 403
        assert web.client.get(f"/console/pop/{CALL}").status_code == 403
        assert web.client.get("/console/events").status_code == 403
