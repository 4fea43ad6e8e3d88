"""The signed HTTP SMS gateway against a real local HTTP server (the provider's side checks the
signature as a provider would), through the real outbox, Redis and RQ worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_notices_notify import outbox, queue, run_worker  # noqa: F401  (fixtures)

from config.database import session_scope
from ticketing import notify, sms_gateway

PHONE = "+8613812341234"
SECRET = "gateway-shared-secret"
PORT = 18781  # this branch's port range (18780-18799)


class Provider:
    """A provider's HTTP endpoint: verifies the HMAC signature, records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.answer: dict = {"code": "OK", "message_id": "MSG-1"}
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ts, nonce = self.headers["X-SMS-Timestamp"], self.headers["X-SMS-Nonce"]
                msg = f"{ts}\n{nonce}\n".encode() + body
                good = hmac.new(SECRET.encode(), msg, hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(good, self.headers["X-SMS-Signature"])
                me.requests.append(
                    {
                        "path": self.path,
                        "json": json.loads(body),
                        "key": self.headers["X-SMS-Key"],
                        "valid": valid,
                        "type": self.headers["Content-Type"],
                    }
                )
                status, answer = (me.status, me.answer) if valid else (401, {"code": "BadSign"})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
        self.url = f"http://127.0.0.1:{PORT}/sms/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider(monkeypatch, settings):
    p = Provider()
    monkeypatch.setenv("CALLCENTER_SMS_HTTP_SECRET", SECRET)  # the worker's own environment
    settings.sms_gateway = "http"
    settings.sms_http_url = p.url
    settings.sms_http_key_id = "AK-test"
    settings.sms_http_sign_name = "赤壁店小二"
    yield p
    p.close()


def test_signed_http_gateway_sends_once(engine, settings, queue, provider):  # noqa: F811
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "您的诉求已受理").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert (row.status, row.provider, row.provider_id) == ("sent", "http", "MSG-1")
    (req,) = provider.requests
    assert req["valid"] and req["key"] == "AK-test" and req["path"] == "/sms/send"
    assert req["type"].startswith("application/json")
    assert req["json"] == {
        "to": PHONE,
        "content": "您的诉求已受理",
        "sign_name": "赤壁店小二",
        "request_id": f"dxe-{oid}",
    }
    assert notify.flush_pending(settings) == 0  # nothing left to send again


def test_gateway_server_error_is_retried_and_refusal_fails(
    engine,
    settings,
    queue,  # noqa: F811
    provider,
):
    provider.status = 503
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "重试").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "pending" and "503" in row.error and row.provider == "http"
    provider.status, provider.answer = 200, {"code": "isv.MOBILE_NUMBER_ILLEGAL", "message": "x"}
    assert notify.flush_pending(settings) == 1
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "failed" and "MOBILE_NUMBER_ILLEGAL" in row.error
    assert len(provider.requests) == 2


def test_a_wrong_secret_is_refused_by_the_provider(
    engine,
    settings,
    queue,  # noqa: F811
    provider,
    monkeypatch,
):
    monkeypatch.setenv("CALLCENTER_SMS_HTTP_SECRET", "not-the-secret")
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "签名错误").id
    run_worker(queue, settings)
    assert not provider.requests[0]["valid"]
    assert outbox(engine, oid).status == "failed"


def test_unconfigured_gateway_fails_loudly_and_outbox_stays_default(
    engine,
    settings,
    queue,  # noqa: F811
    monkeypatch,
):
    assert notify.gateway(settings) == "outbox"
    monkeypatch.delenv("CALLCENTER_SMS_HTTP_SECRET", raising=False)
    settings.sms_gateway = "http"
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "未配置").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "failed" and "not configured" in row.error


def test_signature_is_over_timestamp_nonce_and_exact_body() -> None:
    body, headers = sms_gateway.build_request("k", SECRET, None, 7, PHONE, "文本", now=1700000000)
    assert headers["X-SMS-Timestamp"] == "1700000000"
    expected = sms_gateway.sign(SECRET, "1700000000", headers["X-SMS-Nonce"], body)
    assert headers["X-SMS-Signature"] == expected
    assert sms_gateway.sign(SECRET, "1700000001", headers["X-SMS-Nonce"], body) != expected
    assert json.loads(body)["content"] == "文本"
