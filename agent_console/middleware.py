"""Pure-ASGI middleware: request id + access metrics, and request body size limits.

Body limits are enforced here, before any parsing: a declared Content-Length over the limit is
refused at once; a chunked body is read up to the limit and refused when it goes over. Public
endpoints get a small limit derived from settings.public_max_content_chars; the rest 1 MiB.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_console.errors import error_payload
from agent_console.metrics import Metrics

log = structlog.get_logger("agent_console.access")

DEFAULT_MAX_BODY = 1024 * 1024
PUBLIC_PREFIXES = ("/api/v1/public/", "/api/v1/handoff/")


def public_max_body(max_content_chars: int) -> int:
    """Bytes allowed for a public submission: the content at up to 6 bytes/char (\\uXXXX escapes)
    plus room for the other (short) fields."""
    return max_content_chars * 6 + 16 * 1024


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> dict[str, Any]:
    return error_payload("payload_too_large", "请求内容过大", {"max_bytes": limit})


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        public_limit: int,
        default_limit: int = DEFAULT_MAX_BODY,
        path_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.public_limit = public_limit
        self.default_limit = default_limit
        self.path_limits = path_limits or {}  # exact paths (the portal's form with a photo)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.path_limits.get(path) or (
            self.public_limit if path.startswith(PUBLIC_PREFIXES) else self.default_limit
        )
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_json(send, 413, _too_large(limit))
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_json(send, 413, _too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# Sent on every response (issue #17 §7). Cache-Control no-store on everything but static assets:
# API answers and pages carry personal data (names, phones, complaints) that must not stay in a
# shared browser's or proxy's cache. frame-ancestors and X-Frame-Options: no other site may frame
# the console (clickjacking). no-referrer: links carry tokens (a notice's confirm link).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
FRAME_ANCESTORS = (b"content-security-policy", b"frame-ancestors 'none'")
NO_STORE = (b"cache-control", b"no-store")
STATIC_PREFIXES = ("/static/", "/docs/static/")


def add_security_headers(
    path: str, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers with ours added; a route's own Cache-Control or CSP is kept as it is."""
    names = {name.lower() for name, _ in headers}
    extra = [h for h in SECURITY_HEADERS if h[0] not in names]
    if b"content-security-policy" not in names:
        extra.append(FRAME_ANCESTORS)
    if b"cache-control" not in names and not path.startswith(STATIC_PREFIXES):
        extra.append(NO_STORE)
    return [*headers, *extra]


# Request ids: a random per-process prefix and a counter. uuid4 would read os.urandom on every
# request, a system call that hands the GIL to the intake writer and waits to get it back.
_ID_PREFIX = uuid.uuid4().hex[:8]
_ID_COUNTER = itertools.count(1)


def _next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


class AccessMiddleware:
    """Assigns a request id (echoed as X-Request-ID, bound into every log line of the request) and
    records the request in the metrics by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: dict[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates  # id(route) -> full path template
        # (method, route, status) -> its counter and histogram children: prometheus' labels()
        # takes a lock and builds a key on every call; the set is bounded by the routes anyway
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _next_request_id()
        scope["request_id"] = request_id
        path: str = scope["path"]
        status_holder = {"status": 500}
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = add_security_headers(
                    path, [*message["headers"], (b"x-request-id", request_id.encode())]
                )
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = self.templates.get(id(route), "unmatched") if route else "unmatched"
            method = scope["method"]
            status = status_holder["status"]
            children = self._children.get((method, template, status))
            if children is None:
                labels = (method, template, str(status))
                children = (
                    self.metrics.requests.labels(*labels),
                    self.metrics.latency.labels(*labels),
                )
                self._children[(method, template, status)] = children
            children[0].inc()
            children[1].observe(elapsed)
            if status >= 500:
                log.warning("request_failed", method=method, route=template, status=status)
            structlog.contextvars.unbind_contextvars("request_id")


# Unsafe requests served past WriteGate at once (see WriteGate), on every database. SQLite commits
# one writer at a time (deps.WRITE_THREADS: 2 threads), so a few admitted requests keep it busy;
# PostgreSQL writes on 4 threads (deps.WRITE_THREADS_DEFAULT), which 8 admitted keep busy too.
# PostgreSQL had 32: bench/concurrency.py, bursts of 200 (machine load 4-7), write p99 1.81 and
# 2.63 s with 32, 1.81 and 2.86 s with 8 (no gain: the writes are CPU-bound under the GIL), but
# /healthz p99 35 and 151 ms with 32, 27 and 28 ms with 8 (fewer first steps per loop iteration).
WRITE_GATE_SLOTS = 8


class WriteGate:
    """At most `slots()` writing requests past this point at once; the others wait here in arrival
    order (asyncio.Semaphore), holding no thread, connection or lock. A request leaves the gate
    when its response starts (a streamed recording does not keep its place while it plays).
    Writing requests: every unsafe method (POST, PUT, PATCH, DELETE), and the reads that write an
    audit row (`audited_read(path)`: recording playback), except the `exempt` paths.

    Why: a burst of writes arrives within milliseconds, and asyncio runs every ready task's next
    step in one loop iteration. Each write's first step (routing, dependency solving, up to its
    first thread hop) costs 0.3-0.5 ms of event loop, so 200 at once made one iteration of
    60-150 ms or more, and /healthz, every page and every read waited behind it
    (bench/concurrency.py: /healthz p99 = the static page's p99). Admitted a few at a time, an
    iteration holds a few such steps; the writes lose nothing, since they queue for the writer
    anyway (deps.WRITE_THREADS), and fewer requests in flight cost less CPU each.

    Innermost of the app's middleware (the body is already read, by BodyLimitMiddleware: a slow
    upload waits outside), after FastPath (ticket creation batches many requests in one
    transaction, agent_console.intake_batcher, and needs them all at once). Logins are exempt:
    they wait on Argon2 (security.check_password), not on the database, and must not hold up
    writes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        slots: Callable[[], int],
        audited_read: Callable[[str], bool],
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.slots = slots  # read on the first gated request
        self.audited_read = audited_read
        self.exempt = exempt
        # one per event loop (a semaphore binds to its loop; tests serve one app from several)
        self._gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._gated(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate[0] is not loop:
            self._gate = (loop, asyncio.Semaphore(self.slots()))
        gate = self._gate[1]
        await gate.acquire()
        inside = True

        def leave() -> None:
            nonlocal inside
            if inside:
                inside = False
                gate.release()

        async def send_and_leave(message: Message) -> None:
            if message["type"] == "http.response.start":
                leave()
            await send(message)

        try:
            await self.app(scope, receive, send_and_leave)
        finally:
            leave()

    def _gated(self, method: str, path: str) -> bool:
        if path in self.exempt:
            return False
        if method in ("GET", "HEAD", "OPTIONS"):
            return method != "OPTIONS" and self.audited_read(path)
        return True
