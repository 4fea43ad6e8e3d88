"""Error shape for framework errors and crashes, /healthz, /metrics, the OpenAPI document."""

from __future__ import annotations

import logging
import socket

from console_helpers import assert_error, make_client, seed

from agent_console.deps import SessionDep
from ticketing.errors import InvalidInput
from ticketing.models import Ticket, User


def test_unknown_route_and_method_use_the_error_shape(api):
    assert_error(api.client.get("/api/v1/nowhere"), 404, "not_found")
    assert_error(api.client.delete("/api/v1/tickets", headers=api.auth("admin")), 405)


def test_unexpected_error_is_500_logged_and_leaks_nothing(api, caplog):
    from config.logging import configure_logging

    configure_logging(api.settings)  # structlog -> stdlib, as the web process does
    app = api.client.app

    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/boom", boom)
    with caplog.at_level(logging.ERROR):
        r = api.client.get("/boom")
    err = assert_error(r, 500, "internal_error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert err["details"]["request_id"] == r.headers["x-request-id"]
    assert any("unhandled_error" in rec.getMessage() or rec.exc_info for rec in caplog.records)


def test_a_number_the_database_cannot_hold_is_422_on_both_backends(api):
    """PostgreSQL says DataError; SQLite's driver raises a bare OverflowError (no DBAPI error):
    both are the client's input, 422, not a 500. Ids are bounded at the edge (deps.RowId); this is
    the net under a number that slips past."""
    from sqlmodel import select

    def unbounded(session: SessionDep, n: int) -> dict:
        session.exec(select(User).where(User.id == n)).first()
        return {}

    api.client.app.add_api_route("/unbounded/{n}", unbounded)
    assert api.client.get("/unbounded/1").status_code == 200
    assert_error(api.client.get(f"/unbounded/{2**70}"), 422, "invalid_input")
    assert_error(
        api.client.post(f"/api/v1/suborders/{2**70}/accept", headers=api.auth("handler")), 422
    )


def test_healthz_ok(api):
    r = api.client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "redis": "ok"}


def test_healthz_503_names_what_is_down(settings, engine):
    seed(engine, settings)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    with make_client(dead) as c:
        r = c.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down" and body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("down")


def test_metrics(api):
    c = api.client
    c.post(
        "/api/v1/public/tickets",
        json={"channel": "web", "content": "咨询营业执照办理", "submitter_phone": "13812345678"},
    )
    c.get("/api/v1/tickets/DXE-19990101-000001", headers=api.auth("admin"))
    text = c.get("/metrics").text
    assert 'callcenter_tickets_created_total{channel="web"} 1.0' in text
    assert 'route="/api/v1/tickets/{number}",status="404"' in text
    assert 'route="/api/v1/public/tickets",status="201"' in text
    assert "callcenter_http_request_duration_seconds_bucket" in text
    assert "callcenter_open_tickets{status=" in text
    assert "DXE-19990101" not in text  # raw paths never become labels


def test_openapi_declares_tags_models_and_errors(api):
    spec = api.client.get("/openapi.json").json()
    assert {t["name"] for t in spec["tags"]} >= {"auth", "tickets", "public", "ops"}
    assert "ErrorBody" in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, op in ops.items():
            assert op.get("tags"), (method, path)
            codes = set(op["responses"])
            assert "500" in codes, (method, path)
            assert any(c.startswith("4") for c in codes), (method, path)
            for c in (c for c in codes if not c.startswith("2")):  # 202: a queued push
                ref = op["responses"][c]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (method, path, c)
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_staff_body_limit_is_one_mebibyte(api):
    before = api.count(Ticket)
    body = b'{"channel": "window", "content": "' + b"x" * (1024 * 1024) + b'"}'
    r = api.client.post(
        "/api/v1/tickets",
        content=body,
        headers={**api.auth("dispatcher"), "content-type": "application/json"},
    )
    assert_error(r, 413, "payload_too_large")
    assert api.count(Ticket) == before


def test_a_failing_request_rolls_back_what_it_already_wrote(api):
    """One transaction per request: rows written before the error are gone (domain error and crash)."""

    def half_written(session: SessionDep, crash: bool = False) -> dict:
        session.add(User(username="ghost", password_hash="x", role="agent"))
        session.flush()  # the row is in the transaction now
        if crash:
            raise RuntimeError("after the write")
        raise InvalidInput("late validation failure")

    api.client.app.add_api_route("/half", half_written, methods=["POST"])
    before = api.count(User)
    assert_error(api.client.post("/half"), 422, "invalid_input")
    assert_error(api.client.post("/half?crash=true"), 500, "internal_error")
    assert api.count(User) == before
