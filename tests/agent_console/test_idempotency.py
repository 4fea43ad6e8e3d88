"""Idempotency-Key on ticket creation (staff API — fast path and router alike — and the public
form): a double click or a retry files one ticket and one SMS; the repeat answers the first."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from console_helpers import PASSWORD, assert_error, seed, serve
from fastapi.testclient import TestClient

from agent_console import create_app
from ticketing import OutboxMessage, Ticket

STAFF = {
    "channel": "window",
    "content": "食品经营许可证延续需要哪些材料？",
    "channel_data": {"window_no": "3"},
    "submitter_phone": "13800138000",
}
PUBLIC = {"channel": "web", "content": "营业执照地址变更怎么办？", "submitter_phone": "13900139000"}


def _count(engine, model) -> int:
    from sqlmodel import func, select

    from config.database import session_scope

    with session_scope(engine, read_only=True) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def _token(c, user: str = "agent") -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fastpath", "router"])
def test_staff_creation_with_a_key_files_one_ticket(settings, engine, fast_path):
    seed(engine, settings)
    with TestClient(create_app(settings, fast_path=fast_path)) as c:
        h = _token(c)
        key = str(uuid.uuid4())
        first = c.post("/api/v1/tickets", json=STAFF, headers={**h, "Idempotency-Key": key})
        assert first.status_code == 201, first.text
        again = c.post("/api/v1/tickets", json=STAFF, headers={**h, "Idempotency-Key": key})
        assert again.status_code == 201, again.text
        assert again.json()["number"] == first.json()["number"]
        assert _count(engine, Ticket) == 1

        # the same key for another matter is refused, not answered with the first ticket
        other = {**STAFF, "content": "另一件事：税务登记咨询"}
        r = c.post("/api/v1/tickets", json=other, headers={**h, "Idempotency-Key": key})
        assert assert_error(r, 409, "idempotency_key_reused")["message"]
        # another user's identical key is theirs alone
        r = c.post(
            "/api/v1/tickets",
            json=STAFF,
            headers={**_token(c, "dispatcher"), "Idempotency-Key": key},
        )
        assert r.status_code == 201 and r.json()["number"] != first.json()["number"]
        # malformed key: 422 with a Chinese message; no key: a new ticket each time (as before)
        r = c.post("/api/v1/tickets", json=STAFF, headers={**h, "Idempotency-Key": "a b"})
        assert "Idempotency-Key" in assert_error(r, 422)["message"]
        assert c.post("/api/v1/tickets", json=STAFF, headers=h).status_code == 201
        assert _count(engine, Ticket) == 3


def test_concurrent_double_clicks_file_one_ticket_and_one_sms(settings, engine):
    """Ten identical requests at once (one key each for staff and public) over a real uvicorn:
    the staff ones meet in the intake writer's batch or in consecutive ones."""
    seed(engine, settings)
    s = settings.model_copy(update={"public_rate_limit_per_minute": 1000})
    with serve(create_app(s)) as base:
        h = _token(httpx.Client(base_url=base))
        staff_key, public_key = str(uuid.uuid4()), str(uuid.uuid4())

        async def burst() -> tuple[list, list]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                staff = asyncio.gather(
                    *(
                        c.post(
                            "/api/v1/tickets",
                            json=STAFF,
                            headers={**h, "Idempotency-Key": staff_key},
                        )
                        for _ in range(10)
                    )
                )
                public = asyncio.gather(
                    *(
                        c.post(
                            "/api/v1/public/tickets",
                            json=PUBLIC,
                            headers={"Idempotency-Key": public_key},
                        )
                        for _ in range(10)
                    )
                )
                return list(await staff), list(await public)

        staff, public = asyncio.run(burst())
    assert [r.status_code for r in staff] == [201] * 10, [r.text for r in staff]
    assert [r.status_code for r in public] == [201] * 10, [r.text for r in public]
    assert len({r.json()["number"] for r in staff}) == 1
    assert len({r.json()["number"] for r in public}) == 1
    # the one-time tokens are in the first answer only (stored as digests, they cannot be
    # given again): a repeat answers the same ticket without them
    assert sum(r.json()["notice_token"] is not None for r in public) == 1
    assert _count(engine, Ticket) == 2
    # one acceptance SMS each (staff intake sends a notice too: send_notice defaults to true)
    assert _count(engine, OutboxMessage) == 2


def test_public_form_retry_returns_the_first_ticket(settings, engine):
    seed(engine, settings)
    with TestClient(create_app(settings)) as c:
        key = "retry-" + uuid.uuid4().hex
        a = c.post("/api/v1/public/tickets", json=PUBLIC, headers={"Idempotency-Key": key})
        b = c.post("/api/v1/public/tickets", json=PUBLIC, headers={"Idempotency-Key": key})
        assert a.status_code == b.status_code == 201, (a.text, b.text)
        tokens = ("notice_token", "evaluation_token")
        assert {k: v for k, v in a.json().items() if k not in tokens} == {
            k: v for k, v in b.json().items() if k not in tokens
        }
        assert a.json()["notice_token"] and b.json()["notice_token"] is None  # first answer only
        assert _count(engine, Ticket) == 1 and _count(engine, OutboxMessage) == 1
        r = c.post("/api/v1/public/tickets", json=PUBLIC, headers={"Idempotency-Key": "x" * 101})
        assert_error(r, 422)
