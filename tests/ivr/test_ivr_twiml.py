"""TwiML webhooks through FastAPI's TestClient, signed with twilio's real RequestValidator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ivr_testing import CLOSED, OPEN
from pydantic import SecretStr
from sqlmodel import select
from twilio.request_validator import RequestValidator

from config.database import session_scope
from config.settings import Settings
from ivr.twiml import build_router

TOKEN = "test-twilio-auth-token-0123456789"
BASE = "https://hotline.example.gov.cn"
CALL_SID = "CA" + "0123456789abcdef" * 2
REC_SID = "RE" + "fedcba9876543210" * 2
FROM = "+8613800138000"


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def make_client(settings: Settings, clock: Clock, db=None) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(settings, db=db, clock=clock))
    return TestClient(app)


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@pytest.fixture
def tw_settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path, twilio_auth_token=TOKEN, public_base_url=BASE, secret_key="x" * 32
    )


@pytest.fixture
def client(tw_settings, clock) -> TestClient:
    return make_client(tw_settings, clock)


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post(client: TestClient, path: str, params: dict[str, str], *, base: str = BASE, **kw):
    """POST like Twilio: form body, signature over the public URL + params."""
    headers = {"X-Twilio-Signature": sign(base + path, params), **kw.pop("headers", {})}
    return client.post(path, data=params, headers=headers, **kw)


def twiml(resp) -> ET.Element:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(resp.text)
    assert root.tag == "Response"
    return root


def rel(url: str) -> str:
    """An absolute action URL we emitted → the path+query the test client requests."""
    p = urlsplit(url)
    assert f"{p.scheme}://{p.netloc}" == BASE
    return p.path + (f"?{p.query}" if p.query else "")


CALL = {"CallSid": CALL_SID, "From": FROM, "To": "+8671512345", "CallStatus": "ringing"}


# ---- signature ----


def test_unsigned_request_is_403(client):
    r = client.post("/twilio/voice", data=CALL)
    assert r.status_code == 403


def test_wrong_signature_is_403(client):
    r = client.post("/twilio/voice", data=CALL, headers={"X-Twilio-Signature": "AAAA" * 7})
    assert r.status_code == 403


def test_signature_with_another_token_is_403(client):
    headers = {"X-Twilio-Signature": sign(BASE + "/twilio/voice", CALL, token="other-token")}
    assert client.post("/twilio/voice", data=CALL, headers=headers).status_code == 403


def test_tampered_params_are_403(client):
    headers = {"X-Twilio-Signature": sign(BASE + "/twilio/gather?path=t", {"Digits": "1"})}
    r = client.post("/twilio/gather?path=t", data={"Digits": "2"}, headers=headers)
    assert r.status_code == 403
    r = client.post("/twilio/gather?path=t-9", data={"Digits": "1"}, headers=headers)
    assert r.status_code == 403


def test_signature_over_the_internal_url_is_rejected(client):
    # signing http://testserver/... (what the app sees) instead of the public URL must fail
    r = post(client, "/twilio/voice", CALL, base="http://testserver")
    assert r.status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/twilio/voice",
        "/twilio/gather",
        "/twilio/voicemail",
        "/twilio/recording-status",
        "/twilio/status",
        "/twilio/queue-result",
    ],
)
def test_every_route_requires_a_signature(client, path):
    assert client.post(path, data=CALL).status_code == 403


def test_no_auth_token_configured_refuses_everything(tmp_path, clock):
    c = make_client(Settings(data_dir=tmp_path, public_base_url=BASE), clock)
    assert post(c, "/twilio/voice", CALL).status_code == 403


def test_sha256_shared_key_signature_header_is_honoured(client):
    params = CALL
    sig = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/voice", params, "HMAC_SHA256")
    headers = {
        "X-Twilio-Signature": sig,
        "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_SHA256",
    }
    assert client.post("/twilio/voice", data=params, headers=headers).status_code == 200
    headers["X-Twilio-Webhooks-Signature-Settings"] = "key=k1,algorithm=HMAC_MD5"
    assert client.post("/twilio/voice", data=params, headers=headers).status_code == 403


def test_forwarded_headers_ignored_unless_configured(client, tmp_path, clock):
    proxied = "https://proxy.example.org"
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.example.org"}
    r = post(client, "/twilio/voice", CALL, base=proxied, headers=headers)
    assert r.status_code == 403  # not trusted by default

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    from config.settings import DEFAULTS_DIR

    text = (DEFAULTS_DIR / "ivr.yaml").read_text(encoding="utf-8")
    (cfg / "ivr.yaml").write_text(
        text.replace("trust_forwarded_headers: false", "trust_forwarded_headers: true"),
        encoding="utf-8",
    )
    s = Settings(data_dir=tmp_path, config_dir=cfg, twilio_auth_token=TOKEN, public_base_url=BASE)
    c2 = make_client(s, clock)
    assert post(c2, "/twilio/voice", CALL, base=proxied, headers=headers).status_code == 200
    # with the headers present, the proxy's URL is what counts
    assert post(c2, "/twilio/voice", CALL, headers=headers).status_code == 403


# ---- the menu ----


def test_voice_in_hours_gathers_the_menu(client):
    root = twiml(post(client, "/twilio/voice", CALL))
    (g,) = root
    assert g.tag == "Gather"
    assert g.get("numDigits") == "1" and g.get("timeout") == "8" and g.get("input") == "dtmf"
    assert g.get("actionOnEmptyResult") == "true" and g.get("method") == "POST"
    assert urlsplit(g.get("action")).path == "/twilio/gather"
    (say,) = g
    assert say.tag == "Say" and say.get("language") == "zh-CN"
    assert "企业服务请按1" in say.text and "政策查询请按4" in say.text


def follow(client, action_url: str, digits: str | None):
    params = {"CallSid": CALL_SID, "From": FROM}
    if digits is not None:
        params["Digits"] = digits
    return twiml(post(client, rel(action_url), params))


@pytest.mark.parametrize(
    ("digit", "queue", "label"),
    [
        ("1", "dxe-enterprise", "企业服务"),
        ("2", "dxe-government", "政务服务"),
        ("3", "dxe-complaint", "投诉咨询"),
        ("4", "dxe-complaint", "政策查询"),
        ("0", "dxe-general", "人工服务"),
    ],
)
def test_choice_enqueues_into_the_category_queue(client, digit, queue, label):
    g = twiml(post(client, "/twilio/voice", CALL))[0]
    root = follow(client, g.get("action"), digit)
    say, enq = root
    assert say.tag == "Say" and label in say.text
    assert enq.tag == "Enqueue" and enq.text == queue
    assert parse_qs(urlsplit(enq.get("action")).query)["path"] == [digit]


def test_invalid_timeout_then_exhausted_goes_to_operator(client):
    g = twiml(post(client, "/twilio/voice", CALL))[0]
    r1 = follow(client, g.get("action"), "9")
    g1 = r1[0]
    assert g1.tag == "Gather" and "输入有误" in g1[0].text and "企业服务请按1" in g1[1].text
    assert parse_qs(urlsplit(g1.get("action")).query)["path"] == ["9"]
    r2 = follow(client, g1.get("action"), None)  # actionOnEmptyResult: no Digits
    g2 = r2[0]
    assert "没有收到您的按键" in g2[0].text
    assert parse_qs(urlsplit(g2.get("action")).query)["path"] == ["9-t"]
    r3 = follow(client, g2.get("action"), "")
    say, enq = r3
    assert "人工服务" in say.text and enq.text == "dxe-general"


def test_corrupt_state_restarts_the_menu(client):
    root = follow(client, BASE + "/twilio/gather?path=zzz", "1")
    assert root[0].tag == "Gather" and root[0][0].text.startswith("您好")


def test_after_hours_records_a_voicemail(client, clock):
    clock.now = CLOSED
    root = twiml(post(client, "/twilio/voice", CALL))
    tags = [el.tag for el in root]
    assert tags == ["Say", "Record", "Say", "Hangup"]
    assert "11月26日（星期四）08:30" in root[0].text
    rec = root[1]
    assert rec.get("maxLength") == "180" and rec.get("playBeep") == "true"
    assert urlsplit(rec.get("action")).path == "/twilio/voicemail"
    cb = urlsplit(rec.get("recordingStatusCallback"))
    assert cb.path == "/twilio/recording-status"
    q = parse_qs(cb.query)
    assert q["caller"] == [FROM] and q["reason"] == ["after_hours"]
    assert q["callback_at"] == ["2026-11-26T08:30:00+08:00"]


def test_voicemail_done_thanks_and_hangs_up(client):
    root = twiml(post(client, "/twilio/voicemail", {"CallSid": CALL_SID, "RecordingUrl": "x"}))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    assert "留言已收到" in root[0].text


def test_queue_full_falls_back_to_voicemail(client):
    root = twiml(
        post(
            client,
            "/twilio/queue-result?path=1",
            {"CallSid": CALL_SID, "QueueResult": "queue-full"},
        )
    )
    assert [el.tag for el in root][:2] == ["Say", "Record"]
    q = parse_qs(urlsplit(root[1].get("recordingStatusCallback")).query)
    assert q["reason"] == ["queue_unavailable"] and q["path"] == ["1"]
    bridged = twiml(
        post(client, "/twilio/queue-result?path=1", {"CallSid": CALL_SID, "QueueResult": "bridged"})
    )
    assert list(bridged) == []


def test_play_prompt_files_when_configured(tmp_path, clock):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    from config.settings import DEFAULTS_DIR

    text = (DEFAULTS_DIR / "ivr.yaml").read_text(encoding="utf-8")
    (cfg / "ivr.yaml").write_text(
        text.replace("prompt_base_url: null", "prompt_base_url: https://cdn.example.cn/prompts/"),
        encoding="utf-8",
    )
    s = Settings(data_dir=tmp_path, config_dir=cfg, twilio_auth_token=TOKEN, public_base_url=BASE)
    g = twiml(post(make_client(s, clock), "/twilio/voice", CALL))[0]
    assert g[0].tag == "Play" and g[0].text == "https://cdn.example.cn/prompts/dxe/welcome.wav"


def test_status_callback_is_acknowledged(client):
    r = post(client, "/twilio/status", {"CallSid": CALL_SID, "CallStatus": "completed"})
    assert r.status_code == 204


# ---- the voicemail ticket ----


def rec_params(**over) -> dict[str, str]:
    p = {
        "AccountSid": "AC" + "1" * 32,
        "CallSid": CALL_SID,
        "RecordingSid": REC_SID,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{REC_SID}",
        "RecordingStatus": "completed",
        "RecordingDuration": "9",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    p.update(over)
    return p


STATUS_PATH = "/twilio/recording-status?" + urlencode(
    {
        "caller": FROM,
        "path": "",
        "reason": "after_hours",
        "callback_at": "2026-11-26T08:30:00+08:00",
    }
)


@pytest.fixture
def db_client(settings, engine, clock) -> TestClient:
    s = settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN), "public_base_url": BASE})
    return make_client(s, clock, db=engine)


def test_recording_status_files_one_voicemail_ticket(db_client, engine):
    from ticketing.models import CallbackTask, Ticket

    r = post(db_client, STATUS_PATH, rec_params())
    assert r.status_code == 204, r.text
    r2 = post(db_client, STATUS_PATH, rec_params())  # Twilio retries: still one ticket
    assert r2.status_code == 204
    with session_scope(engine, read_only=True) as s:
        tickets = s.exec(select(Ticket).where(Ticket.channel == "voicemail")).all()
        assert len(tickets) == 1
        t = tickets[0]
        assert t.channel_data["call_sid"] == CALL_SID
        assert t.channel_data["recording_url"].endswith(REC_SID)
        assert t.submitter_phone == FROM
        assert "9秒" in t.content
        tasks = s.exec(select(CallbackTask).where(CallbackTask.call_id == CALL_SID)).all()
        assert len(tasks) == 1
        assert tasks[0].reason == "voicemail" and tasks[0].ticket_id == t.id
        assert tasks[0].phone == FROM
        assert tasks[0].due_at.isoformat() == "2026-11-26T00:30:00"  # 08:30 Shanghai in UTC


@pytest.mark.parametrize(
    "over",
    [
        {"CallSid": ""},
        {"CallSid": "not-a-sid"},
        {"RecordingUrl": "http://evil.example/x.wav"},
        {"RecordingUrl": ""},
        {"RecordingDuration": "nine"},
        {"RecordingSid": "RE-bad"},
    ],
)
def test_malformed_recording_status_is_400_and_files_nothing(db_client, engine, over):
    from ticketing.models import Ticket

    r = post(db_client, STATUS_PATH, rec_params(**over))
    assert r.status_code == 400
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Ticket)).all() == []


def test_failed_or_absent_recording_files_nothing(db_client, engine):
    from ticketing.models import Ticket

    for status in ("absent", "failed"):
        assert post(db_client, STATUS_PATH, rec_params(RecordingStatus=status)).status_code == 204
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Ticket)).all() == []


def test_anonymous_caller_gets_a_ticket_without_callback(db_client, engine):
    from ticketing.models import CallbackTask, Ticket

    path = "/twilio/recording-status?" + urlencode({"caller": "anonymous", "reason": "after_hours"})
    assert post(db_client, path, rec_params()).status_code == 204
    with session_scope(engine, read_only=True) as s:
        (t,) = s.exec(select(Ticket)).all()
        assert t.submitter_phone is None
        assert s.exec(select(CallbackTask)).all() == []


def test_queue_unavailable_voicemail_keeps_path_and_reason(db_client, engine):
    from ticketing.models import Ticket

    path = "/twilio/recording-status?" + urlencode(
        {"caller": FROM, "path": "t-2<x>", "reason": "queue_unavailable"}
    )
    assert post(db_client, path, rec_params()).status_code == 204
    with session_scope(engine, read_only=True) as s:
        (t,) = s.exec(select(Ticket)).all()
        assert t.channel_data["reason"] == "queue_unavailable"
        assert t.channel_data["ivr_path"] == "t"  # malformed entries dropped
        assert "坐席忙" in t.content
