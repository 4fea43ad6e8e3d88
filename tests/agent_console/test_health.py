"""/healthz answers from agent_console.health's monitor: never behind writes, and still truthful.

Before, a probe checked the database and Redis itself, in a worker thread and with Redis round
trips on the event loop: under a burst of writes it queued behind them. Now it answers the
monitor's latest round at once; a round that does not come back (a hung database) answers 503.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from console_helpers import DEPT_A, PASSWORD, seed, serve
from sqlmodel import select

from agent_console import create_app
from agent_console import health as health_mod
from config.database import session_scope
from ticketing import SubOrder, TicketIn, submit

WAITING_WRITES = 12  # more than the write limiter's threads on either database


def _one_suborder(engine, settings) -> int:
    with session_scope(engine) as s:
        t = submit(
            s,
            TicketIn(channel="web", content="健康检查测试：企业开办咨询", departments=[DEPT_A]),
            settings=settings,
            actor="test",
        )
        s.flush()
        return s.exec(select(SubOrder.id).where(SubOrder.ticket_id == t.id)).one()


def test_healthz_answers_while_a_write_is_held_and_writes_wait(settings, engine):
    seed(engine, settings)
    so_id = _one_suborder(engine, settings)
    app = create_app(settings)
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/api/v1/auth/login", json={"username": "handler", "password": PASSWORD})
        token = r.json()["access_token"]
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            # the app's own engine: on SQLite this takes the process's writer lock, on
            # PostgreSQL the sub-order's row lock; every accept below waits behind it
            with app.state.engine.begin() as conn:
                conn.execute(select(SubOrder).where(SubOrder.id == so_id).with_for_update())
                held.set()
                release.wait(30)

        def accept() -> int:
            with httpx.Client(base_url=base, timeout=60) as w:
                return w.post(
                    f"/api/v1/suborders/{so_id}/accept",
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(10)
            with ThreadPoolExecutor(WAITING_WRITES) as pool:
                writes = [pool.submit(accept) for _ in range(WAITING_WRITES)]
                time.sleep(0.5)  # let them reach the lock and fill the write threads
                probes = [c.get("/healthz", timeout=5) for _ in range(5)]
                pending = sum(not w.done() for w in writes)
                release.set()
                statuses = sorted(w.result() for w in writes)
        finally:
            release.set()
            holder.join(30)
    assert [p.status_code for p in probes] == [200] * 5
    assert probes[-1].json()["checks"] == {"database": "ok", "redis": "ok"}
    assert pending == WAITING_WRITES  # every probe was answered while all writes still waited
    assert statuses == [200] + [409] * (WAITING_WRITES - 1)  # one accept wins, nothing lost


def test_a_check_that_does_not_come_back_answers_503(api, monkeypatch):
    monitor = api.client.app.state.health
    stuck, unstick = threading.Event(), threading.Event()
    real = health_mod.check_database

    def hanging(engine) -> str:
        stuck.set()
        unstick.wait(30)
        return real(engine)

    assert api.client.get("/healthz").status_code == 200
    monkeypatch.setattr(monitor, "stale_after_s", 0.3)
    monkeypatch.setattr(health_mod, "check_database", hanging)
    try:
        assert stuck.wait(5), "the monitor did not check again"
        time.sleep(0.4)
        r = api.client.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down"
        assert body["checks"]["database"].startswith("down: no answer for")
        assert body["checks"]["redis"] == "ok"  # the last round's answer, not invented
    finally:
        monkeypatch.setattr(health_mod, "check_database", real)
        unstick.set()
    deadline = time.monotonic() + 5
    while api.client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "healthz did not recover"
        time.sleep(0.05)
