"""Twilio Voice front: the same menu (same IvrEngine) rendered as TwiML webhooks.

Routes (all POST, all behind X-Twilio-Signature validation — unsigned or wrong → 403):

    /twilio/voice             call arrives: menu (Gather) or, after hours, voicemail (Record)
    /twilio/gather            a Gather finished (Digits, or empty on timeout: actionOnEmptyResult)
    /twilio/queue-result      the caller left the Enqueue: queue full / error → voicemail
    /twilio/voicemail         the Record finished: thank the caller, hang up
    /twilio/recording-status  the recording is ready: file the voicemail ticket (idempotent per
                              CallSid) and the callback promise
    /twilio/status            call status callback: acknowledged and logged

Dialogue state lives in the action URLs' query strings (`path=t-9`). Twilio signs the full URL,
so the state cannot be forged; it is still validated, and a corrupt one restarts the menu.
The URL checked is settings.public_base_url + the request path (+ query); the X-Forwarded-Proto /
X-Forwarded-Host headers are honoured only when ivr.yaml twilio.trust_forwarded_headers is true.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import VoiceResponse

from config.database import make_engine, session_scope
from config.settings import Settings, get_settings
from ivr.engine import (
    DialogState,
    EngineError,
    Gather,
    Hangup,
    IvrEngine,
    Prompt,
    ToQueue,
    ToVoicemail,
    Turn,
)
from ivr.menu import load_menu
from recordings import twilio_media_url_allowed
from ticketing import load_business_hours

log = logging.getLogger(__name__)

ACTOR = "ivr:twilio"
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_REC_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
_FAILED_QUEUE = {"queue-full", "error", "system-error"}
_PATH_ENTRY = re.compile(r"^(t|[0-9*#]{1,8}|x)$")


def _first(value: str | None) -> str | None:
    """X-Forwarded-* may list several hops; the first is what the client used."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


def _clean_path(raw: str | None) -> str:
    """An IVR path echoed back by Twilio: keep well-formed entries only."""
    return "-".join(p for p in (raw or "").split("-") if _PATH_ENTRY.match(p))[:40]


def _mask(phone: str | None) -> str:
    from ticketing import mask_phone

    try:
        return mask_phone(phone)
    except Exception:
        return "***"


def file_voicemail(
    db: Engine,
    settings: Settings,
    *,
    call_sid: str,
    phone: str | None,
    recording_url: str,
    recording_sid: str | None,
    duration: int,
    ivr_path: str,
    reason: str,
    callback_at: datetime | None,
) -> tuple[int, bool]:
    """Ticket + callback task for one voicemail; (ticket id, created?). Safe to call twice."""
    from sqlmodel import col, select

    from ticketing import Ticket, TicketIn, file_call

    why = "坐席忙未能接通" if reason == "queue_unavailable" else "非工作时间来电"
    content = f"{why}，来电人留言，录音时长{duration}秒，内容待转写。"
    data = TicketIn(
        channel="voicemail",
        title=f"{why}留言",
        content=content,
        submitter_phone=phone,
        channel_data={
            "call_id": call_sid,
            "call_sid": call_sid,
            "recording_url": recording_url,
            "recording_sid": recording_sid,
            "recording_duration": duration,
            "ivr_path": ivr_path,
            "reason": reason,
            "source": "twilio",
        },
    )
    with session_scope(db) as s:
        before = s.exec(select(Ticket.id).order_by(col(Ticket.id).desc())).first()
        ticket = file_call(
            s,
            settings,
            data,
            actor=ACTOR,
            callback="voicemail",
            due_at=(callback_at.astimezone(UTC).replace(tzinfo=None) if callback_at else None),
            note=f"{why}留言，承诺回电",
            callback_actor="twilio",
        )
        tid = int(ticket.id or 0)  # flushed by intake: always set
        return tid, before is None or tid > before


def enqueue_fetch(
    settings: Settings,
    *,
    recording_url: str,
    call_sid: str,
    recording_sid: str | None,
    ticket_id: int,
    phone: str | None,
) -> bool:
    """Queue the download of the voicemail audio into the store (recordings.remote.fetch_job);
    the ASR worker then transcribes it onto the ticket. One job per recording: Twilio retries
    its callbacks, and a second job with the same id is refused. Redis down: logged, the ticket
    keeps the recording URL."""
    from rq import Retry
    from rq.exceptions import DuplicateJobError

    from config.queues import get_queue

    key = re.sub(r"[^A-Za-z0-9_-]", "-", recording_sid or call_sid)
    try:
        get_queue(settings, "default").enqueue(
            "recordings.remote.fetch_job",
            args=(
                recording_url,
                call_sid,
                ticket_id,
                recording_sid,
                phone,
                settings.job_snapshot(),
            ),
            job_id=f"{settings.redis_namespace}-fetch-{key}",
            unique=True,
            retry=Retry(max=4, interval=[10, 60, 300, 1800]),
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            description=f"fetch Twilio recording of call {call_sid}",
        )
    except DuplicateJobError:
        return False
    except Exception as e:  # Redis away: the ticket still names the recording URL
        log.warning("recording fetch for %s not queued: %s", call_sid, type(e).__name__)
        return False
    return True


class TwilioFront:
    """Holds the engine, the settings and the DB; builds the APIRouter."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        db: Engine | None = None,
        engine: IvrEngine | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or IvrEngine(
            load_menu(self.settings), lambda: load_business_hours(self.settings)
        )
        self._db = db
        self.clock = clock or (lambda: datetime.now(UTC))
        cfg = self.engine.menu.twilio
        self.say_language = str(cfg.get("say_language") or "zh-CN")
        self.say_voice = cfg.get("say_voice") or None
        self.prompt_base_url = (cfg.get("prompt_base_url") or "").rstrip("/") or None
        self.trust_forwarded = bool(cfg.get("trust_forwarded_headers", False))

    @cached_property
    def db(self) -> Engine:
        return self._db or make_engine(self.settings.resolved_database_url)

    # ---- signature ----

    def public_url(self, request: Request) -> str:
        base = urlsplit(self.settings.public_base_url)
        scheme, netloc, prefix = base.scheme, base.netloc, base.path.rstrip("/")
        if self.trust_forwarded:
            scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
            netloc = _first(request.headers.get("x-forwarded-host")) or netloc
        url = f"{scheme}://{netloc}{prefix}{request.url.path}"
        query = request.url.query
        return f"{url}?{query}" if query else url

    async def verify(self, request: Request) -> None:
        token = self.settings.twilio_auth_token
        secret = token.get_secret_value() if token is not None else ""
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not secret:
            log.error("Twilio webhook refused: CALLCENTER_TWILIO_AUTH_TOKEN is not set")
            raise HTTPException(403, "Twilio auth token not configured")
        if not signature:
            raise HTTPException(403, "missing X-Twilio-Signature")
        params = await request.form() if request.method == "POST" else {}
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        url = self.public_url(request)
        if not RequestValidator(secret).validate(url, params, signature, algorithm):
            log.warning("Twilio webhook refused: bad signature for %s", request.url.path)
            raise HTTPException(403, "invalid X-Twilio-Signature")

    # ---- rendering ----

    def _url(self, request: Request, name: str, **query: str) -> str:
        """Absolute URL of a sibling route, in the form Twilio will sign it."""
        base = urlsplit(self.settings.public_base_url)
        here = request.url.path.rsplit("/", 1)[0]
        url = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{here}/{name}"
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{url}?{urlencode(q)}" if q else url

    def _speak(self, parent: Any, p: Prompt) -> None:
        if self.prompt_base_url and not p.spoken:  # the edited after-hours text has no recording
            parent.play(f"{self.prompt_base_url}/{p.file}.wav")
        elif self.say_voice:
            parent.say(p.text, language=self.say_language, voice=self.say_voice)
        else:
            parent.say(p.text, language=self.say_language)

    def render(self, request: Request, turn: Turn, caller: str | None) -> Response:
        vr = VoiceResponse()
        action = turn.action
        if isinstance(action, Gather):
            g = vr.gather(
                input="dtmf",
                num_digits=action.max_digits,
                timeout=action.timeout_seconds,
                action=self._url(request, "gather", path=turn.state.encode()),
                method="POST",
                action_on_empty_result=True,
            )
            for p in turn.prompts:
                self._speak(g, p)
        else:
            for p in turn.prompts:
                self._speak(vr, p)
            if isinstance(action, ToQueue):
                vr.enqueue(
                    action.queue,
                    action=self._url(request, "queue-result", path=turn.path),
                    method="POST",
                )
            elif isinstance(action, ToVoicemail):
                status_url = self._url(
                    request,
                    "recording-status",
                    caller=caller or "",
                    path=turn.path,
                    reason=action.reason,
                    callback_at=action.callback_at.isoformat(),
                )
                vr.record(
                    action=self._url(request, "voicemail"),
                    method="POST",
                    max_length=action.max_seconds,
                    play_beep=True,
                    finish_on_key="#",
                    timeout=10,
                    recording_status_callback=status_url,
                    recording_status_callback_method="POST",
                    recording_status_callback_event="completed absent",
                )
                # <Record> that heard nothing falls through to here
                self._speak(vr, self.engine.prompt("goodbye"))
                vr.hangup()
            elif isinstance(action, Hangup):
                vr.hangup()
        return Response(str(vr), media_type="application/xml")

    # ---- routes ----

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/twilio", tags=["twilio"], dependencies=[Depends(self.verify)])

        @r.post("/voice")
        async def voice(request: Request) -> Response:
            form = await request.form()
            caller = str(form.get("From") or "")
            log.info("Twilio call %s from %s", form.get("CallSid", "?"), _mask(caller))
            return self.render(request, self.engine.start(self.clock()), caller)

        @r.post("/gather")
        async def gather(request: Request) -> Response:
            form = await request.form()
            caller = str(form.get("From") or "")
            try:
                state = DialogState.decode(
                    request.query_params.get("path"), max_tries=self.engine.menu.max_tries
                )
            except EngineError as e:
                log.warning("Twilio gather with a bad state (%s); restarting the menu", e)
                return self.render(request, self.engine.start(self.clock()), caller)
            digits = str(form.get("Digits") or "") or None
            return self.render(request, self.engine.step(state, digits), caller)

        @r.post("/queue-result")
        async def queue_result(request: Request) -> Response:
            form = await request.form()
            result = str(form.get("QueueResult") or "")
            if result in _FAILED_QUEUE:
                path = tuple(
                    p for p in _clean_path(request.query_params.get("path")).split("-") if p
                )
                turn = self.engine.queue_unavailable(self.clock(), DialogState(path=path))
                return self.render(request, turn, str(form.get("From") or ""))
            log.info("Twilio call %s left the queue: %s", form.get("CallSid", "?"), result)
            return Response(str(VoiceResponse()), media_type="application/xml")

        @r.post("/voicemail")
        async def voicemail(request: Request) -> Response:
            return self.render(request, self.engine.after_recording(), None)

        @r.post("/recording-status")
        async def recording_status(request: Request) -> Response:
            form = await request.form()
            status = str(form.get("RecordingStatus") or "")
            call_sid = str(form.get("CallSid") or "")
            if not _CALL_SID.match(call_sid):
                raise HTTPException(400, "CallSid missing or malformed")
            if status != "completed":
                log.info("Twilio recording for %s ended %r: nothing to file", call_sid, status)
                return Response(status_code=204)
            url = str(form.get("RecordingUrl") or "")
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.netloc:
                raise HTTPException(400, "RecordingUrl missing or not https")
            if not twilio_media_url_allowed(self.settings, url):
                raise HTTPException(400, "RecordingUrl is not on a Twilio host")
            rec_sid = str(form.get("RecordingSid") or "") or None
            if rec_sid and not _REC_SID.match(rec_sid):
                raise HTTPException(400, "RecordingSid malformed")
            try:
                duration = int(str(form.get("RecordingDuration") or "0"))
            except ValueError:
                raise HTTPException(400, "RecordingDuration is not a number") from None
            q = request.query_params
            callback_at = None
            if q.get("callback_at"):
                try:
                    callback_at = datetime.fromisoformat(q["callback_at"])
                except ValueError:
                    raise HTTPException(400, "callback_at malformed") from None
            phone = self._phone(q.get("caller"))
            ticket_id, created = await run_in_threadpool(
                file_voicemail,
                getattr(request.app.state, "engine", None) or self.db,
                self.settings,
                call_sid=call_sid,
                phone=phone,
                recording_url=url,
                recording_sid=rec_sid,
                duration=max(duration, 0),
                ivr_path=_clean_path(q.get("path")),
                reason="queue_unavailable"
                if q.get("reason") == "queue_unavailable"
                else "after_hours",
                callback_at=callback_at,
            )
            log.info(
                "voicemail %s from %s -> ticket %s (%s)",
                call_sid,
                _mask(phone),
                ticket_id,
                "new" if created else "existing",
            )
            await run_in_threadpool(
                enqueue_fetch,
                self.settings,
                recording_url=url,
                call_sid=call_sid,
                recording_sid=rec_sid,
                ticket_id=ticket_id,
                phone=phone,
            )
            return Response(status_code=204)

        @r.post("/status")
        async def status(request: Request) -> Response:
            form = await request.form()
            log.info(
                "Twilio call %s status %s duration %s",
                form.get("CallSid", "?"),
                form.get("CallStatus", "?"),
                form.get("CallDuration", "-"),
            )
            return Response(status_code=204)

        return r

    @staticmethod
    def _phone(raw: str | None) -> str | None:
        """E.164 when the caller ID is a real number; None for anonymous / client: identities."""
        from ticketing import caller_phone

        return caller_phone(raw)


def build_router(
    settings: Settings | None = None,
    *,
    db: Engine | None = None,
    engine: IvrEngine | None = None,
    clock: Callable[[], datetime] | None = None,
) -> APIRouter:
    """`app.include_router(ivr.build_twilio_router(settings, db=engine))` in the web app."""
    return TwilioFront(settings, db=db, engine=engine, clock=clock).router()
