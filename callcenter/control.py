"""Supervisor live control: one call that sends a command to the bridge of the right PBX and
writes the audit row (who, when, what, the PBX's answer or the error), whatever the outcome.

The web process never speaks AMI: commands go over Redis (callcenter.commands) and the bridge runs
them. Pause / unpause / log out / add to / remove from a queue reuse the console's commands; listen,
whisper and barge are the `spy` command (ChanSpy through Originate to the supervisor's phone).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine

from callcenter.commands import BridgeUnavailable, CommandFailed, send_command
from callcenter.models import ControlAudit
from config.database import session_scope
from config.settings import Settings

log = logging.getLogger(__name__)

ACTION_LABELS = {
    "pause": "置为小休",
    "unpause": "置为就绪",
    "logout": "签出",
    "queue_add": "加入队列",
    "queue_remove": "移出队列",
    "listen": "监听",
    "whisper": "耳语",
    "barge": "强插",
}


class ControlError(Exception):
    """The action was not done; the message says why, in Chinese, for the supervisor."""


def plan(action: str, interface: str, *, queue: str = "", reason: str = "",
         queues: list[str] | None = None, phone: str = "") -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    """The bridge commands one supervisor action takes (log out = leave every queue)."""
    if action == "pause":
        return [("queue_pause", {"interface": interface, "reason": reason})]
    if action == "unpause":
        return [("queue_unpause", {"interface": interface})]
    if action == "logout":
        if not queues:
            raise ControlError("该坐席未在任何队列中")
        return [("queue_remove", {"queue": q, "interface": interface}) for q in queues]
    if action == "queue_add":
        return [("queue_add", {"queue": queue, "interface": interface})]
    if action == "queue_remove":
        return [("queue_remove", {"queue": queue, "interface": interface})]
    if action in ("listen", "whisper", "barge"):
        return [("spy", {"interface": interface, "phone": phone, "mode": action})]
    raise ControlError("未知操作")


def supervise(
    r: Any,
    engine: Engine,
    settings: Settings,
    *,
    actor: str,
    server: str,
    action: str,
    interface: str,
    timeout: float = 3.0,
    **kw: Any,
) -> str:
    """Run one supervisor action through the bridge; its result text, or ControlError. Audited."""
    ok, result = False, ""
    try:
        steps = plan(action, interface, **kw)
        for command, args in steps:
            reply = send_command(r, settings, server, command, args, actor=actor, timeout=timeout)
            result = str(reply.get("message") or "")
        ok = True
        result = f"已{ACTION_LABELS.get(action, action)}" + (f"（{result}）" if result else "")
        return result
    except (BridgeUnavailable, CommandFailed, ControlError) as e:
        result = str(e)
        raise ControlError(result) from e
    finally:
        args = {k: v for k, v in kw.items() if v} | {"action": action}
        with session_scope(engine) as s:
            s.add(
                ControlAudit(
                    actor=actor[:64],
                    server=server[:32],
                    command=action[:32],
                    target=interface[:100],
                    args=args,
                    ok=ok,
                    result=result[:500],
                )
            )
        log.info("supervisor %s: %s %s on %s: %s", actor, action, interface, server,
                 "ok" if ok else "failed")  # fmt: skip
