"""structlog set-up shared by every process: JSON lines by default, pretty console on a TTY.

Phone numbers are personal data: a processor masks every phone number it finds anywhere in an
event (keys, nested dicts/lists, free text), so a careless `log.info("sms", to=phone)` never
writes a full number. Masked form keeps the country/operator prefix and the last four digits:
+8613812341234 → +86138****1234, 13812341234 → 138****1234.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from config.settings import Settings

# E.164 (+ and 8–15 digits) and bare 11-digit mainland mobiles (1[3-9]xxxxxxxxx), not embedded in a
# longer run of digits (ticket numbers, USCC codes, timestamps stay intact).
_E164 = re.compile(r"(?<![\dA-Za-z+])\+\d{8,15}(?!\d)")
_CN_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _mask_one(number: str) -> str:
    keep_head = 6 if number.startswith("+") else 3
    if len(number) <= keep_head + 4:
        return number[:2] + "*" * (len(number) - 2)
    return number[:keep_head] + "*" * (len(number) - keep_head - 4) + number[-4:]


def mask_phones(text: str) -> str:
    """Mask every phone number in free text."""
    text = _E164.sub(lambda m: _mask_one(m.group(0)), text)
    return _CN_MOBILE.sub(lambda m: _mask_one(m.group(0)), text)


def _mask_value(value: Any, depth: int = 0) -> Any:
    if depth > 8:  # pathological nesting: stop rather than recurse forever
        return value
    if isinstance(value, str):
        return mask_phones(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= 10_000_000:
        masked = mask_phones(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, dict):
        return {_mask_value(k, depth + 1): _mask_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(_mask_value(v, depth + 1) for v in value)
    if isinstance(value, BaseException):
        return mask_phones(repr(value))
    return value


def mask_phone_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers anywhere in the event dict (last before render)."""
    for key in list(event_dict.keys()):
        value = _mask_value(event_dict.pop(key))
        event_dict[_mask_value(key)] = value
    return event_dict


RQ_LOGGERS = ("rq.worker", "rq.cron", "rq.scheduler", "rq.queue", "rq.job")


def configure_logging(settings: Settings, *, json: bool | None = None, stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger (uvicorn, rq, alembic go through it too).

    JSON lines unless `settings.log_json` is false or the stream is an interactive TTY.
    """
    stream = stream or sys.stderr
    if json is None:
        json = settings.log_json and not (hasattr(stream, "isatty") and stream.isatty())
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        # plain tracebacks: rich's default shows local variables (passwords, phone numbers)
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_phone_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("callcenter")
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "callcenter":
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # rq at INFO says every job's start and end and each minute's registry clean-up and periodic
    # enqueue: ~20 lines a minute on an idle service, which push the first admin's password off
    # the screen. Its warnings and errors (a failed job) stay; DEBUG shows it all.
    for name in RQ_LOGGERS:
        logging.getLogger(name).setLevel(
            level if level <= logging.DEBUG else max(level, logging.WARNING)
        )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
