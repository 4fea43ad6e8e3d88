"""The agent console during and after a call (agent_console/web/console_call.py), server side over
the real app, with a real bridge (on its own loop, against the replaying AMI peer) serving the
console's commands: ticket edits through ticketing (a category/urgency correction needs a reason
and is recorded), notes, the blind transfer sent as AMI BlindTransfer to [dxe-transfer] (the PBX's
refusal shown in Chinese), wrap-up pausing with reason `wrapup` and the bridge holding its auto-ready,
callbacks scheduled, listed and closed in the one callback store."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from sqlmodel import select
from web_helpers import Web

from callcenter.ami.publish import keys
from callcenter.commands import TRANSFER_CHANNEL, TRANSFER_CONTEXT, TRANSFER_EXTEN, auto_ready_key
from config.database import session_scope
from config.loader import load_yaml
from ticketing import CallbackTask, Enterprise, Ticket, TicketEvent, promise_callback, utcnow
from ticketing.uscc import build_uscc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ami"))
from replay_server import AMI_DIR, make_bridge, make_server, sync_point

ROOT = Path(__file__).resolve().parents[2]
CALL = "1795569400.7"
LEG = "Local/8001@agents-0000002a;1"
SEAT = {"ext": "8001", "interface": "Local/8001@agents", "server": "pbx-cmd",
        "queues": ["dxe-enterprise"]}  # fmt: skip


class BridgeThread:
    """The real bridge of PBX "pbx-cmd" against the replaying peer, serving web commands."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        self.server = await make_server("actions-queue-members")
        r = aioredis.from_url(self.settings.redis_url)
        self.bridge = make_bridge(self.settings, self.server, redis=r, name="pbx-cmd")
        await self.bridge.start()
        await asyncio.wait_for(self.server.finished.wait(), 20)
        await sync_point(self.bridge)
        self.ready.set()
        await self.stop.wait()
        await self.bridge.stop()
        await self.server.close()
        await r.aclose()

    def sent(self, action: str) -> list[dict]:
        return [h for h in self.server.received if h.get("action") == action]


@pytest.fixture
def pbx(settings):
    if not AMI_DIR.exists():
        pytest.skip(f"no AMI captures at {AMI_DIR}")
    b = BridgeThread(settings)
    b.thread.start()
    assert b.ready.wait(30), "bridge did not start"
    yield b
    b.loop.call_soon_threadsafe(b.stop.set)
    b.thread.join(20)


def _redis(web: Web) -> redis.Redis:
    return redis.Redis.from_url(web.settings.redis_url)


def live_call(web: Web, phone: str = "13800138000", legs: list[str] | None = None) -> None:
    r = _redis(web)
    k = keys(web.settings.redis_namespace, "pbx1")
    call = {"call_id": CALL, "caller": phone, "caller_name": "张三", "status": "talking",
            "started": 0, "ivr_path": "1", "category": "enterprise", "queue": "dxe-enterprise",
            "position": 0, "wait_seconds": 4, "answered": 1, "agent": SEAT["interface"],
            "agent_name": "", "hold": False, "recording": "", "ticket_number": "",
            "legs": legs if legs is not None else ["PJSIP/trunk-00000001", LEG]}  # fmt: skip
    r.sadd(k["servers"], "pbx1")
    r.hset(k["calls"], CALL, json.dumps(call, ensure_ascii=False))
    r.close()


def hang_up(web: Web) -> None:
    r = _redis(web)
    r.hdel(keys(web.settings.redis_namespace, "pbx1")["calls"], CALL)
    r.close()


def seat(web: Web, user: str = "agent") -> None:
    r = _redis(web)
    uid = web.user_ids[user]
    r.set(f"{web.settings.redis_namespace}:console:seat:{uid}", json.dumps(SEAT))
    r.close()


def headers(web: Web) -> dict[str, str]:
    return {"X-CSRF-Token": web.csrf("/console"), "HX-Request": "true"}


def file_ticket(web: Web, h: dict[str, str]) -> str:
    r = web.client.post(
        f"/console/pop/{CALL}/ticket",
        data={"content": "咨询营业执照办理进度", "category": "enterprise", "urgency": "general"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    return re.search(r'id="pop-ticket">([A-Z0-9-]+)<', r.text).group(1)


def events(web: Web, number: str, action: str) -> list[TicketEvent]:
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        return list(
            s.exec(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == t.id, TicketEvent.action == action
                )
            ).all()
        )


def test_edit_the_calls_ticket_reclassify_needs_a_reason_and_is_recorded(web: Web):
    live_call(web)
    web.login("agent")
    h = headers(web)
    number = file_ticket(web, h)
    pop = web.client.get(f"/console/pop/{CALL}").text
    assert "建议承办部门" in pop and "置信度" in pop  # the classifier's suggestion, with confidence
    with session_scope(web.engine, read_only=True) as s:
        before = s.exec(select(Ticket).where(Ticket.number == number)).one()
    typed = {"category": "enterprise", "urgency": "critical", "reason": "",
             "content": "营业执照办理超期，企业急需开工"}  # fmt: skip
    r = web.client.post(f"/console/pop/{CALL}/edit", data=typed, headers=h)
    assert r.status_code == 422 and "更正理由" in r.text
    assert "企业急需开工" in r.text  # what was typed is kept
    assert not events(web, number, "reclassified")
    r = web.client.post(
        f"/console/pop/{CALL}/edit",
        data={**typed, "reason": "来电人称明日开工，影响生产"},
        headers=h,
    )
    assert r.status_code == 200 and "工单已更新" in r.text, r.text
    (ev,) = events(web, number, "reclassified")
    assert ev.actor == "agent" and ev.detail["reason"] == "来电人称明日开工，影响生产"
    assert ev.detail["urgency"] == {"from": "general", "to": "critical"}
    (am,) = events(web, number, "amended")
    assert am.detail["fields"] == ["content"]
    with session_scope(web.engine, read_only=True) as s:
        after = s.exec(select(Ticket).where(Ticket.number == number)).one()
    assert after.urgency == "critical" and after.content == typed["content"]
    assert after.deadline_at < before.deadline_at  # the critical matter's deadline, by the SLA rule

    bad = web.client.post(
        f"/console/pop/{CALL}/edit", data={"enterprise_uscc": "91421281MA4XXXXX1X"}, headers=h
    )
    assert bad.status_code == 422 and "统一社会信用代码" in bad.text
    assert 'value="91421281MA4XXXXX1X"' in bad.text
    code = build_uscc("MA4F5K2L")
    ok = web.client.post(
        f"/console/pop/{CALL}/edit",
        data={"enterprise_uscc": code, "enterprise_name": "赤壁市示例商贸有限公司"},
        headers=h,
    )
    assert ok.status_code == 200 and code in ok.text
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        assert s.get(Enterprise, t.enterprise_id).uscc == code

    assert (
        web.client.post(f"/console/pop/{CALL}/note", data={"note": " "}, headers=h).status_code
        == 422
    )
    r = web.client.post(
        f"/console/pop/{CALL}/note", data={"note": "来电人要求短信告知进度"}, headers=h
    )
    assert r.status_code == 200 and "来电人要求短信告知进度" in r.text
    assert events(web, number, "note")[0].detail["text"] == "来电人要求短信告知进度"
    # the ticket page shows the correction and the note in its history
    page = web.client.get(f"/tickets/{number}").text
    assert "更正类别/紧急程度" in page and "备注" in page


def test_transfer_wrap_up_and_auto_ready_through_the_bridge(web: Web, pbx: BridgeThread):
    live_call(web)
    seat(web)
    web.login("agent")
    h = headers(web)
    file_ticket(web, h)
    r = web.client.post(f"/console/pop/{CALL}/transfer", data={"ext": "12"}, headers=h)
    assert r.status_code == 422 and "分机号无效" in r.text
    r = web.client.post(f"/console/pop/{CALL}/transfer", data={"ext": "8001"}, headers=h)
    assert r.status_code == 422 and "不能转接给自己" in r.text
    assert not pbx.sent("BlindTransfer")  # refused before anything left the web
    # the replaying PBX never recorded a BlindTransfer: it refuses it, as Asterisk would
    r = web.client.post(f"/console/pop/{CALL}/transfer", data={"queue": "dxe-general"}, headers=h)
    assert r.status_code == 422 and "转接失败：交换机未执行" in r.text, r.text
    (sent,) = pbx.sent("BlindTransfer")
    assert (sent["channel"], sent["context"], sent["exten"]) == (LEG, "dxe-transfer", "dxe-general")

    hang_up(web)  # the caller hangs up: the pop is still served from the console's memory
    r = web.client.post(f"/console/pop/{CALL}/ended", headers=h)
    assert r.status_code == 200 and "通话已结束" in r.text and "秒后自动就绪" in r.text
    (pause,) = [a for a in pbx.sent("QueuePause") if a.get("paused") == "true"]
    assert pause["reason"] == "wrapup" and pause["interface"] == SEAT["interface"]
    # the bridge holds the automatic ready (30 s of wrap-up by console.yaml), not the page
    r = _redis(web)
    held = r.hget(auto_ready_key(web.settings.redis_namespace, "pbx-cmd"), SEAT["interface"])
    assert held is not None and json.loads(held)["reason"] == "wrapup"
    assert json.loads(held)["due"] > time.time() + 20
    auto = web.client.post("/console/wrapup/auto", headers=h)
    assert auto.status_code == 204  # not yet
    assert not [a for a in pbx.sent("QueuePause") if a.get("paused") == "false"]
    key = f"{web.settings.redis_namespace}:console:wrapup:{web.user_ids['agent']}"
    r.set(key, json.dumps({"call_id": CALL, "until": time.time() - 1}))  # the page's time is up
    auto = web.client.post("/console/wrapup/auto", headers=h)
    assert auto.status_code == 200 and "话后处理时间到" in auto.text, auto.text
    # display only: the page's countdown sends nothing (tests/web/test_console_autoready.py)
    assert not [a for a in pbx.sent("QueuePause") if a.get("paused") == "false"]
    assert web.client.post("/console/wrapup/auto", headers=h).status_code == 204  # once only
    r.close()
    r = web.client.post(f"/console/pop/{CALL}/wrapup", data={"disposition": "ticket"}, headers=h)
    assert r.status_code == 200 and "话后小结：已登记工单" in r.text


def test_disposition_after_the_call_makes_the_agent_ready_at_once(web: Web, pbx: BridgeThread):
    live_call(web)
    seat(web)
    web.login("agent")
    h = headers(web)
    web.client.get(f"/console/pop/{CALL}")
    hang_up(web)
    assert web.client.post(f"/console/pop/{CALL}/ended", headers=h).status_code == 200
    r = web.client.post(f"/console/pop/{CALL}/wrapup", data={"disposition": "resolved"}, headers=h)
    assert r.status_code == 200 and "话后小结：当场解答。已就绪" in r.text
    assert [a for a in pbx.sent("QueuePause") if a.get("paused") == "false"]
    # the wrap-up is over: the page's timer finds nothing to do, the bridge holds nothing
    assert web.client.post("/console/wrapup/auto", headers=h).status_code == 204
    r = _redis(web)
    assert not r.hgetall(auto_ready_key(web.settings.redis_namespace, "pbx-cmd"))
    r.close()


def test_transfer_needs_a_connected_call(web: Web):
    live_call(web, legs=["PJSIP/trunk-00000001"])
    seat(web)
    web.login("agent")
    h = headers(web)
    r = web.client.post(f"/console/pop/{CALL}/transfer", data={"queue": "dxe-general"}, headers=h)
    assert r.status_code == 422 and "当前没有可转接的通话" in r.text


def test_callbacks_scheduled_listed_and_closed_in_the_one_store(web: Web):
    live_call(web)
    web.login("agent")
    h = headers(web)
    number = file_ticket(web, h)
    past = (utcnow() + timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M")  # local = UTC+8: an hour ago
    r = web.client.post(f"/console/pop/{CALL}/callback", data={"due": past}, headers=h)
    assert r.status_code == 422 and "不能早于当前时间" in r.text
    r = web.client.post(f"/console/pop/{CALL}/callback", data={"due": ""}, headers=h)
    assert r.status_code == 422 and "请选择回访时间" in r.text
    soon = (utcnow() + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M")
    later = (utcnow() + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M")
    for due in (soon, later):  # scheduling again moves the one promise of this call
        r = web.client.post(
            f"/console/pop/{CALL}/callback", data={"due": due, "note": "告知办理结果"}, headers=h
        )
        assert r.status_code == 200 and "已预约回访" in r.text, r.text
    with session_scope(web.engine) as s:
        (task,) = s.exec(select(CallbackTask)).all()
        assert (task.reason, task.assigned_to, task.phone) == ("agent", "agent", "+8613800138000")
        assert task.ticket_id is not None and task.note == "告知办理结果"
        # the hotline owes an abandoned caller a callback, due now: every agent sees it
        promise_callback(s, web.settings, phone="+8613900139000", reason="abandoned",
                         call_id="abandoned-1", due_at=utcnow() - timedelta(minutes=5))  # fmt: skip
    assert events(web, number, "callback_promised") and events(web, number, "callback_rescheduled")
    listing = web.client.get("/console/callbacks").text
    assert "+8613900139000" in listing and "+8613800138000" in listing
    assert "1 项到期" in listing and "放弃来电" in listing
    assert listing.index("+8613900139000") < listing.index("+8613800138000")  # due first
    tid = task.id
    r = web.client.post(f"/console/callbacks/{tid}/finish", data={"outcome": "x"}, headers=h)
    assert r.status_code == 422 and "请选择回访结果" in r.text
    web.login("admin")  # another agent: someone else's promise is not theirs to close
    assert (
        web.client.post(
            f"/console/callbacks/{tid}/finish", data={"outcome": "done"}, headers=headers(web)
        ).status_code
        == 404
    )
    web.login("agent")
    h = headers(web)
    r = web.client.post(f"/console/callbacks/{tid}/finish", data={"outcome": "done"}, headers=h)
    assert r.status_code == 200 and "回访已记录：已回访" in r.text
    assert "+8613800138000" not in r.text
    assert events(web, number, "callback_done")


def test_call_actions_are_for_agents_only(web: Web):
    live_call(web)
    web.login("dispatcher")
    h = {
        "X-CSRF-Token": web.csrf("/search"),
        "HX-Request": "true",
    }  # a valid token: the role decides
    for path in ("edit", "note", "transfer", "callback", "ended", "wrapup"):
        assert web.client.post(f"/console/pop/{CALL}/{path}", headers=h).status_code == 403
    assert web.client.get("/console/callbacks").status_code == 403


def test_the_dialplan_has_exactly_the_transfer_targets_the_console_offers(settings):
    """console.yaml's queues and extension pattern ↔ [dxe-transfer] ↔ the bridge's own check."""
    text = (ROOT / "config" / "asterisk" / "extensions.conf").read_text(encoding="utf-8")
    body = text.split(f"[{TRANSFER_CONTEXT}]", 1)[1].split("\n[", 1)[0]
    extens = set(re.findall(r"^exten => ([^,]+),1,", body, re.M))
    cfg = load_yaml(settings, "console.yaml")
    assert extens == {*cfg["queues"], "_80XX"}
    for q in cfg["queues"]:
        assert TRANSFER_EXTEN.match(q)
    for ok in ("8001", "8099"):
        assert TRANSFER_EXTEN.match(ok) and re.match(cfg["transfer_extension_pattern"], ok)
    for bad in ("12345", "s", "dxe-inbound,12345", "8001\r\nAction: Originate", "hangup"):
        assert not TRANSFER_EXTEN.match(bad)
    assert TRANSFER_CHANNEL.match(LEG) and TRANSFER_CHANNEL.match("PJSIP/8001-0000001f")
    assert not TRANSFER_CHANNEL.match("Local/8001@agents-1;1\r\nAction: Hangup")
    mgr = (ROOT / "config" / "asterisk" / "manager.conf").read_text(encoding="utf-8")
    assert re.search(r"^write = .*\bcall\b", mgr, re.M)  # BlindTransfer's class
