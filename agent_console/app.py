"""The FastAPI application factory: `create_app(settings)`.

Everything process-wide (settings, DB engine, Redis client, signing key, metrics) is built in the
lifespan and kept on app.state — nothing at module level — so several apps (tests) can coexist and
any number of web processes can serve the same DB/Redis.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from agent_console import web
from agent_console.deps import require, require_bearer, user_in_session
from agent_console.errors import install_error_handlers, responses
from agent_console.fastpath import FastPath
from agent_console.health import HealthMonitor
from agent_console.intake_batcher import IntakeBatcher
from agent_console.metrics import Metrics
from agent_console.middleware import (
    WRITE_GATE_SLOTS,
    AccessMiddleware,
    BodyLimitMiddleware,
    WriteGate,
    public_max_body,
)
from agent_console.routes import (
    assessment,
    auth,
    departments,
    enterprises,
    escalations,
    handoff,
    hotspots,
    knowledge,
    ops,
    public,
    suborders,
    tickets,
    users,
)
from agent_console.schemas import TicketOut
from agent_console.security import warn_insecure_cookie
from config import wal
from config.database import make_engine
from config.datadir import secure_data_dir
from config.logging import configure_logging
from config.redis import connect
from config.secret_key import ensure_secret_key
from config.settings import Settings, get_settings
from config.wal import BACKSTOP_PAGES
from ivr import build_twilio_router
from recordings import make_router as make_recordings_router
from ticketing import TicketIn, get_classifier, knowledge_warm_up, log_coverage, utcnow

API_PREFIX = "/api/v1"
GC_YOUNG_THRESHOLD = 5000

TAGS = [
    {"name": "auth", "description": "Login (bearer token + HttpOnly cookie), logout, current user"},
    {"name": "tickets", "description": "一事一单: intake, search, detail, dispatch, evaluation"},
    {
        "name": "suborders",
        "description": "A department's share of a ticket: accept/reply/return/extension",
    },
    {"name": "enterprises", "description": "一企一档: an enterprise's file"},
    {"name": "departments", "description": "Departments and their inboxes"},
    {"name": "users", "description": "User administration (admin)"},
    {
        "name": "public",
        "description": "Unauthenticated web/mobile submission, notice confirmation, evaluation",
    },
    {
        "name": "handoff",
        "description": "Status callbacks from external handling systems (HMAC-signed)",
    },
    {"name": "ops", "description": "Health and metrics"},
    {
        "name": "knowledge",
        "description": "知识库: search, articles and their review flow, gaps, 直接答复 figures",
    },
    {
        "name": "assessment",
        "description": "月度考核: ranking, traceable indicators, appeals (申诉/免责), exports",
    },
]


def _log_calendar_coverage(settings: Settings) -> None:
    """Start-up warning when the holiday calendar lacks any of the next 60 days (local date)."""
    from zoneinfo import ZoneInfo

    today = utcnow().replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone)).date()
    log_coverage(settings, today)


def create_server_app() -> FastAPI:
    """The app as `callcenter web` serves it: create_app, and a GC tuned for a long-lived process.

    Once start-up has loaded everything (FastAPI, SQLAlchemy, the trained classifier: ~200k
    objects that live as long as the process), they are moved out of the collector's sight
    (gc.freeze), and the young generation is collected every 5,000 net allocations rather than
    700. Measured with bench/ticketing.py: full collections had cost ~0.15 s each, several times
    a minute under load, and were the p99 of ticket creation. Not done in create_app: tests build
    hundreds of apps in one process.

    As one of several uvicorn workers (callcenter.run.serve_web), the worker dies with the
    process that started it: uvicorn spawns workers afresh, so no fork hook has set that up."""
    from callcenter.run import WEB_PARENT_ENV, die_with_parent

    parent = os.environ.get(WEB_PARENT_ENV)
    if parent and parent.isdigit():
        die_with_parent(int(parent))
        configure_logging(get_settings())  # a fresh interpreter: serve_web's setup is not here
    return create_app(tune_gc=True)


def create_app(
    settings: Settings | None = None, *, tune_gc: bool = False, fast_path: bool = True
) -> FastAPI:
    """The web app. `fast_path=False` leaves ticket creation to the router alone (the parity
    test of agent_console.fastpath compares the two)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Nested runs (a test client inside another, as schemathesis does) restore the outer
        # run's resources on exit instead of leaving the app without an engine.
        previous = {
            k: getattr(app.state, k, None)
            for k in ("secret_key", "engine", "redis", "intake", "health")
        }
        # SQLite's WAL checkpoints run in a thread of their own (below), not in an intake's COMMIT
        engine = make_engine(settings.resolved_database_url, wal_autocheckpoint=BACKSTOP_PAGES)
        conn = connect(settings)
        app.state.settings = settings
        secure_data_dir(settings.data_dir)  # 0700/0600 before the key and the database land
        warn_insecure_cookie(settings)
        app.state.secret_key = ensure_secret_key(settings)
        app.state.engine, app.state.redis = engine, conn
        # /healthz answers this monitor's latest check (agent_console.health)
        app.state.health = await run_in_threadpool(HealthMonitor(engine, conn, settings).start)
        # the holiday calendar: warn (log) when the next 60 days are not all covered
        await run_in_threadpool(_log_calendar_coverage, settings)
        # Train the ticket classifier now (cached per process), not on the first intake.
        await run_in_threadpool(get_classifier)
        # and the knowledge base's segmenter (jieba's dictionary, its IDF table)
        await run_in_threadpool(knowledge_warm_up, settings)
        app.state.intake = IntakeBatcher(
            engine, settings, _ticket_json, observe=app.state.metrics.observe_intake_batch
        )
        if tune_gc:
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        # log upkeep off the request path: SQLite's WAL checkpoints, where the writer is
        # (PostgreSQL's GIN lists are the scheduler's: one cleaner per deployment)
        upkeep = wal.start_for(engine)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.intake.close)
            await run_in_threadpool(app.state.health.stop)
            if upkeep is not None:
                await run_in_threadpool(upkeep.stop)
            conn.close()
            engine.dispose()
            for key, value in previous.items():
                setattr(app.state, key, value)

    app = FastAPI(
        title="店小二 hotline — agent console API",
        version="1.0.0",
        description=(
            "REST API of the 店小二 7x24 business-environment hotline. Every error response has "
            'the shape {"error": {"code", "message", "details"}}. Authenticate with '
            "`Authorization: Bearer <token>` from /api/v1/auth/login, or the session cookie it "
            "sets (then unsafe methods need the header `X-Requested-With`)."
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics) and logs structlog; FastAPI's native OpenTelemetry
        # hooks, unconfigured, would still look up three environment variables per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # /docs is served below from vendored Swagger UI files (no CDN); ReDoc would load one
        docs_url=None,
        redoc_url=None,
    )
    _serve_docs(app)
    app.state.settings = settings
    app.state.engine = None
    app.state.metrics = Metrics(lambda: app.state.engine)
    from callcenter.pbx_status import PbxCollector  # per-PBX link/call gauges from Redis

    app.state.metrics.add_collector(
        PbxCollector(lambda: getattr(app.state, "redis", None), lambda: app.state.settings)
    )

    install_error_handlers(app)
    app.add_middleware(  # innermost: see WriteGate
        WriteGate,
        slots=lambda: WRITE_GATE_SLOTS,
        audited_read=_is_playback,
        exempt=frozenset({f"{API_PREFIX}/auth/login", web.LOGIN_SUBMIT}),
    )
    if fast_path:  # outside the gate: ticket creation without the router (agent_console.fastpath)
        app.add_middleware(
            FastPath,
            method="POST",
            path=f"{API_PREFIX}/tickets",
            route=next(r for _, r in iter_routes() if r.name == "tickets.create"),
            dependency=tickets.CREATE_TOKEN,
            endpoint=tickets.create_ticket,
            handlers=app.exception_handlers,
        )
    app.add_middleware(
        BodyLimitMiddleware,
        public_limit=public_max_body(settings.public_max_content_chars),
        path_limits={web.PORTAL_SUBMIT: web.portal_max_body(settings)},
    )
    app.state.route_templates = {id(route): path for path, route in iter_routes()}
    app.add_middleware(
        AccessMiddleware, metrics=app.state.metrics, templates=app.state.route_templates
    )

    for prefix, router in ROUTERS:
        app.include_router(router, prefix=prefix)
    # Twilio Voice webhooks: authenticated by X-Twilio-Signature, not by our roles.
    app.include_router(build_twilio_router(settings), include_in_schema=False)
    _use_error_body_for_validation(app)
    web.install(app)  # the web workspace: pages, static assets (agent_console.web)
    return app


def _is_playback(path: str) -> bool:
    """GET/HEAD of a recording's audio: it writes the playback log (recordings.api)."""
    return path.startswith(f"{API_PREFIX}/recordings/") and path.endswith("/audio")


SWAGGER_DIR = Path(__file__).resolve().parent / "vendor" / "swagger-ui"
DOCS_STATIC = "/docs/static"


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from agent_console/vendor/swagger-ui (npm swagger-ui-dist): an
    intranet has no CDN, and no third-party script may run on the API's origin."""
    app.mount(DOCS_STATIC, StaticFiles(directory=SWAGGER_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — Swagger UI",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
        )


def _ticket_json(ticket: Any) -> tuple[bytes, str]:
    """A created ticket as the response body (in the intake writer thread) and its channel."""
    return TicketOut.model_validate(ticket).model_dump_json().encode(), ticket.channel


# (prefix, router) of every router the app serves; the single source for the route walk below.
ROUTERS: list[tuple[str, APIRouter]] = [
    *(
        (API_PREFIX, m.router)
        for m in (auth, tickets, suborders, enterprises, departments, users, public, handoff)
    ),
    (API_PREFIX, knowledge.router),
    (API_PREFIX, knowledge.public_router),
    (API_PREFIX, escalations.router),
    (API_PREFIX, hotspots.router),
    (API_PREFIX, assessment.router),
    ("", ops.router),
    (
        API_PREFIX,
        make_recordings_router(
            require,
            responses=responses(401, 403, 404, 416, 422),
            playback_auth=(require_bearer, user_in_session),
        ),
    ),
]


def iter_routes() -> Iterator[tuple[str, APIRoute]]:
    """(full path template, route) for every API route: metrics labels and the role-matrix tests."""
    for prefix, router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield prefix + route.path, route


# Request bodies that a route parses itself (tickets.create): their schemas join the components.
BODY_MODELS = (TicketIn,)


def _use_error_body_for_validation(app: FastAPI) -> None:
    """FastAPI documents 422 as its own HTTPValidationError; ours answer ErrorBody (errors.py)."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                resp = op.get("responses", {}).get("422")
                if resp and "HTTPValidationError" in str(resp):
                    resp["description"] = "Invalid input (fields listed in details)"
                    resp["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    }
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in BODY_MODELS:  # bodies read by the route itself (errors.json_body)
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in body.pop("$defs", {}).items():
                comps.setdefault(name, sub)
            comps.setdefault(model.__name__, body)
        if "HTTPValidationError" not in str(schema.get("paths")):
            comps.pop("HTTPValidationError", None)
            comps.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
