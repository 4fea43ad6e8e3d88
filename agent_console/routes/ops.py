"""/healthz (DB and Redis reachable) and /metrics (Prometheus text format). Unauthenticated:
they name no data, and probes/scrapers have no user."""

from __future__ import annotations

import anyio
from anyio.lowlevel import RunVar
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from agent_console.errors import responses
from agent_console.schemas import HealthOut
from config.database import readonly

router = APIRouter(tags=["ops"])


def _check_db(request: Request) -> str:
    # read-only: on SQLite a plain connection's BEGIN would queue on the process's writer lock
    try:
        with readonly(request.app.state.engine).connect() as c:
            c.execute(text("SELECT 1"))
        return "ok"
    except Exception as e:
        return f"down: {type(e).__name__}"


def _check_redis(request: Request) -> str:
    try:
        request.app.state.redis.ping()
        return "ok"
    except Exception as e:
        return f"down: {type(e).__name__}"


_probe: RunVar[anyio.CapacityLimiter] = RunVar("dxe_probe_limiter")


def _probe_limiter() -> anyio.CapacityLimiter:
    try:
        return _probe.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(2)
        _probe.set(limiter)
        return limiter


def _checks(request: Request) -> dict[str, str]:
    return {"database": _check_db(request), "redis": _check_redis(request)}


@router.get(
    "/healthz",
    name="healthz",
    response_model=HealthOut,
    responses={
        503: {"model": HealthOut, "description": "Database or Redis unreachable"},
        **responses(),
    },
)
async def healthz(request: Request) -> JSONResponse:
    """Checked in a thread of its own limiter: a probe never queues behind requests waiting for
    the default thread pool (a burst of writes must not make the process look dead)."""
    checks = await anyio.to_thread.run_sync(_checks, request, limiter=_probe_limiter())
    ok = all(v == "ok" for v in checks.values())
    # the PBX side is reported, never fails the web's own liveness (a PBX down is "degraded")
    pbx: dict = {}
    agi: dict = {}
    if checks["redis"] == "ok":
        from callcenter.pbx_status import agi_status, pbx_links

        try:
            pbx = pbx_links(request.app.state.redis, request.app.state.settings)
            agi = agi_status(request.app.state.redis, request.app.state.settings)
        except Exception as e:
            agi = {"status": "unknown", "detail": type(e).__name__}
    body = HealthOut(status="ok" if ok else "down", checks=checks, pbx=pbx, agi=agi)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    name="metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"},
        **responses(),
    },
)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
