"""Outbox SMS through real Redis + a real RQ worker (logged and Twilio mode), Redis down, notices."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import redis
import structlog
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import func
from sqlmodel import select

from config.database import session_scope
from config.queues import get_queue
from ticketing import notify
from ticketing.errors import InvalidInput, NotFound
from ticketing.events import history
from ticketing.intake import submit
from ticketing.models import Notice, OutboxMessage, Ticket, TicketEvent
from ticketing.notices import confirm_notice, create_acceptance_notice, issued_tokens
from ticketing.schemas import TicketIn

PHONE = "+8613812341234"


@pytest.fixture
def queue(settings):
    q = get_queue(settings, "notify")
    yield q
    # job hashes are not under the namespace prefix; remove the ones this test made
    ids = set(q.job_ids)
    for reg in (
        q.finished_job_registry,
        q.failed_job_registry,
        q.scheduled_job_registry,
        q.started_job_registry,
    ):
        ids.update(reg.get_job_ids())
    for jid in ids:
        if q.connection.exists(f"rq:job:{jid}"):
            Job.fetch(jid, connection=q.connection).delete()


def run_worker(queue, settings) -> None:
    SimpleWorker([queue], connection=queue.connection, name=f"{settings.redis_namespace}-w").work(
        burst=True
    )


def outbox(engine, oid) -> OutboxMessage:
    with session_scope(engine, read_only=True) as s:
        return s.get(OutboxMessage, oid)


def count(engine, model) -> int:
    with session_scope(engine, read_only=True) as s:
        return s.exec(select(func.count()).select_from(model)).one()


class FakeTwilio:
    """Answers the Messages API like Twilio does (201 + JSON), recording each request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 201
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
                fake.requests.append({"path": self.path, "form": form, "auth": auth})
                n = len(fake.requests)
                if fake.status == 201:
                    body = {"sid": f"SM{n:032d}", "status": "queued", "to": form["To"][0]}
                else:
                    body = {"code": 21211, "message": "boom", "status": fake.status}
                data = json.dumps(body).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio(monkeypatch, settings):
    fake = FakeTwilio()
    monkeypatch.setenv("CALLCENTER_TWILIO_API_BASE", fake.url)
    monkeypatch.setenv("CALLCENTER_TWILIO_AUTH_TOKEN", "test-auth-token")
    settings.twilio_account_sid = "AC" + "0" * 32
    settings.twilio_from_number = "+15005550006"
    yield fake
    fake.close()


def test_logged_mode_masks_the_phone(engine, settings, queue):
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, "138 1234 1234", "您好，测试短信").id
        assert outbox(engine, oid) is None  # not committed yet
    assert queue.count == 1  # enqueued after commit
    assert outbox(engine, oid).status == "pending"
    with structlog.testing.capture_logs() as logs:
        run_worker(queue, settings)
    row = outbox(engine, oid)
    assert (row.status, row.provider, row.attempts) == ("logged", "log", 1)
    assert row.to_phone == PHONE and row.sent_at is not None
    logged = [e for e in logs if e["event"] == "sms_logged"]
    assert len(logged) == 1 and logged[0]["to"] == "+86138****1234"
    assert PHONE not in repr(logs) and "13812341234" not in repr(logs)


def test_rollback_sends_nothing(engine, settings, queue):
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        notify.send_sms(s, settings, PHONE, "不应发送")
        raise RuntimeError("intake failed")
    assert queue.count == 0
    assert count(engine, OutboxMessage) == 0


@pytest.mark.parametrize(
    "phone, body",
    [("12345", "正文"), ("", "正文"), (PHONE, "   "), (PHONE, "长" * 2001)],
)
def test_bad_input_writes_nothing(engine, settings, queue, phone, body):
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        notify.send_sms(s, settings, phone, body)
    assert count(engine, OutboxMessage) == 0 and queue.count == 0


def test_twilio_mode_sends_once(engine, settings, queue, twilio):
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "【店小二】测试").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert (row.status, row.provider) == ("sent", "twilio")
    assert row.provider_id == "SM" + "1".zfill(32)
    assert len(twilio.requests) == 1
    req = twilio.requests[0]
    assert req["path"] == f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"
    assert req["form"]["To"] == [PHONE] and req["form"]["From"] == ["+15005550006"]
    assert req["form"]["Body"] == ["【店小二】测试"]
    assert req["auth"] == f"{settings.twilio_account_sid}:test-auth-token"
    # a duplicated / retried job and a flush never send again
    assert notify.deliver(oid, notify._snapshot(settings)) == "skipped"
    assert notify.flush_pending(settings) == 0
    queue.enqueue_call("ticketing.notify.deliver", args=(oid, notify._snapshot(settings)))
    run_worker(queue, settings)
    assert len(twilio.requests) == 1


def test_twilio_server_error_keeps_the_row_for_retry(engine, settings, queue, twilio):
    twilio.status = 500
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "重试").id
    run_worker(queue, settings)  # the job fails; RQ schedules a retry
    row = outbox(engine, oid)
    assert row.status == "pending" and row.attempts == 1 and "500" in row.error
    twilio.status = 201
    assert notify.flush_pending(settings) == 1
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "sent" and row.attempts == 2
    assert len(twilio.requests) == 2


def test_twilio_client_error_fails_without_retry(engine, settings, queue, twilio):
    twilio.status = 400
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "号码无效").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "failed" and "400" in row.error
    assert notify.flush_pending(settings) == 0


def test_twilio_partly_configured_fails_loudly(engine, settings, queue, monkeypatch):
    monkeypatch.delenv("CALLCENTER_TWILIO_AUTH_TOKEN", raising=False)
    settings.twilio_account_sid = "AC" + "1" * 32
    settings.twilio_from_number = "+15005550006"
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "配置不全").id
    run_worker(queue, settings)
    row = outbox(engine, oid)
    assert row.status == "failed" and "auth token" in row.error


def test_redis_down_keeps_the_row_pending_then_flush(engine, settings, queue):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(down.redis_url).ping()
    with session_scope(engine) as s:  # the intake still commits
        oid = notify.send_sms(s, down, PHONE, "Redis 不可用时").id
    assert outbox(engine, oid).status == "pending"
    assert queue.count == 0
    assert notify.flush_pending(down) == 0  # still down: nothing lost, nothing enqueued
    # the scheduler's sweep (Redis back) leaves a young row alone: its job may be in the queue
    assert notify.flush_pending(settings, older_than=timedelta(minutes=10)) == 0
    with session_scope(engine) as s:
        s.get(OutboxMessage, oid).created_at -= timedelta(minutes=11)
    from ticketing.jobs import requeue_lost_work

    assert requeue_lost_work(settings.job_snapshot()) == {"handoffs": 0, "sms": 1, "pushes": 0}
    run_worker(queue, settings)
    assert outbox(engine, oid).status == "logged"


# ---- acceptance notice ----


def _ticket(engine, settings, **kw) -> Ticket:
    data = {
        "channel": "web",
        "content": "企业开办时营业执照办理进度查询",
        "category": "government",
        "urgency": "general",
        "send_notice": False,
        **kw,
    }
    with session_scope(engine) as s:
        return submit(s, TicketIn(**data), settings=settings, actor="tester")


def test_acceptance_notice_rendered_stored_and_texted(engine, settings, queue):
    t = _ticket(engine, settings, submitter_phone="13812341234")
    with session_scope(engine) as s:
        notice = create_acceptance_notice(s, settings, s.get(Ticket, t.id))
        tokens = issued_tokens(s, notice.id)
    assert t.number in notice.body
    assert "政务服务" in notice.body and "网页端" in notice.body and "一般" in notice.body
    assert "受理 → 派单 → 办理 → 办结 → 评价" in notice.body
    from ticketing.sla import to_local

    deadline_local = to_local(settings, t.deadline_at).strftime("%Y年%m月%d日 %H:%M")
    assert deadline_local in notice.body and deadline_local.endswith("18:00")
    url = f"{settings.public_base_url}/portal/n/{tokens.confirm}"
    # staff see the notice with the link redacted; what the submitter got keeps it
    assert url not in notice.body and "/portal/n/[已隐去]" in notice.body
    assert url in notice.sent_body and tokens.confirm not in notice.body
    assert len(tokens.confirm) >= 40
    # only digests are stored
    assert tokens.confirm not in (notice.confirm_token, notice.evaluation_token)
    assert len(notice.confirm_token) == 64 and len(notice.evaluation_token) == 64
    with session_scope(engine, read_only=True) as s:
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id)).one()
        assert sms.kind == "acceptance" and sms.to_phone == PHONE
        assert t.number in sms.body and url in sms.body
        assert [e.action for e in history(s, t.id)][-1] == "notice_created"
    run_worker(queue, settings)
    assert outbox(engine, sms.id).status == "logged"


def test_notice_without_phone_sends_no_sms(engine, settings, queue):
    t = _ticket(engine, settings)
    with session_scope(engine) as s:
        create_acceptance_notice(s, settings, s.get(Ticket, t.id))
    assert count(engine, Notice) == 1 and count(engine, OutboxMessage) == 0


def test_confirm_is_idempotent_and_recorded_once(engine, settings):
    t = _ticket(engine, settings)
    with session_scope(engine) as s:
        token = issued_tokens(
            s, create_acceptance_notice(s, settings, s.get(Ticket, t.id)).id
        ).confirm
    with session_scope(engine) as s:
        first = confirm_notice(s, token)
    with session_scope(engine) as s:
        again = confirm_notice(s, token)
    assert first.confirmed_at is not None and again.confirmed_at == first.confirmed_at
    with session_scope(engine, read_only=True) as s:
        events = s.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == t.id, TicketEvent.action == "notice_confirmed"
            )
        ).all()
        assert len(events) == 1 and events[0].actor == "public"


@pytest.mark.parametrize("token", ["nope", "", "x" * 65])
def test_confirm_unknown_token(engine, token):
    with session_scope(engine) as s, pytest.raises(NotFound):
        confirm_notice(s, token)


def test_concurrent_deliveries_send_once(engine, settings, queue, twilio):
    with session_scope(engine) as s:
        oid = notify.send_sms(s, settings, PHONE, "并发投递").id
    queue.empty()  # deliver by hand, racing
    snap = notify._snapshot(settings)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        results.append(notify.deliver(oid, snap))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["sent", "skipped", "skipped", "skipped"]
    assert len(twilio.requests) == 1
    assert outbox(engine, oid).attempts == 1


def test_issued_acceptance_is_the_notice_of_this_transaction(engine, settings, queue):
    """The public form answers with the notice it created (notices.issued_acceptance), not one
    read back; none for another ticket, and none once its transaction rolled back."""
    from sqlmodel import Session

    from ticketing.notices import issued_acceptance

    t = _ticket(engine, settings, submitter_phone="13812341234")
    other = _ticket(engine, settings)
    with session_scope(engine) as s:
        notice = create_acceptance_notice(s, settings, s.get(Ticket, t.id))
        assert issued_acceptance(s, t.id) is notice
        assert issued_acceptance(s, other.id) is None
    with Session(engine) as s:
        create_acceptance_notice(s, settings, s.get(Ticket, other.id))
        assert issued_acceptance(s, other.id) is not None
        s.rollback()
        assert issued_acceptance(s, other.id) is None
