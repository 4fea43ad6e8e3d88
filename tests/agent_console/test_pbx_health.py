"""/healthz and /metrics report each PBX link and the FastAGI server from what the bridge and the
AGI server leave in Redis, and a PBX down never fails the web's liveness (issue 16)."""

from __future__ import annotations

import asyncio
import json
import time

import redis as sync_redis
import redis.asyncio as aioredis


def _healthz_until(api, pred, timeout=5.0):
    """/healthz answers its monitor's latest round (agent_console.health): poll until it shows
    what Redis now says (each round is at most CHECK_INTERVAL_S apart)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = api.client.get("/healthz")
        if pred(resp.json()) or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def _meta(settings, name="pbx1"):
    return f"{settings.redis_namespace}:live:{name}:meta"


def test_healthz_reports_pbx_links_without_failing_liveness(api):
    settings = api.settings
    r = sync_redis.Redis.from_url(settings.redis_url)
    body = api.client.get("/healthz").json()
    assert body["pbx"]["pbx1"]["status"] == "unknown"
    assert body["agi"]["status"] == "degraded"
    down_since = time.time() - 30
    r.hset(
        _meta(settings),
        "ops",
        json.dumps(
            {
                "connected": False,
                "disconnected_since": down_since,
                "reconnects": 2,
                "calls_in_progress": 1,
                "ivr_fallbacks": 3,
                "outcomes": {"answered": 5, "abandoned": 1},
                "reconcile": {"stored": 4, "duplicates": 1, "failed": 0},
            }
        ),
    )
    resp = _healthz_until(api, lambda b: b["pbx"]["pbx1"]["status"] != "unknown")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    pbx = resp.json()["pbx"]["pbx1"]
    assert pbx["status"] == "degraded" and "AMI disconnected since" in pbx["detail"]
    text = api.client.get("/metrics").text
    assert 'callcenter_pbx_ami_connected{pbx="pbx1"} 0.0' in text
    assert 'callcenter_pbx_ami_reconnects_total{pbx="pbx1"} 2.0' in text
    assert 'callcenter_pbx_ivr_fallbacks_total{pbx="pbx1"} 3.0' in text
    assert 'callcenter_pbx_calls_stored_total{outcome="answered",pbx="pbx1"} 5.0' in text
    assert 'callcenter_pbx_cdr_reconcile_total{pbx="pbx1",result="stored"} 4.0' in text
    r.close()


async def test_agi_heartbeat_is_reported(api):
    from ivr.agi import AgiServer

    settings = api.settings
    server = AgiServer(settings, host="127.0.0.1", port=0)
    await server.start()
    ar = aioredis.from_url(settings.redis_url)
    server.app.stats["queue"] += 3
    server.app.stats["protocol_error"] += 1
    beat = asyncio.ensure_future(server.heartbeat(ar, settings.redis_namespace, interval=0.05))
    try:
        await asyncio.sleep(0.2)
        resp = await asyncio.to_thread(
            _healthz_until, api, lambda b: b["agi"]["status"] == "ok" and b["agi"]["sessions"]
        )
        agi = resp.json()["agi"]
        assert agi["status"] == "ok" and agi["sessions"] == 4 and agi["errors"] == 1
        text = (await asyncio.to_thread(api.client.get, "/metrics")).text
        assert "callcenter_agi_errors_total 1.0" in text
    finally:
        beat.cancel()
        await server.close()
        await ar.aclose()
