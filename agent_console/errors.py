"""The one error shape for every 4xx/5xx: {"error": {"code", "message", "details"}}.

Domain errors (ticketing.errors) keep their code and status; request validation lists the bad
fields (without echoing their values: they may be passwords); anything unexpected is logged with
its traceback and answered 500 with only a request id, never internals.
"""

from __future__ import annotations

import re
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

from agent_console.roles import ROLE_LABELS
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


# Request fields as users know them: a validation message names the label, never the code.
FIELD_LABELS: dict[str, str] = {
    "channel": "受理渠道",
    "content": "诉求内容",
    "title": "标题",
    "category": "事项类别",
    "urgency": "紧急程度",
    "submitter_name": "姓名",
    "submitter_phone": "联系电话",
    "enterprise_uscc": "统一社会信用代码",
    "enterprise_name": "企业名称",
    "channel_data": "渠道信息",
    "window_no": "窗口号",
    "call_id": "通话编号",
    "source_url": "舆情来源链接",
    "list_id": "调研清单编号",
    "departments": "承办部门",
    "send_notice": "是否发送受理告知书",
    "instructions": "派单说明",
    "deadline": "办理时限",
    "deadlines": "各部门办理时限",
    "allow_beyond_ticket_deadline": "允许超出承诺时限",
    "lead": "主办部门",
    "text": "答复内容",
    "reason": "理由",
    "amount": "延期时长",
    "unit": "延期单位",
    "until": "延期截止时间",
    "approve": "审批结果",
    "note": "审批意见",
    "process": "办理过程评价",
    "timeliness": "办理时效评价",
    "result": "办理结果评价",
    "comment": "评价意见",
    "responsible_person": "责任人",
    "evaluation_token": "评价凭证",
    "username": "用户名",
    "password": "密码",
    "role": "角色",
    "department_code": "所属部门",
    "display_name": "显示名称",
    "active": "是否启用",
    "status": "状态",
    "warning": "预警等级",
    "department": "部门",
    "created_from": "受理时间起",
    "created_to": "受理时间止",
    "q": "关键词",
    "uscc": "统一社会信用代码",
    "phone": "联系电话",
    "page": "页码",
    "page_size": "每页条数",
    "number": "工单编号",
    "suborder_id": "子工单编号",
    "body": "请求内容",
}
# Enumerated values as users know them (the codes stay in `details.allowed`).
VALUE_LABELS: dict[str, str] = {
    "general": "一般",
    "urgent": "较紧急",
    "critical": "紧要",
    "enterprise": "企业服务",
    "government": "政务服务",
    "complaint": "投诉咨询",
    "hotline": "热线电话",
    "voicemail": "留言",
    "web": "网页端",
    "mobile": "移动端",
    "window": "特殊服务窗口",
    "opinion": "网络舆情",
    "survey": "线下调研",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "unsatisfied": "不满意",
    "hours": "小时",
    "working_days": "工作日",
    "pending_dispatch": "待派单",
    "dispatched": "办理中",
    "resolved": "已办结",
    "closed": "已关闭",
    "reopened": "已重启",
    "none": "无",
    "blue": "蓝色",
    "yellow": "黄色",
    "red": "红色",
    **ROLE_LABELS,
}
_QUOTED = re.compile(r"'([^']*)'")


def field_label(loc: list[str]) -> str:
    """The label of the innermost named field of a validation error's location."""
    for part in reversed(loc):
        if part in FIELD_LABELS:
            return FIELD_LABELS[part]
        if not part.isdigit() and part not in ("query", "path", "header"):
            return part
    return "请求内容"


def chinese_message(err: Mapping[str, Any], label: str) -> str:
    """One pydantic error in Chinese, naming the field by its label (never an English code)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"{label}为必填项"
    if kind in ("string_too_short", "too_short"):
        n = ctx.get("min_length", 1)
        unit = "个字" if kind.startswith("string") else "项"
        return f"{label}不能为空" if n in (0, 1) else f"{label}至少需要 {n} {unit}"
    if kind == "string_too_long":
        return f"{label}不能超过 {ctx.get('max_length')} 个字"
    if kind == "too_long":
        return f"{label}最多 {ctx.get('max_length')} 项"
    if kind in ("enum", "literal_error"):
        allowed = _QUOTED.findall(str(ctx.get("expected", "")))
        names = "、".join(VALUE_LABELS.get(a, a) for a in allowed)
        return f"{label}应为：{names}" if names else f"{label}取值无效"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{label}应为整数"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return f"{label}应为数字"
    if kind in ("bool_parsing", "bool_type"):
        return f"{label}应为 true 或 false"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{label}不能小于 {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{label}不能大于 {ctx.get('le', ctx.get('lt'))}"
    if kind.startswith("datetime") or kind.startswith("date_"):
        return f"{label}时间格式不正确（例如 2026-12-07T09:00:00+08:00）"
    if kind == "extra_forbidden":
        return f"不接受的字段：{label}"
    if kind == "string_pattern_mismatch":
        return f"{label}格式不正确"
    if kind in ("string_type", "string_unicode"):
        return f"{label}应为文本"
    if kind == "list_type":
        return f"{label}应为列表"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{label}应为 JSON 对象"
    if kind == "json_invalid":
        return "请求内容不是有效的 JSON"
    if kind == "value_error":
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        return msg if _has_chinese(msg) else f"{label}填写有误"
    return f"{label}填写有误"


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        label = field_label(loc)
        item: dict[str, Any] = {
            "field": ".".join(loc[1:]) or ".".join(loc),
            "label": label,
            "loc": loc,
            "msg": chinese_message(err, label),
            "type": err.get("type"),
        }
        if err.get("type") in ("enum", "literal_error"):
            item["allowed"] = _QUOTED.findall(str((err.get("ctx") or {}).get("expected", "")))
        details.append(item)
    return details


def validation_message(details: list[dict[str, Any]]) -> str:
    """The one-line message of a 422: the first problems, in Chinese."""
    msgs = list(dict.fromkeys(d["msg"] for d in details))
    if not msgs:
        return "请求参数无效"
    more = f"等 {len(msgs)} 处问题" if len(msgs) > 3 else ""
    return "请求参数无效：" + "；".join(msgs[:3]) + more


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TicketingError)
    async def _ticketing(request: Request, exc: TicketingError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        return error_response(422, "validation_error", validation_message(details), details)

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

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's form of the DataError above: "Python int too large to convert to SQLite
        # INTEGER" is raised by the driver as a bare OverflowError (no DBAPI error, so no
        # DataError). Ids are checked at the edge (deps.RowId, web.core.page_row_id); this is the
        # net under any number that slipped past, logged so that the gap is found.
        log.warning("input_overflow", path=request.url.path, error=str(exc)[:200])
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
