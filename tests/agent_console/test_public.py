"""The public submission endpoints: rate limit (429 + Retry-After), body limit (413), content limit,
channel restriction — and that refused requests write nothing."""

from __future__ import annotations

import pytest
from console_helpers import assert_error, fresh_window, make_client, seed

from ticketing.models import Notice, Ticket

FORM = {"channel": "mobile", "content": "园区停车难，请协调。", "submitter_phone": "13912345678"}


@pytest.fixture
def public(request, settings, engine):
    """Public client; limit 3/min unless the test is marked @pytest.mark.parametrize('limit')."""
    seed(engine, settings)
    limit = getattr(request, "param", 3)
    s = settings.model_copy(
        update={"public_rate_limit_per_minute": limit, "public_max_content_chars": 200}
    )
    with make_client(s) as c:
        yield c


def _count(engine, model):
    from sqlmodel import func, select

    from config.database import session_scope

    with session_scope(engine, read_only=True) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_public_submission_returns_number_and_notice_token(public, engine):
    r = public.post("/api/v1/public/tickets", json=FORM)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["number"].startswith("DXE-") and body["notice_token"]
    assert _count(engine, Notice) == 1
    assert_error(public.post("/api/v1/public/notices/unknown-token/confirm"), 404)


def test_rate_limit_per_client_ip(public, engine):
    fresh_window()
    codes = [public.post("/api/v1/public/tickets", json=FORM).status_code for _ in range(3)]
    assert codes == [201, 201, 201]
    r = public.post("/api/v1/public/tickets", json=FORM)
    err = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert err["details"]["limit"] == 3
    assert _count(engine, Ticket) == 3
    # every public endpoint shares the bucket
    assert_error(public.post("/api/v1/public/notices/whatever/confirm"), 429)


@pytest.mark.parametrize("public", [50], indirect=True)
def test_body_and_content_limits(public, engine):
    too_long = {**FORM, "content": "字" * 201}
    err = assert_error(
        public.post("/api/v1/public/tickets", json=too_long), 422, "content_too_long"
    )
    assert err["details"]["max_chars"] == 200
    huge = {**FORM, "content": "字" * 100_000}
    err = assert_error(public.post("/api/v1/public/tickets", json=huge), 413, "payload_too_large")
    # a chunked body (no Content-Length) is cut off at the limit as well

    def chunks():
        yield b'{"channel": "web", "content": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    r = public.post(
        "/api/v1/public/tickets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(r, 413)
    assert _count(engine, Ticket) == 0


@pytest.mark.parametrize("public", [50], indirect=True)
def test_public_channel_and_fields_are_restricted(public, engine):
    for body in (
        {**FORM, "channel": "hotline"},
        {**FORM, "urgency": "critical"},  # the public cannot set urgency
        {**FORM, "departments": ["SCJG"]},
        {k: v for k, v in FORM.items() if k != "submitter_phone"},
    ):
        assert_error(public.post("/api/v1/public/tickets", json=body), 422)
    assert_error(
        public.post("/api/v1/public/tickets", json={**FORM, "submitter_phone": "123"}), 422
    )
    assert _count(engine, Ticket) == 0
