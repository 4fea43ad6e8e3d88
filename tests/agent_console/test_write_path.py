"""A write route reads its user in its own transaction (deps.require on a TransactionRoute): one
session, one transaction per request, and every check of the user still made, before anything
is written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from console_helpers import DEPT_A, assert_error
from sqlalchemy import event
from sqlmodel import select

from agent_console.app import iter_routes
from config.database import session_scope
from ticketing import SubOrder, TicketEvent, TicketIn, User, submit


def _suborder(api) -> int:
    with session_scope(api.engine) as s:
        t = submit(
            s,
            TicketIn(channel="web", content="写路径测试：营业执照办理", departments=[DEPT_A]),
            settings=api.settings,
            actor="test",
        )
        s.flush()
        return s.exec(select(SubOrder.id).where(SubOrder.ticket_id == t.id)).one()


@contextmanager
def _transactions(engine) -> Iterator[list[str]]:
    """The transactions that requests begin on the app's engine meanwhile ("write" or "read"),
    not counting the background threads' (the health monitor's checks)."""
    seen: list[str] = []

    def begin(conn) -> None:
        if threading.current_thread().name.startswith("AnyIO worker"):
            seen.append("read" if conn.get_execution_options().get("readonly") else "write")

    event.listen(engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", begin)


def _events(api, suborder_id: int) -> list[str]:
    with session_scope(api.engine, read_only=True) as s:
        return list(
            s.exec(select(TicketEvent.action).where(TicketEvent.suborder_id == suborder_id))
        )


def test_an_accept_is_one_transaction_and_still_audited(api):
    so = _suborder(api)
    headers = api.auth("handler")
    with _transactions(api.client.app.state.engine) as seen:
        r = api.client.post(f"/api/v1/suborders/{so}/accept", headers=headers)
    assert r.status_code == 200, r.text
    assert seen == ["write"]  # the user was read in the route's own transaction
    assert "suborder_accepted" in _events(api, so)


def test_the_user_is_still_checked_and_nothing_is_written_when_refused(api):
    so = _suborder(api)
    before = _events(api, so)
    handler, agent = api.auth("handler"), api.auth("agent")
    # a role the route does not allow
    assert_error(api.client.post(f"/api/v1/suborders/{so}/accept", headers=agent), 403)
    # a revoked token (logout bumps the token version), a deactivated user
    with session_scope(api.engine) as s:
        user = s.exec(select(User).where(User.username == "handler")).one()
        user.token_version += 1
    assert_error(api.client.post(f"/api/v1/suborders/{so}/accept", headers=handler), 401)
    fresh = {"Authorization": f"Bearer {api.token('handler_b')}"}
    with session_scope(api.engine) as s:
        s.exec(select(User).where(User.username == "handler_b")).one().active = False
    assert_error(api.client.post(f"/api/v1/suborders/{so}/accept", headers=fresh), 401)
    # a bad token and a cookie without the CSRF header
    bad = {"Authorization": "Bearer v1.x.y"}
    assert_error(api.client.post(f"/api/v1/suborders/{so}/accept", headers=bad), 401)
    api.client.cookies.set("dxe_session", api.token("dispatcher"))
    try:
        assert_error(api.client.post(f"/api/v1/suborders/{so}/reply", json={"text": "x"}), 403)
    finally:
        api.client.cookies.clear()
    assert _events(api, so) == before


def test_every_route_that_takes_its_user_directly_reads_it_in_its_transaction():
    """Where a sub-dependency took the user too, it would get the unchecked token: such routes
    keep the separate check (user_in_transaction False) and none exists today."""
    direct = [
        path
        for path, route in iter_routes()
        if getattr(route.endpoint, "_user_params", None) and not route.user_in_transaction
    ]
    assert direct == []
    assert any(
        p == "/api/v1/suborders/{suborder_id}/accept" and r.user_in_transaction
        for p, r in iter_routes()
    )
