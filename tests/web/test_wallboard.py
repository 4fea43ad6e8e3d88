"""The supervisor wallboard's server side: who may open and control it, control actions through the
Redis command channel to a bridge-side command server (serve_commands, as the bridge runs it) with
an audit row each, the hub pushing a full board then changes, the xlsx/CSV report from stored
records, and the agent's own figures block."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import redis
import redis.asyncio as aioredis
from openpyxl import load_workbook
from sqlmodel import select
from web_helpers import Web

from callcenter.ami.actions import ActionResult
from callcenter.ami.publish import keys
from callcenter.commands import serve_commands
from callcenter.models import CallRecord, ControlAudit
from config.database import session_scope


class RecordingActions:
    """Stands in for AmiActions (Asterisk itself is not in these page tests): records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        async def do(*args, **kw):
            self.calls.append((name, args, kw))
            return ActionResult(name, "ok")

        return do


class CommandServer:
    def __init__(self, settings, server: str = "pbx1") -> None:
        self.actions = RecordingActions()
        self.settings, self.server = settings, server
        self.running = True
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        r = aioredis.from_url(self.settings.redis_url)
        await serve_commands(r, self.settings.redis_namespace, self.server, self.actions,
                             running=lambda: self.running)  # fmt: skip
        await r.aclose()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join(5)


def publish_agents(web: Web) -> None:
    r = redis.Redis.from_url(web.settings.redis_url)
    k = keys(web.settings.redis_namespace, "pbx1")
    agent = {"interface": "Local/8001@agents", "name": "张敏", "state": "ready",
             "pause_reason": "", "paused_queues": [], "call_id": "", "ringing": False,
             "queues": {"dxe-general": {"state": "ready", "paused": False, "reason": "",
                                        "penalty": 0, "status": "1"}},
             "calls_taken": 0, "state_since": time.time() - 30}  # fmt: skip
    queue = {"name": "dxe-general", "waiting": 0, "callers": [], "members": []}
    r.sadd(k["servers"], "pbx1")
    r.hset(k["agents"], agent["interface"], json.dumps(agent, ensure_ascii=False))
    r.hset(k["queues"], "dxe-general", json.dumps(queue))
    r.close()


def h(web: Web) -> dict[str, str]:
    return {"X-CSRF-Token": web.csrf("/wallboard"), "HX-Request": "true"}


def test_who_sees_the_board_and_who_controls(web: Web):
    web.login("supervisor")
    page = web.client.get("/wallboard")
    assert page.status_code == 200 and "实时监控" in page.text and 'data-control="yes"' in page.text
    assert "/static/wallboard.js" in page.text and "GB/T 33358" in page.text
    web.login("leader")
    page = web.client.get("/wallboard")
    assert page.status_code == 200 and 'data-control="no"' in page.text
    r = web.client.post("/wallboard/control", headers=h(web),
                        data={"action": "unpause", "server": "pbx1", "interface": "Local/8001@agents"})  # fmt: skip
    assert r.status_code == 403
    for role in ("agent", "dispatcher", "handler"):
        web.login(role)
        assert web.client.get("/wallboard").status_code == 403
        assert web.client.get("/wallboard/report?start=2026-01-01").status_code == 403


def test_control_without_a_bridge_is_a_clear_error_and_audited(web: Web):
    web.login("supervisor")
    r = web.client.post("/wallboard/control", headers=h(web), data={
        "action": "pause", "server": "pbx1", "interface": "Local/8001@agents", "reason": "meal"})  # fmt: skip
    assert r.status_code == 422 and "桥接服务无应答" in r.text
    bad = web.client.post("/wallboard/control", headers=h(web), data={
        "action": "pause", "server": "pbx1", "interface": "Local/8001@agents", "reason": "nap"})  # fmt: skip
    assert bad.status_code == 422 and "请选择小休原因" in bad.text
    odd = web.client.post("/wallboard/control", headers=h(web), data={
        "action": "pause", "server": "nowhere", "interface": "Local/8001@agents", "reason": "meal"})  # fmt: skip
    assert odd.status_code == 422 and "未知的交换机" in odd.text
    with session_scope(web.engine, read_only=True) as s:
        (row,) = s.exec(select(ControlAudit)).all()  # refused input never reaches the bridge
    assert (row.actor, row.command, row.target, row.ok) == ("supervisor", "pause",
                                                            "Local/8001@agents", False)  # fmt: skip
    assert "无应答" in row.result and row.args["reason"] == "meal"


def test_control_through_the_bridge_pause_logout_and_listen(web: Web):
    publish_agents(web)
    web.login("supervisor")
    with CommandServer(web.settings) as srv:
        r = web.client.post("/wallboard/control", headers=h(web), data={
            "action": "pause", "server": "pbx1", "interface": "Local/8001@agents",
            "reason": "meeting"})  # fmt: skip
        assert r.status_code == 200 and "已置为小休" in r.text, r.text
        r = web.client.post("/wallboard/control", headers=h(web), data={
            "action": "logout", "server": "pbx1", "interface": "Local/8001@agents"})  # fmt: skip
        assert r.status_code == 200 and "已签出" in r.text, r.text
        r = web.client.post("/wallboard/control", headers=h(web), data={
            "action": "listen", "server": "pbx1", "interface": "Local/8001@agents", "ext": ""})  # fmt: skip
        assert r.status_code == 422 and "分机号" in r.text
        r = web.client.post("/wallboard/control", headers=h(web), data={
            "action": "whisper", "server": "pbx1", "interface": "Local/8001@agents",
            "ext": "8009"})  # fmt: skip
        assert r.status_code == 200 and "已耳语" in r.text, r.text
    names = [(n, a, kw) for n, a, kw in srv.actions.calls]
    assert names[0] == ("queue_pause", ("Local/8001@agents",), {"queue": None, "reason": "meeting"})
    assert names[1] == ("queue_remove", ("dxe-general", "Local/8001@agents"), {})
    spy = names[2]
    assert spy[0] == "originate_callback" and spy[1] == (
        "PJSIP/8009",
    )  # wallboard.yaml spy.phone_template
    assert spy[2]["context"] == "dxe-spy" and spy[2]["exten"] == "whisper"
    assert spy[2]["variables"] == {"SPY_TARGET": "Local/8001@agents"}
    with session_scope(web.engine, read_only=True) as s:
        rows = s.exec(select(ControlAudit).order_by(ControlAudit.id)).all()
    # the listen without an extension was refused before the bridge: not an action, not audited
    assert [(x.command, x.ok) for x in rows] == [("pause", True), ("logout", True),
                                                 ("whisper", True)]  # fmt: skip
    assert all(x.actor == "supervisor" and x.at is not None for x in rows)


def store_calls(web: Web) -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(minutes=5)
    with session_scope(web.engine) as s:
        for i, (disp, wait, talk) in enumerate(
            [("answered", 3, 60), ("answered", 20, 100), ("abandoned", 2, 0), ("abandoned", 30, 0)]
        ):
            s.add(CallRecord(call_id=f"c{i}", server="pbx1", started_at=now, disposition=disp,
                             queue="dxe-general", wait_seconds=wait, talk_seconds=talk,
                             answered_at=now if disp == "answered" else None,
                             ended_at=now + timedelta(seconds=wait + talk),
                             agent="Local/8001@agents" if disp == "answered" else None,
                             agent_name="张敏" if disp == "answered" else None))  # fmt: skip
    return now


def test_report_csv_and_xlsx_from_stored_records(web: Web):
    store_calls(web)
    web.login("leader")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    r = web.client.get(f"/wallboard/report?start={today}&end={today}&fmt=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    head = rows.index(next(x for x in rows if x and x[0] == "队列"))
    q = dict(zip(rows[head], rows[head + 1], strict=True))
    # offered 4, answered 2 (1 within 15 s), abandoned 2 (1 short, < 5 s)
    assert (q["队列"], q["呼入"], q["接通"], q["放弃"], q["短时放弃"]) == (
        "dxe-general",
        "4",
        "2",
        "2",
        "1",
    )
    assert q["服务水平(÷接通)"] == "50.0%" and q["服务水平(÷呼入-短时放弃)"] == "33.3%"
    assert (
        q["平均应答(秒)"] == "11.5" and q["放弃率"] == "50.0%" and q["平均处理时长(秒)"] == "80.0"
    )
    x = web.client.get(f"/wallboard/report?start={today}&fmt=xlsx")
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.content))
    assert wb.sheetnames == ["按队列", "按坐席", "按半小时"]
    assert [c.value for c in wb["按队列"][3]][:3] == ["dxe-general", 4, 2]
    assert wb["按坐席"]["A3"].value == "张敏" and wb["按坐席"]["D3"].value == 2
    for bad, msg in (("start=2026-13-01", "日期格式"), (f"start={today}&end=2020-01-01", "结束日期"),
                     ("start=2026-01-01&end=2026-12-31", "最多"), (f"start={today}&fmt=pdf", "格式")):  # fmt: skip
        r = web.client.get(f"/wallboard/report?{bad}")
        assert r.status_code == 422 and msg in r.text, bad


def test_agent_sees_own_figures_block(web: Web):
    store_calls(web)
    web.login("agent")
    r = web.client.get("/console/my-figures")
    assert r.status_code == 200 and "签入队列后显示" in r.text
    rc = redis.Redis.from_url(web.settings.redis_url)
    rc.set(f"{web.settings.redis_namespace}:console:seat:{web.user_ids['agent']}", json.dumps(
        {"ext": "8001", "interface": "Local/8001@agents", "server": "pbx1", "queues": []}))  # fmt: skip
    rc.close()
    r = web.client.get("/console/my-figures")
    assert "<b>2</b><span>接听通话</span>" in r.text and "<b>80</b>" in r.text
    assert 'hx-get="/console/my-figures"' in web.client.get("/console").text
    web.login("supervisor")
    assert web.client.get("/console/my-figures").status_code == 403


async def test_hub_sends_a_full_board_then_changes(settings, engine):
    from agent_console.web.wallboard_hub import Hub

    sr = redis.Redis.from_url(settings.redis_url)
    app = SimpleNamespace(state=SimpleNamespace(redis=sr, settings=settings, engine=engine))
    k = keys(settings.redis_namespace, "pbx1")
    sr.sadd(k["servers"], "pbx1")
    sr.hset(
        k["queues"], "dxe-general", json.dumps({"name": "dxe-general", "waiting": 0, "callers": []})
    )
    hub = Hub(app)
    q = await hub.join()
    first = json.loads(await asyncio.wait_for(q.get(), 5))
    assert first["queues"]["dxe-general"]["live"]["waiting"] == 0
    now = time.time()
    delta = {"server": "pbx1", "seq": 2, "ts": now, "calls": {}, "agents": {},
             "queues": {"dxe-general": {"name": "dxe-general", "waiting": 1,
                                        "callers": [{"joined_at": now - 70}]}}}  # fmt: skip
    sr.publish(k["channel"], json.dumps(delta))
    while True:
        b = json.loads(await asyncio.wait_for(q.get(), 5))
        if b["queues"]["dxe-general"]["live"]["waiting"] == 1:
            break
    assert b["queues"]["dxe-general"]["live"]["longest_wait"] >= 70
    assert any(a["kind"] == "wait" for a in b["alerts"])
    # a second client joining now gets the current board at once
    q2 = await hub.join()
    assert json.loads(q2.get_nowait())["queues"]["dxe-general"]["live"]["waiting"] == 1
    hub.leave(q)
    hub.leave(q2)
    hub._task.cancel()
    sr.close()
