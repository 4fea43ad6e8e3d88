"""/healthz (DB and Redis reachable) and /metrics (Prometheus text format). Unauthenticated:
they name no data, and probes/scrapers have no user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from agent_console.errors import responses
from agent_console.schemas import HealthOut

router = APIRouter(tags=["ops"])


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
    """The latest round of agent_console.health's monitor, answered on the event loop: a probe
    never waits behind requests (a burst of writes must not make the process look dead), and a
    check that has not come back for STALE_AFTER_S answers 503."""
    health = request.app.state.health.current()
    body = HealthOut(
        status="ok" if health.ok else "down", checks=health.checks, pbx=health.pbx, agi=health.agi
    )
    return JSONResponse(body.model_dump(), status_code=200 if health.ok else 503)


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
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
