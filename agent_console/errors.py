"""The one error shape for every 4xx/5xx: {"error": {"code", "message", "details"}}.

Domain errors (ticketing.errors) keep their code and status; request validation lists the bad
fields (without echoing their values: they may be passwords); anything unexpected is logged with
its traceback and answered 500 with only a request id, never internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing import TicketingError

log = structlog.get_logger("agent_console.errors")

_HTTP_CODES = {
    400: ("bad_request", "请求无效"),
    401: ("unauthorized", "未登录或登录已失效"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not_found", "资源不存在"),
    405: ("method_not_allowed", "不支持的请求方法"),
    409: ("conflict", "当前状态不允许此操作"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
    422: ("invalid_input", "请求参数无效"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
    500: ("internal_error", "服务器内部错误"),
    503: ("unavailable", "服务暂不可用"),
}


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class ApiError(StarletteHTTPException):
    """An HTTP error raised by the API layer itself, with a machine code and optional details."""

    def __init__(
        self,
        status_code: int,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_code, default_msg = _HTTP_CODES.get(status_code, ("error", "请求失败"))
        super().__init__(status_code, message or default_msg, headers=headers)
        self.code = code or default_code
        self.message = message or default_msg
        self.details = details


def error_payload(code: str, message: str, details: Any = None) -> dict[str, Any]:
    # domain errors carry datetimes, enums, Decimals in their details: make them JSON first
    return {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_payload(code, message, details), status_code=status, headers=headers)


_DESCRIPTIONS = {
    401: "Not authenticated / token invalid, expired or revoked",
    403: "Role not allowed (see agent_console.roles) or CSRF header missing",
    404: "Not found",
    409: "Illegal state transition",
    413: "Request body too large",
    422: "Invalid input (fields listed in details)",
    429: "Rate limited (see Retry-After)",
    503: "A dependency (database, Redis) is down",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each listed status plus 500 and 503 (the database away),
    all with ErrorBody."""
    out: dict[int | str, dict[str, Any]] = {}
    for s in (*statuses, 500, 503):
        out[s] = {"model": ErrorBody, "description": _DESCRIPTIONS.get(s, "Internal error")}
    return out


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        details.append(
            {
                "field": ".".join(loc[1:]) or ".".join(loc),
                "loc": loc,
                "msg": err.get("msg"),
                "type": err.get("type"),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TicketingError)
    async def _ticketing(request: Request, exc: TicketingError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", "请求参数无效", _validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            code, message, details = exc.code, exc.message, exc.details
        else:
            code, message = _HTTP_CODES.get(exc.status_code, ("error", str(exc.detail)))
            details = None
        return error_response(exc.status_code, code, message, details, headers=exc.headers)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # a value the database cannot hold (number out of range, text too long) that slipped
        # past validation: the client's input, so 422 — the transaction has been rolled back
        log.warning("database_rejected_input", path=request.url.path, error=type(exc.orig).__name__)
        return error_response(422, "invalid_input", "输入的数据超出允许范围")

    @app.exception_handler(OperationalError)
    async def _unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # the database went away or stayed locked past its timeout: nothing was written (the
        # transaction is gone), so the client may simply try again. Any other OperationalError
        # (SQLite reports a bad statement, e.g. an FTS5 syntax error, as one) is a bug: 500.
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database_unavailable", path=request.url.path, error=type(exc.orig).__name__)
        return _busy()

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        # every pooled connection stayed busy past the pool's timeout: overloaded, not broken
        log.warning("database_pool_exhausted", path=request.url.path)
        return _busy()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("request_id")
        log.error(
            "unhandled_error",
            path=request.url.path,
            method=request.method,
            request_id=request_id,
            exc_info=exc,
        )
        # sent by the outermost ServerErrorMiddleware: add the request id header ourselves
        return error_response(
            500,
            "internal_error",
            "服务器内部错误",
            {"request_id": request_id},
            headers={"X-Request-ID": request_id} if request_id else None,
        )


def _busy() -> JSONResponse:
    return error_response(
        503, "unavailable", "服务暂不可用，请稍后重试", headers={"Retry-After": "5"}
    )


# What SQLite / PostgreSQL drivers say when the database itself is away, locked or out of space
_UNAVAILABLE = (
    "locked",
    "busy",
    "unable to open",
    "disk i/o",
    "readonly database",
    "read-only",
    "disk is full",
    "connect",
    "connection",
    "server closed",
    "terminating",
    "timeout",
    "timed out",
    "shutting down",
    "starting up",
    "recovery mode",
    "too many clients",
)


def database_unavailable(exc: OperationalError) -> bool:
    """True when an OperationalError means the database is unavailable (so 503 is the truth)."""
    if exc.connection_invalidated:
        return True
    if type(exc.orig).__module__.startswith("psycopg"):
        return True  # psycopg's OperationalError is about the connection / server state
    message = str(exc.orig).lower()
    return any(marker in message for marker in _UNAVAILABLE)


def json_body(model: str) -> dict[str, Any]:
    """openapi_extra for a route that reads its JSON body itself: the named model, required (the
    app registers the model's schema in components, see app.BODY_MODELS)."""
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}
