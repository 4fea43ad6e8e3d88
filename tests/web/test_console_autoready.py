"""Automatic ready after wrap-up is the bridge's (callcenter.commands, "Automatic ready"): the real
app and a real bridge against the replaying AMI peer, with a short wrap-up from a console.yaml in
the test's config directory. The page never posts its countdown's end: the agent is made ready
anyway; an agent who paused for another reason during the wrap-up stays paused."""

from __future__ import annotations

import json
import time

import pytest
import redis
import test_console_call as cc
import yaml
from web_helpers import Web

from callcenter.commands import auto_ready_key
from config.loader import DEFAULTS_DIR
from config.settings import Settings

WRAPUP = 2  # seconds of wrap-up (console.yaml wrapup_seconds)
pbx = cc.pbx  # the real bridge of PBX "pbx-cmd" against the replaying peer


@pytest.fixture
def settings(settings: Settings, tmp_path) -> Settings:
    cfg = yaml.safe_load((DEFAULTS_DIR / "console.yaml").read_text(encoding="utf-8"))
    cfg["wrapup_seconds"] = WRAPUP
    d = tmp_path / "config"
    d.mkdir()
    (d / "console.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return settings.model_copy(update={"config_dir": d})


def _unpauses(pbx: cc.BridgeThread, interface: str) -> list[dict]:
    return [
        a
        for a in pbx.sent("QueuePause")
        if a.get("paused") == "false" and a.get("interface") == interface
    ]


def _wait_for(check, limit: float = 30.0) -> bool:
    """Wait (at most `limit` s, far beyond the wrap-up) for the bridge's side to happen."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _pauses(pbx: cc.BridgeThread) -> list[dict]:
    return [a for a in pbx.sent("QueuePause") if a.get("paused") == "true"]


def _end_the_call(web: Web, pbx: cc.BridgeThread) -> dict[str, str]:
    cc.live_call(web)
    cc.seat(web)
    web.login("agent")
    h = cc.headers(web)
    web.client.get(f"/console/pop/{cc.CALL}")
    cc.hang_up(web)
    r = web.client.post(f"/console/pop/{cc.CALL}/ended", headers=h)
    assert r.status_code == 200 and "秒后自动就绪" in r.text, r.text
    (pause,) = _pauses(pbx)
    assert pause["reason"] == "wrapup"
    return h


def test_the_bridge_makes_the_agent_ready_when_the_page_never_calls_back(
    web: Web, pbx: cc.BridgeThread
) -> None:
    _end_the_call(web, pbx)
    iface = cc.SEAT["interface"]
    assert not _unpauses(pbx, iface)  # not at once: after the wrap-up time
    # the page is gone: nobody posts /console/wrapup/auto; the bridge readies the agent itself
    assert _wait_for(lambda: bool(_unpauses(pbx, iface))), "the agent was never made ready"
    r = redis.Redis.from_url(web.settings.redis_url)
    assert not r.hgetall(auto_ready_key(web.settings.redis_namespace, "pbx-cmd"))  # once only
    r.close()
    time.sleep(1.5)  # a second round of the bridge's check sends nothing more
    assert len(_unpauses(pbx, iface)) == 1


def test_an_agent_who_paused_with_a_reason_during_wrap_up_stays_paused(
    web: Web, pbx: cc.BridgeThread
) -> None:
    h = _end_the_call(web, pbx)
    due = time.time() + WRAPUP
    r = web.client.post("/console/queue", data={"action": "pause", "reason": "meeting"}, headers=h)
    assert r.status_code == 200 and "已小休" in r.text, r.text
    (_, meeting) = _pauses(pbx)
    assert meeting["reason"] == "meeting"
    # a marker wrap-up of another agent, due after this one: once the bridge has made that one
    # ready, it has checked past this agent's wrap-up time
    marker = "Local/8004@agents"
    rc = redis.Redis.from_url(web.settings.redis_url)
    rc.hset(
        auto_ready_key(web.settings.redis_namespace, "pbx-cmd"),
        marker,
        json.dumps({"due": due + 0.5, "reason": "wrapup", "actor": "test"}),
    )
    rc.close()
    assert _wait_for(lambda: bool(_unpauses(pbx, marker))), "the bridge never checked"
    assert time.time() >= due
    assert not _unpauses(pbx, cc.SEAT["interface"])  # still paused for the meeting
    # the page's countdown ending is display only: it sends nothing to the PBX
    sent = len(pbx.sent("QueuePause"))
    web.client.post("/console/wrapup/auto", headers=h)
    assert len(pbx.sent("QueuePause")) == sent
