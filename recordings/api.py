"""HTTP routes for recordings, as an APIRouter factory the web layer mounts with its own auth.

    from recordings.api import make_router
    ROUTERS.append((API_PREFIX, make_router(require)))   # agent_console/app.py
    # roles.py: "recordings.audio": ALL_ROLES — every role reaches the router, whose own
    # rules in recordings.yaml then decide per recording and role (and log each refusal)

`auth(route_name)` returns a FastAPI dependency yielding the user (attributes username, role,
department_code) allowed to call that route: the web layer's role matrix decides per route.
The engine and settings come from `request.app.state.engine` / `.settings` (the web app's state)
unless given here. Playback writes its audit row in its own short write transaction, so it works
behind a read-only request session. With `playback_auth=(auth, load_user)` the audio routes take
their user from that `auth`, and `load_user(session, it)` turns it into the user inside the
playback's transaction (the web layer checks the account there: one session per playback, not a
read of its own before it). Errors use the API's one shape {"error": {code, message, details}}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.database import MAX_ROW_ID, session_scope
from config.settings import Settings
from recordings.models import PlaybackLog, Recording
from recordings.playback import (
    PlaybackDenied,
    RangeNotSatisfiable,
    check_access,
    iter_file,
    log_playback,
    open_for_playback,
    parse_range,
)

_CODES = {403: "forbidden", 404: "not_found", 410: "gone", 416: "range_not_satisfiable"}
# Bytes read at once: a range up to this (a player's probe, a seek) is answered whole, a longer
# one streamed in chunks of it (each chunk a worker-thread hop of StreamingResponse).
CHUNK = 64 * 1024
AUDIT_ROLES = frozenset({"admin", "supervisor", "leader"})  # leaders read everything


# ids fit the integer column on every backend; larger values are a 422, not a database error
RecordingId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": _CODES.get(status, "error"), "message": message, "details": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def make_router(
    auth: Callable[[str], Callable[..., Any]],
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    prefix: str = "/recordings",
    responses: dict[int | str, dict[str, Any]] | None = None,
    playback_auth: tuple[Callable[[str], Callable[..., Any]], Callable[[Session, Any], Any]]
    | None = None,
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["recordings"])
    audio_auth, load_user = playback_auth or (auth, lambda _s, user: user)

    def _deps(request: Request) -> tuple[Engine, Settings]:
        return (engine or request.app.state.engine, settings or request.app.state.settings)

    def _metadata(rec: Recording) -> dict[str, Any]:
        return {
            "id": rec.id,
            "kind": rec.kind,
            "call_id": rec.call_id,
            "ticket_id": rec.ticket_id,
            "duration_s": rec.duration_s,
            "format": rec.format,
            "codec": rec.codec,
            "sample_rate": rec.sample_rate,
            "channels": rec.channels,
            "bytes": rec.bytes,
            "sha256": rec.sha256,
            "created_at": rec.created_at.isoformat(),
            "expires_at": rec.expires_at.isoformat() if rec.expires_at else None,
            "deleted": rec.deleted_at is not None,
        }

    @router.get("/{recording_id}", name="recordings.get", responses=responses)
    def get_recording(
        recording_id: RecordingId, request: Request, user: Any = Depends(auth("recordings.get"))
    ) -> Any:
        eng, st = _deps(request)
        with session_scope(eng, read_only=True) as s:
            rec = s.get(Recording, recording_id)
            if rec is None:
                return _error(404, "录音不存在")
            try:
                check_access(s, st, rec, user)
            except PlaybackDenied as e:
                return _error(e.status, e.message)
            return _metadata(rec)

    # GET and HEAD as two routes with their own names and operation ids: one api_route with both
    # methods gives both one OpenAPI operationId, which the schema forbids.
    @router.get("/{recording_id}/audio", name="recordings.audio", responses=responses)
    def stream_audio(
        recording_id: RecordingId,
        request: Request,
        user: Any = Depends(audio_auth("recordings.audio")),
    ) -> Response:
        return _audio(recording_id, request, user)

    @router.head("/{recording_id}/audio", name="recordings.audio_head", responses=responses)
    def audio_head(
        recording_id: RecordingId,
        request: Request,
        user: Any = Depends(audio_auth("recordings.audio_head")),
    ) -> Response:
        return _audio(recording_id, request, user)

    def _audio(recording_id: int, request: Request, user: Any) -> Response:
        eng, st = _deps(request)
        client = request.client.host if request.client else None
        with session_scope(eng) as s:
            user = load_user(s, user)
            rec = s.get(Recording, recording_id)
            if rec is None:
                return _error(404, "录音不存在")
            try:
                check_access(s, st, rec, user)
                path = open_for_playback(st, rec)
            except PlaybackDenied as e:
                log_playback(s, recording_id, user, e.status, client=client)
                return _error(e.status, e.message)
            size = path.stat().st_size
            try:
                rng = parse_range(request.headers.get("range"), size)
            except RangeNotSatisfiable as e:
                log_playback(s, recording_id, user, 416, client=client)
                return _error(416, e.message, {"Content-Range": f"bytes */{size}"})
            status = 206 if rng else 200
            log_playback(s, recording_id, user, status, rng, client=client)
        headers = {
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="recording-{recording_id}.wav"',
        }
        start, length = (rng.start, rng.length) if rng else (0, size)
        headers["Content-Length"] = str(length)
        if rng:
            headers["Content-Range"] = f"bytes {rng.start}-{rng.end}/{size}"
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type="audio/wav")
        if length <= CHUNK:  # read here, in the route's thread: a stream costs a hop per chunk
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(length)
            return Response(body, status_code=status, headers=headers, media_type="audio/wav")
        return StreamingResponse(
            iter_file(path, start, length, CHUNK),
            status_code=status,
            headers=headers,
            media_type="audio/wav",
        )

    @router.get("/{recording_id}/playbacks", name="recordings.playbacks", responses=responses)
    def playbacks(
        recording_id: RecordingId,
        request: Request,
        user: Any = Depends(auth("recordings.playbacks")),
    ) -> Any:
        if user.role not in AUDIT_ROLES:
            return _error(403, "只有管理员、值班主管和领导可以查看收听记录")
        eng, _ = _deps(request)
        from sqlmodel import select

        with session_scope(eng, read_only=True) as s:
            rows = s.exec(
                select(PlaybackLog)
                .where(PlaybackLog.recording_id == recording_id)
                .order_by(PlaybackLog.id)  # type: ignore[arg-type]
            ).all()
            return [
                {
                    "username": r.username,
                    "role": r.role,
                    "at": r.at.isoformat(),
                    "range": [r.range_start, r.range_end] if r.range_start is not None else None,
                    "status": r.status_code,
                    "what": r.what,
                }
                for r in rows
            ]

    return router
