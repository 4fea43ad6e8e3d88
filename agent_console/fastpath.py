"""The hot route straight from the middleware: POST /api/v1/tickets without FastAPI's router.

Why: ticket creation is the one route under sustained load (every channel files through it),
and on one web process it shares the GIL with the intake writer. Measured in-process with the
writer stubbed out: of ~250 µs that the app spent on one creation, ~190 µs went to routing
through the included routers, FastAPI's request wrappers and dependency solving, and ~25 µs to
what the route itself does. That is 10-15 % of a creation's whole CPU cost on the server.

So this middleware, innermost of the app's own (inside AccessMiddleware's request id and
metrics, and BodyLimitMiddleware's size limit), answers exactly that method and path by calling
the route's own dependency and endpoint function: there is one implementation, which the
APIRoute still carries (the OpenAPI schema, the role matrix, and any request this does not
match, e.g. a trailing slash). Errors go to the app's own exception handlers, looked up as
Starlette's ExceptionMiddleware does, so every answer is byte-for-byte the route's
(tests/agent_console/test_fastpath.py compares the two paths case by case).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request, Exception], Awaitable[Response]]


class FastPath:
    """Serve `method path` with `dependency` then `endpoint(request, value)`; pass the rest on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        method: str,
        path: str,
        route: Any,
        dependency: Callable[[Request], Awaitable[Any]],
        endpoint: Callable[[Request, Any], Awaitable[Response]],
        handlers: Mapping[Any, Callable[..., Any]],
    ) -> None:
        self.app = app
        self.method, self.path = method, path
        self.route = route  # what the router would have put in scope["route"] (metrics label)
        self.dependency, self.endpoint = dependency, endpoint
        # the app's exception handlers by class; `Exception`'s is left to ServerErrorMiddleware,
        # outermost, as for any route
        self.handlers = {k: v for k, v in handlers.items() if isinstance(k, type)}
        self.handlers.pop(Exception, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != self.method
            or scope["path"] != self.path
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        scope.setdefault("path_params", {})
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request, await self.dependency(request))
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None
