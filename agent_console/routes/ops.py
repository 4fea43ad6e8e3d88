"""/healthz (DB and Redis reachable) and /metrics (Prometheus text format). Unauthenticated:
they name no data, and probes/scrapers have no user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from agent_console.errors import responses
from agent_console.schemas import HealthOut

router = APIRouter(tags=["ops"])


def _check_db(request: Request) -> str:
    try:
        with request.app.state.engine.connect() as c:
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


@router.get(
    "/healthz",
    name="healthz",
    response_model=HealthOut,
    responses={
        503: {"model": HealthOut, "description": "Database or Redis unreachable"},
        **responses(),
    },
)
def healthz(request: Request) -> JSONResponse:
    checks = {"database": _check_db(request), "redis": _check_redis(request)}
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
