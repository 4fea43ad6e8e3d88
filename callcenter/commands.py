"""Web → PBX commands over Redis: a request list per PBX, a reply key per request.

A web process never speaks AMI. It pushes a command onto `{ns}:pbx:{server}:commands` and waits
(BLPOP) on `{ns}:pbx:reply:{id}`; the bridge of that PBX pops the command, runs it with its own
AmiActions and pushes the answer. No bridge → no answer within the timeout → BridgeUnavailable,
shown to the agent as a clear error. A command carries its deadline: one the bridge picks up too
late (it was down, the user has long been told it failed) is dropped, never run late.

Commands (the only ones a web process may ask for; the bridge refuses any other):
  queue_add {queue, interface, member_name?}   log in to a queue
  queue_remove {queue, interface}               log out of a queue
  queue_pause {interface, reason, queue?,       pause (reason code from config/console.yaml);
               ready_after?}                    ready_after: seconds after which the bridge
                                                itself makes the agent ready (wrap-up, below)
  queue_unpause {interface, queue?}             ready
  transfer {channel, exten}                     blind transfer: the party bridged with the
                                                agent's leg `channel` goes to `exten` in the
                                                dialplan context TRANSFER_CONTEXT (a queue name
                                                or an agent extension: the only extensions
                                                config/asterisk/extensions.conf [dxe-transfer]
                                                has; AMI BlindTransfer, class `call`)
  spy {interface, phone, mode}                  supervisor: listen / whisper / barge (see below)
Every command is logged by the bridge (who, what, result), without phone numbers.

Automatic ready after wrap-up (话后处理) is the bridge's, not the browser's: a queue_pause with
`ready_after` that succeeded puts the agent's interface in the `{ns}:pbx:{server}:auto_ready`
hash (interface -> {"due": epoch seconds, "reason", "actor"}); the bridge checks it every second
(`ready_due`) and sends QueuePause false when due. Any later queue_pause / queue_unpause /
queue_remove of that interface through this channel (the agent paused for another reason, went
ready, logged out) replaces or ends the schedule; and when due, an agent the bridge sees paused
with another reason (paused by some other way) is left paused. Kept in Redis, so a page closed,
a bridge restarted or the PBX link down when it falls due does not lose it (the bridge sends it
once the link is back, up to READY_RETRY_FOR seconds late).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from config.settings import Settings

log = logging.getLogger(__name__)

SUPERVISOR_COMMANDS = frozenset({"spy"})
COMMANDS = (
    frozenset({"queue_add", "queue_remove", "queue_pause", "queue_unpause", "transfer"})
    | SUPERVISOR_COMMANDS
)
TRANSFER_CONTEXT = "dxe-transfer"
# What a transfer may name, checked again by the bridge (a value is an AMI header: no CR/LF, no
# other context): a channel as Asterisk names one (Local/8001@agents-00000006;1, PJSIP/8001-0000001)
# and an extension of [dxe-transfer] (dxe-* queues, 80XX agent phones).
TRANSFER_CHANNEL = re.compile(r"^(Local|PJSIP|SIP|IAX2)/[A-Za-z0-9@._-]{1,60}(;[12])?$")
TRANSFER_EXTEN = re.compile(r"^(dxe-[a-z]{2,20}|80[0-9]{2})$")
REPLY_TTL = 60
MAX_READY_AFTER = 3600  # seconds: a longer wrap-up is refused (a typo, not an intention)
ACTION_TIMEOUT = 2.5  # seconds the bridge waits for Asterisk (under the web's 3 s)
# seconds after it fell due that an automatic ready the PBX could not be reached for is kept
# (then the agent, paused all that time, readies by hand)
READY_RETRY_FOR = 600


class BridgeUnavailable(Exception):
    """No bridge answered in time."""


class CommandFailed(Exception):
    """The bridge answered with an error (AMI refused, bad arguments)."""


def _keys(namespace: str, server: str, request_id: str = "") -> tuple[str, str]:
    return f"{namespace}:pbx:{server}:commands", f"{namespace}:pbx:reply:{request_id}"


def auto_ready_key(namespace: str, server: str) -> str:
    """The agents the bridge of `server` will make ready, and when (see the module docstring)."""
    return f"{namespace}:pbx:{server}:auto_ready"


def send_command(
    r,
    settings: Settings,
    server: str,
    command: str,
    args: dict[str, Any],
    *,
    actor: str,
    timeout: float = 3.0,
) -> dict[str, Any]:
    """Ask the bridge of `server` to run `command` (sync redis client); its answer, or raise."""
    if command not in COMMANDS:
        raise ValueError(f"unknown PBX command {command!r}")
    request_id = uuid.uuid4().hex
    queue_key, reply_key = _keys(settings.redis_namespace, server, request_id)
    body = {
        "id": request_id,
        "command": command,
        "args": args,
        "actor": actor,
        "deadline": time.time() + timeout,
    }
    r.rpush(queue_key, json.dumps(body, ensure_ascii=False))
    got = r.blpop([reply_key], timeout=max(1, int(timeout + 0.999)))
    if got is None:
        # withdraw it if still queued, so a bridge coming back does not run it late
        r.lrem(queue_key, 1, json.dumps(body, ensure_ascii=False))
        raise BridgeUnavailable(f"交换机 {server} 的桥接服务无应答，请稍后重试或联系值班长")
    reply = json.loads(got[1])
    if not reply.get("ok"):
        raise CommandFailed(reply.get("error") or "交换机拒绝了该操作")
    return reply


async def serve_commands(
    aredis, namespace: str, server: str, actions: Any, running: Callable[[], bool] = lambda: True
) -> None:
    """The bridge's side: run commands for `server` with `actions` (AmiActions) until cancelled
    or `running()` turns false."""
    queue_key, _ = _keys(namespace, server)
    while running():
        try:
            got = await aredis.blpop([queue_key], timeout=1)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # Redis away: try again shortly
            log.warning("pbx command queue unreachable (%s)", type(e).__name__)
            await asyncio.sleep(1)
            continue
        if got is None:
            continue
        reply = await run_command(got[1], actions, server)
        if reply is None:
            continue
        if reply.get("ok"):
            try:
                await _track_ready(aredis, auto_ready_key(namespace, server), got[1])
            except Exception as e:  # Redis away: the agent readies by hand (the page says so)
                log.warning("auto-ready schedule not kept (%s)", type(e).__name__)
        _, reply_key = _keys(namespace, server, reply["id"])
        try:
            pipe = aredis.pipeline(transaction=False)
            pipe.rpush(reply_key, json.dumps(reply, ensure_ascii=False))
            pipe.expire(reply_key, REPLY_TTL)
            await pipe.execute()
        except Exception as e:
            log.warning("pbx command reply lost (%s)", type(e).__name__)


async def _track_ready(aredis, key: str, raw: bytes | str) -> None:
    """After a command that succeeded: schedule the agent's automatic ready (a queue_pause with
    `ready_after`), or end a schedule the agent's own later choice overrides."""
    body = json.loads(raw)
    command, args = body["command"], body["args"]
    if command not in ("queue_pause", "queue_unpause", "queue_remove"):
        return
    iface = str(args["interface"])
    after = args.get("ready_after") if command == "queue_pause" else None
    if isinstance(after, int | float) and 0 < after <= MAX_READY_AFTER:
        entry = {"due": time.time() + after, "reason": args.get("reason") or "",
                 "actor": str(body.get("actor", "?"))[:64]}  # fmt: skip
        await aredis.hset(key, iface, json.dumps(entry, ensure_ascii=False))
    else:
        await aredis.hdel(key, iface)


async def ready_due(
    aredis,
    namespace: str,
    server: str,
    actions: Any,
    paused_reason: Callable[[str], str | None],
    now: float,
) -> list[str]:
    """The bridge's side of automatic ready: QueuePause false for each agent whose scheduled time
    has come (each taken once, even with two bridges), unless `paused_reason(interface)` says
    the agent is now paused for another reason. One the PBX could not be reached for (AMI down,
    no answer, the bridge stopping) is put back and tried again; one it refused is dropped. The
    interfaces made ready."""
    from callcenter.ami.actions import AmiActionError  # the bridge's side only: no AMI in the web

    key = auto_ready_key(namespace, server)
    done: list[str] = []
    for field, raw in (await aredis.hgetall(key)).items():
        iface = field.decode() if isinstance(field, bytes) else str(field)
        try:
            entry = json.loads(raw)
            due, reason = float(entry["due"]), str(entry.get("reason") or "")
        except (ValueError, KeyError, TypeError):
            await aredis.hdel(key, iface)
            continue
        if due > now:
            continue
        if not await aredis.hdel(key, iface):  # another bridge took it
            continue
        current = paused_reason(iface)
        if current is not None and current != reason:
            log.info("auto-ready of %s skipped: paused for %s since", iface, current)
            continue
        try:
            async with asyncio.timeout(ACTION_TIMEOUT):  # no inner task left behind on a stop
                res = await actions.queue_unpause(iface)
        except AmiActionError as e:  # the PBX refused it (agent logged out): ready by hand
            log.info("auto-ready of %s on %s refused: %s", iface, server, e.message)
            continue
        except (Exception, asyncio.CancelledError) as e:
            # the PBX unreachable, or the bridge stopping: back in the hash (unless the agent
            # has scheduled anew meanwhile), for the next check or the next bridge
            if now - due < READY_RETRY_FOR:
                await aredis.hsetnx(key, iface, raw)
            if isinstance(e, asyncio.CancelledError):
                raise
            log.info("auto-ready of %s on %s not sent (%s): tried again", iface, server,
                     type(e).__name__)  # fmt: skip
            continue
        log.info("auto-ready of %s on %s after wrap-up (by %s): %s", iface, server,
                 entry.get("actor", "?"), res.message)  # fmt: skip
        done.append(iface)
    return done


async def run_command(raw: bytes | str, actions: Any, server: str) -> dict[str, Any] | None:
    """One command from the queue: its reply, or None when it is stale or unreadable."""
    try:
        body = json.loads(raw)
        request_id, command, args = str(body["id"]), str(body["command"]), dict(body["args"])
    except (ValueError, KeyError, TypeError):
        log.warning("pbx command unreadable; dropped")
        return None
    actor = str(body.get("actor", "?"))[:64]
    if float(body.get("deadline", 0)) < time.time():
        log.info("pbx command expired before pick-up: %s by %s on %s", command, actor, server)
        return None
    if command not in COMMANDS:
        return {"id": request_id, "ok": False, "error": "不支持的交换机操作"}
    try:
        if command == "transfer":
            channel, exten = str(args["channel"]), str(args["exten"])
            if not TRANSFER_CHANNEL.match(channel) or not TRANSFER_EXTEN.match(exten):
                return {"id": request_id, "ok": False, "error": "转接目标或通话通道无效"}
            res = await asyncio.wait_for(
                actions.blind_transfer(channel, context=TRANSFER_CONTEXT, exten=exten),
                ACTION_TIMEOUT,
            )
            log.info("pbx command transfer by %s on %s to %s: %s", actor, server, exten,
                     res.message)  # fmt: skip
            return {"id": request_id, "ok": True, "message": res.message}
        iface = str(args["interface"])
        if command in SUPERVISOR_COMMANDS:
            call = supervisor_action(actions, command, args)
        elif command == "queue_add":
            call = actions.queue_add(
                str(args["queue"]), iface, member_name=args.get("member_name") or None
            )
        elif command == "queue_remove":
            call = actions.queue_remove(str(args["queue"]), iface)
        elif command == "queue_pause":
            call = actions.queue_pause(
                iface, queue=args.get("queue") or None, reason=args.get("reason") or None
            )
        else:
            call = actions.queue_unpause(iface, queue=args.get("queue") or None)
        res = await asyncio.wait_for(call, ACTION_TIMEOUT)
    except TimeoutError:
        return {"id": request_id, "ok": False, "error": "交换机未在规定时间内响应"}
    except (KeyError, TypeError):
        return {"id": request_id, "ok": False, "error": "操作参数不完整"}
    except Exception as e:  # AMI refused it, or the PBX connection is down
        msg = getattr(e, "message", None) or str(e) or type(e).__name__
        log.info("pbx command %s by %s on %s failed: %s", command, actor, server, msg)
        return {"id": request_id, "ok": False, "error": f"交换机未执行：{msg}"}
    log.info("pbx command %s by %s on %s: %s", command, actor, server, res.message)
    return {"id": request_id, "ok": True, "message": res.message}


# ---------------------------------------------------------------- supervisor live control
# listen / whisper / barge: the bridge originates a call to the supervisor's own phone and, once
# answered, runs ChanSpy on the agent's channel in the dialplan context SPY_CONTEXT of
# config/asterisk/extensions.conf, whose extensions are the modes: listen (ChanSpy option q),
# whisper (w), barge (B). Only this context and these extensions can be reached, and the target
# and phone must look like channel names (no dialplan injection through a variable).
SPY_CONTEXT = "dxe-spy"
SPY_MODES = {"listen": "q", "whisper": "w", "barge": "B"}
SPY_LABELS = {"listen": "值班长监听", "whisper": "值班长耳语", "barge": "值班长强插"}
_CHANNEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_.@+\-]{1,80}$")


class CommandRefused(ValueError):
    """Arguments the bridge will not send to Asterisk (said in Chinese to the supervisor)."""


def supervisor_action(actions: Any, command: str, args: dict[str, Any]) -> Any:
    """The AMI action of a supervisor command (a coroutine of AmiActions)."""
    mode = str(args.get("mode") or "")
    target, phone = str(args["interface"]), str(args["phone"])
    if mode not in SPY_MODES:
        raise CommandRefused("监听方式不正确（应为监听、耳语或强插）")
    if not _CHANNEL_NAME.match(target) or not _CHANNEL_NAME.match(phone):
        raise CommandRefused("坐席或值班长话机的通道名称不正确")
    return actions.originate_callback(
        phone,
        context=SPY_CONTEXT,
        exten=mode,
        caller_id=f"{SPY_LABELS[mode]} <{mode}>",
        variables={"SPY_TARGET": target},
        timeout_ms=30000,
    )
