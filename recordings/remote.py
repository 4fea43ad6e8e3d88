"""Recordings that live elsewhere: a Twilio voicemail is fetched into the store by an RQ job.

Twilio keeps the audio on its servers and tells us its URL (recording-status webhook). The webhook
must answer at once, so it only enqueues `fetch_job`; the job downloads `<RecordingUrl>.wav` with
the account's credentials (HTTP basic auth: account SID + auth token, from the worker's
environment), streams it to a temporary file under the store with a size cap, and imports it like
any PBX file (probe, checksum, dedupe on the RecordingSid). The ASR worker's pick-up then queues
its transcription (asr.jobs.pick_up_untranscribed), so this package never imports asr.

Network errors and 5xx answers raise so RQ retries; a 4xx or audio we refuse is final (logged,
the ticket keeps its recording URL for a person to listen to).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session

from config.database import make_engine, session_scope
from config.settings import Settings
from recordings.audio import AudioError
from recordings.models import RecordingKind
from recordings.store import ImportResult, import_file, store_root

log = logging.getLogger(__name__)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# 16-bit stereo 16 kHz for max_audio_seconds, plus headers: nothing a PBX makes is bigger.
BYTES_PER_SECOND_CAP = 64_000


class FetchFailed(RuntimeError):
    """Worth retrying (network, 5xx)."""


class FetchRefused(RuntimeError):
    """Not worth retrying (4xx, too large): logged, the job ends."""


def _auth(settings: Settings) -> tuple[str, str] | None:
    if settings.twilio_account_sid and settings.twilio_auth_token:
        return settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
    return None


def twilio_media_url_allowed(settings: Settings, url: str) -> bool:
    """Whether a RecordingUrl points at Twilio (settings.twilio_recording_hosts): https on
    api.twilio.com or a *.twilio.com host by default; an entry with a scheme
    ("http://127.0.0.1:8123", a stand-in) must match scheme, host and port exactly."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    for entry in settings.twilio_recording_hosts:
        e = entry.strip().lower()
        if "://" in e:
            want = urlsplit(e)
            if (parts.scheme, host, port) == (want.scheme, want.hostname, want.port):
                return True
            continue
        if parts.scheme != "https" or port not in (None, 443):
            continue
        if host == e or (e.startswith(".") and host.endswith(e)):
            return True
    return False


def download(settings: Settings, url: str, dest: Path) -> int:
    """Stream `url` into dest; returns the byte count. Raises FetchFailed / FetchRefused.
    Only from Twilio's hosts (twilio_media_url_allowed): our credentials go with the request."""
    if not twilio_media_url_allowed(settings, url):
        raise FetchRefused(f"recording URL is not on a Twilio host: {urlsplit(url).netloc!r}")
    cap = settings.max_audio_seconds * BYTES_PER_SECOND_CAP + 1_000_000
    try:
        with httpx.stream(
            "GET", url, auth=_auth(settings), timeout=TIMEOUT, follow_redirects=True
        ) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise FetchFailed(f"{r.status_code} from the recording host")
            if r.status_code >= 400:
                raise FetchRefused(f"{r.status_code} from the recording host")
            n = 0
            with dest.open("wb") as f:
                for chunk in r.iter_bytes(1 << 16):
                    n += len(chunk)
                    if n > cap:
                        raise FetchRefused(f"recording larger than {cap} bytes")
                    f.write(chunk)
            return n
    except httpx.HTTPError as e:
        raise FetchFailed(f"{type(e).__name__}: {e}") from e


def fetch_recording(
    session: Session,
    settings: Settings,
    *,
    recording_url: str,
    call_id: str,
    ticket_id: int | None,
    recording_sid: str | None = None,
    caller_phone: str | None = None,
    kind: str = RecordingKind.voicemail.value,
) -> ImportResult:
    """Download and import in the caller's transaction (the temporary file is always removed)."""
    tmp_dir = store_root(settings) / ".incoming"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".wav", dir=tmp_dir)
    os.close(fd)
    tmp = Path(name)
    try:
        url = recording_url if recording_url.endswith(".wav") else recording_url + ".wav"
        download(settings, url, tmp)
        res = import_file(
            session,
            settings,
            tmp,
            kind=kind,
            call_id=call_id,
            ticket_id=ticket_id,
            caller_phone=caller_phone,
            meta={"source": "twilio", "recording_sid": recording_sid} if recording_sid else None,
            dedupe_id=recording_sid or call_id,
        )
        res.recording.source_path = recording_url[:500]
        session.add(res.recording)
        return res
    finally:
        tmp.unlink(missing_ok=True)


def fetch_job(
    recording_url: str,
    call_id: str,
    ticket_id: int | None,
    recording_sid: str | None = None,
    caller_phone: str | None = None,
    snapshot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RQ entry point (enqueued by the Twilio webhook, by function path)."""
    settings = Settings(**(snapshot or {}))
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            res = fetch_recording(
                s,
                settings,
                recording_url=recording_url,
                call_id=call_id,
                ticket_id=ticket_id,
                recording_sid=recording_sid,
                caller_phone=caller_phone,
            )
            return {"recording_id": res.recording.id, "created": res.created}
    except (FetchRefused, AudioError) as e:
        log.error("recording of call %s not fetched, for good: %s", call_id, e)
        return {"recording_id": None, "error": str(e)[:300]}
    finally:
        engine.dispose()
