"""FastAGI server for Asterisk (agi://HOST:4573/ivr) built on panoramisk.fast_agi.

The dialplan runs `AGI(agi://127.0.0.1:4573/ivr,${EXTEN})`; this server answers, plays the menu
(GET DATA / STREAM FILE / WAIT FOR DIGIT), and sets the decision into channel variables that the
dialplan and the AMI bridge read:

    IVR_RESULT       queue | voicemail | hangup   (set last: the decision is complete)
    IVR_PATH         the caller's keys, timeouts as "t", joined by "-" (e.g. "t-9-2")
    IVR_OPTION       enterprise | government | complaint | policy | operator
    IVR_CATEGORY     ticket category (enterprise | government | complaint; unset for 人工)
    IVR_QUEUE        app_queue queue name (dxe-enterprise …)
    IVR_CALLBACK_AT  after hours: ISO time of the promised callback (next opening)

If the caller hangs up (HANGUP line, 511, result=-1 on a dead channel, EOF) the session just ends.
A malformed or unexpected reply ends the session without a decision; the dialplan then falls back
to the general queue, so a caller is never stranded by a protocol error.

panoramisk's Application/Request are used with two hardenings: the agi_* environment is read line
by line with a deadline (the stock reader spins forever on an early EOF), and replies are read with a
timeout and parsed from the raw line (EOF, garbage and multi-line 520 usage errors are classified
instead of raising ValueError deep in the parser).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panoramisk.fast_agi import Application, Request

from config.settings import Settings, get_settings
from ivr.engine import Gather, Hangup, IvrEngine, Prompt, ToQueue, ToVoicemail, Turn
from ivr.menu import load_menu
from ivr.tts import TtsUnavailable, spoken_prompt
from ticketing import load_business_hours

log = logging.getLogger(__name__)

ROUTE = "ivr"
ESCAPE_DIGITS = "0123456789*#"
MAX_ENV_LINES = 128
MAX_USAGE_LINES = 64
_STATUS = re.compile(r"^(\d{3})([ -])(.*)$")
_RESULT = re.compile(r"^result=(\S*)\s*(?:\((.*?)\))?\s*(.*)$")


class AgiHangup(Exception):
    """The caller is gone (HANGUP, 511 on a dead channel, result=-1 confirmed, socket closed)."""


class AgiProtocolError(Exception):
    """Asterisk (or whatever is on the socket) sent something that is not a valid AGI reply."""


def mask_number(raw: str | None) -> str:
    """Caller IDs in logs: keep 3 leading and 4 trailing digits (138****1234)."""
    s = (raw or "").strip()
    if len(s) <= 8:
        return "*" * len(s)
    return f"{s[:-8]}****{s[-4:]}"


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str  # raw value after result=
    data: str  # text inside (...) if any
    rest: str  # e.g. endpos=1234
    line: str

    @property
    def value(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_reply(line: str) -> AgiReply:
    """'200 result=2 (timeout) endpos=0' -> AgiReply. Raises AgiProtocolError on anything else."""
    m = _STATUS.match(line)
    if not m:
        raise AgiProtocolError(f"malformed AGI reply {line[:80]!r}")
    code = int(m.group(1))
    body = m.group(3).strip()
    if code != 200:
        return AgiReply(code, "", "", body, line)
    r = _RESULT.match(body)
    if not r:
        raise AgiProtocolError(f"200 reply without result= {line[:80]!r}")
    return AgiReply(code, r.group(1), r.group(2) or "", r.group(3), line)


class IvrRequest(Request):
    """panoramisk Request whose reply reader is safe against EOF, garbage and stalls.

    Stalls are caught by the server's watchdog (one timer for all sessions) rather than a timeout
    context per read: that context was most of the server's CPU per round trip.
    """

    def __init__(self, *args: Any, timeout: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.timeout = timeout
        self.deadline: float | None = None  # loop time by which a reply is due (None: not waiting)
        self.timed_out = False
        self._loop = asyncio.get_running_loop()

    def expire(self, now: float) -> bool:
        """Called by the watchdog: abort the socket when a reply is overdue."""
        if self.deadline is not None and now > self.deadline:
            self.timed_out = True
            self.writer.transport.abort()
            return True
        return False

    async def _readline(self) -> str:
        self.deadline = self._loop.time() + self.timeout
        try:
            raw = await self.reader.readline()
        except ConnectionError as e:
            if self.timed_out:
                raise AgiProtocolError(f"no reply within {self.timeout:.0f}s") from e
            raise AgiHangup(f"socket error: {e}") from e
        except (asyncio.LimitOverrunError, ValueError) as e:  # a line beyond the stream limit
            raise AgiProtocolError(f"reply line too long: {e}") from e
        finally:
            self.deadline = None
        if not raw.endswith(b"\n"):
            if self.timed_out:
                raise AgiProtocolError(f"no reply within {self.timeout:.0f}s")
            raise AgiHangup("connection closed by Asterisk")
        return raw.decode(self.encoding, errors="replace").rstrip("\r\n")

    async def _read_result(self) -> dict[str, Any]:
        line = await self._readline()
        if line == "HANGUP":
            # Asterisk tells FastAGI scripts about a hangup with this bare line (AGISIGHUP=yes).
            return {"status_code": 0, "error": "AGIResultHangup", "line": line}
        if line.startswith("520-"):
            # Multi-line usage error: consume through "520 End of proper usage."
            usage = [line]
            while not line.startswith("520 "):
                if len(usage) > MAX_USAGE_LINES:
                    return {"status_code": -1, "line": "520 usage text without end"}
                line = await self._readline()
                usage.append(line)
            return {"status_code": 520, "error": "AGIUsage", "line": "\n".join(usage)}
        m = _STATUS.match(line)
        return {"status_code": int(m.group(1)) if m else -1, "line": line}


class AgiChannel:
    """Typed AGI commands over one IvrRequest; raises AgiHangup / AgiProtocolError."""

    def __init__(self, request: IvrRequest) -> None:
        self.request = request
        self.commands = 0

    async def command(self, cmd: str) -> AgiReply:
        if "\n" in cmd or "\r" in cmd:
            raise ValueError("AGI commands are single lines")
        self.commands += 1
        try:
            res = await self.request.send_command(cmd)
        except ConnectionError as e:
            raise AgiHangup(f"socket error: {e}") from e
        if res.get("error") == "AGIResultHangup":
            raise AgiHangup("HANGUP")
        line = res.get("line", "")
        code = res.get("status_code")
        if code == 511:
            raise AgiHangup("511 dead channel")
        if code == 520 or code == 510:
            raise AgiProtocolError(f"{cmd.split(' ')[0]} rejected: {line[:120]!r}")
        reply = parse_reply(line)
        if reply.code != 200:
            raise AgiProtocolError(f"unexpected reply to {cmd[:40]!r}: {line[:80]!r}")
        if reply.data == "hangup":
            raise AgiHangup("hangup during command")
        return reply

    async def alive(self) -> bool:
        """After a result=-1: is the channel still up (a missing sound file) or gone?"""
        try:
            r = await self.command("CHANNEL STATUS")
        except AgiHangup:
            return False
        return (r.value or -1) >= 0

    async def set_variable(self, name: str, value: str) -> None:
        esc = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{esc}"')

    async def stream(self, file: str, escape: str = "") -> str | None:
        """Play a file; the digit that interrupted it, if any."""
        r = await self.command(f'STREAM FILE {file} "{escape}"')
        v = r.value
        if v is None:
            raise AgiProtocolError(f"STREAM FILE: bad result {r.line[:80]!r}")
        if v < 0:
            if not await self.alive():
                raise AgiHangup("hangup during playback")
            log.error("prompt %s could not be played (missing sound file?)", file)
            return None
        return chr(v) if v > 0 else None

    async def get_data(self, file: str, timeout_ms: int, max_digits: int) -> str | None:
        """Digits typed (None on timeout; '#' when only the terminator was pressed)."""
        r = await self.command(f"GET DATA {file} {timeout_ms} {max_digits}")
        if r.result == "-1":
            if not await self.alive():
                raise AgiHangup("hangup during GET DATA")
            log.error("GET DATA %s failed on a live channel (missing sound file?)", file)
            return None
        if not re.fullmatch(r"[0-9*#]*", r.result):
            raise AgiProtocolError(f"GET DATA: bad digits {r.line[:80]!r}")
        if r.result:
            return r.result
        return None if r.data == "timeout" else "#"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        r = await self.command(f"WAIT FOR DIGIT {timeout_ms}")
        v = r.value
        if v is None:
            raise AgiProtocolError(f"WAIT FOR DIGIT: bad result {r.line[:80]!r}")
        if v < 0:
            raise AgiHangup("hangup during WAIT FOR DIGIT")
        return chr(v) if v > 0 else None


async def _read_env(reader: asyncio.StreamReader) -> dict[str, str]:
    """The agi_* block: 'key: value' lines up to an empty line (one read, bounded by the limit)."""
    try:
        raw = await reader.readuntil(b"\n\n")
    except asyncio.IncompleteReadError as e:
        raise AgiProtocolError("connection closed inside the AGI environment") from e
    except asyncio.LimitOverrunError as e:
        raise AgiProtocolError("AGI environment too long") from e
    lines = raw.decode("utf-8", errors="replace").replace("\r", "").split("\n")[:-2]
    if len(lines) > MAX_ENV_LINES:
        raise AgiProtocolError("AGI environment too long")
    headers: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"bad AGI environment line {line[:80]!r}")
        headers[key.strip()] = value.strip()
    return headers


class FastAgiApp(Application):
    """panoramisk Application with a bounded, EOF-safe environment reader."""

    def __init__(self, *, header_timeout: float, command_timeout: float) -> None:
        super().__init__(default_encoding="utf-8")
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.stats: Counter[str] = Counter()
        self.active = 0
        self.peak = 0
        self.requests: set[IvrRequest] = set()

    async def watchdog(self) -> None:
        """Abort sessions whose Asterisk stopped answering (checked a few times per timeout)."""
        loop = asyncio.get_running_loop()
        interval = max(0.01, min(1.0, self.command_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for req in list(self.requests):
                if req.expire(now):
                    log.warning(
                        "FastAGI session %s: no reply, aborted", req.headers.get("agi_uniqueid")
                    )

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            try:
                async with asyncio.timeout(self.header_timeout):
                    headers = await _read_env(reader)
            except (TimeoutError, AgiProtocolError, ConnectionError, ValueError) as e:
                self.stats["bad_env"] += 1
                log.warning("FastAGI connection dropped before a valid environment: %s", e)
                return
            script = headers.get("agi_network_script", "").split("?", 1)[0].strip("/")
            route = self._route.get(script)
            if route is None:
                self.stats["no_route"] += 1
                log.error("FastAGI: no route for %r", script)
                return
            request = IvrRequest(
                app=self,
                headers=headers,
                reader=reader,
                writer=writer,
                encoding=self.default_encoding,
                timeout=self.command_timeout,
            )
            self.requests.add(request)
            try:
                await route(request)
            except Exception:
                self.stats["crashed"] += 1
                log.exception("FastAGI route %r failed", script)
            finally:
                self.requests.discard(request)
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _force_mode(headers: dict[str, str]) -> str | None:
    """AGI(agi://…/ivr,${EXTEN},mode=closed) forces after-hours (holiday emergencies, tests)."""
    for k, v in headers.items():
        if k.startswith("agi_arg_") and v.startswith("mode="):
            mode = v.split("=", 1)[1].strip().lower()
            if mode in ("open", "closed"):
                return mode
    return None


class IvrSession:
    """One call through the menu: render engine Turns as AGI commands."""

    def __init__(
        self,
        engine: IvrEngine,
        clock: Callable[[], datetime],
        *,
        sounds_dir: Path | None = None,
        voice: str = "cmn",
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.sounds_dir = sounds_dir
        self.voice = voice

    async def sound(self, p: Prompt) -> str:
        """What Asterisk plays for p: the recording, or for a text-only prompt (the edited
        after-hours message) its rendering by ivr.tts, the recording if that fails."""
        if not p.spoken or self.sounds_dir is None:
            return p.file
        try:
            return await asyncio.to_thread(spoken_prompt, self.sounds_dir, p.text, self.voice)
        except TtsUnavailable as e:
            log.warning("prompt %s played from its recording %s: %s", p.name, p.file, e)
            return p.file

    async def gather(self, ch: AgiChannel, turn: Turn) -> str | None:
        assert isinstance(turn.action, Gather)
        *lead, last = turn.prompts or (None,)
        for p in lead:
            digit = await ch.stream(
                await self.sound(p), ESCAPE_DIGITS
            )  # barge-in: a key ends the prompt
            if digit is not None:
                return digit
        timeout_ms = turn.action.timeout_seconds * 1000
        if last is None:
            return await ch.wait_for_digit(timeout_ms)
        return await ch.get_data(await self.sound(last), timeout_ms, turn.action.max_digits)

    async def finish(self, ch: AgiChannel, turn: Turn) -> str:
        action = turn.action
        if isinstance(action, ToQueue):
            opt = action.option
            await ch.set_variable("IVR_OPTION", opt.code)
            if opt.category:
                await ch.set_variable("IVR_CATEGORY", opt.category)
            await ch.set_variable("IVR_QUEUE", opt.queue)
            await ch.set_variable("IVR_PATH", turn.path)
            await ch.set_variable("IVR_RESULT", "queue")
            result = "queue"
        elif isinstance(action, ToVoicemail):
            await ch.set_variable("IVR_PATH", turn.path)
            await ch.set_variable("IVR_CALLBACK_AT", action.callback_at.isoformat())
            await ch.set_variable("IVR_RESULT", "voicemail")
            result = "voicemail"
        elif isinstance(action, Hangup):
            await ch.set_variable("IVR_PATH", turn.path)
            await ch.set_variable("IVR_RESULT", "hangup")
            result = "hangup"
        else:  # pragma: no cover - Gather never reaches here
            raise AssertionError(action)
        for p in turn.prompts:
            await ch.stream(await self.sound(p))
        return result

    async def __call__(self, request: IvrRequest) -> None:
        ch = AgiChannel(request)
        headers = request.headers
        caller = mask_number(headers.get("agi_callerid"))
        uid = headers.get("agi_uniqueid", "?")
        outcome, path = "?", ""
        try:
            answer = await ch.command("ANSWER")
            if (answer.value or 0) < 0:
                raise AgiHangup("ANSWER failed")
            turn = self.engine.start(self.clock(), force=_force_mode(headers))
            while isinstance(turn.action, Gather):
                digits = await self.gather(ch, turn)
                turn = self.engine.step(turn.state, digits)
            path = turn.path
            outcome = await self.finish(ch, turn)
        except AgiHangup as e:
            outcome = "caller_hangup"
            log.info("IVR %s caller %s hung up: %s", uid, caller, e)
        except AgiProtocolError as e:
            outcome = "protocol_error"
            log.warning("IVR %s caller %s: %s", uid, caller, e)
        request.app.stats[outcome] += 1
        log.info(
            "IVR %s caller %s -> %s path=%s commands=%d", uid, caller, outcome, path, ch.commands
        )


# FastAGI session outcomes that mean something went wrong (the rest: queue, voicemail, hang-ups)
ERROR_OUTCOMES = frozenset({"bad_env", "no_route", "crashed", "protocol_error"})


class AgiServer:
    """The FastAGI listener; start() binds (port 0 = ephemeral), close() stops it."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engine: IvrEngine | None = None,
        clock: Callable[[], datetime] | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        menu = load_menu(self.settings)
        self.engine = engine or IvrEngine(menu, lambda: load_business_hours(self.settings))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.host = host if host is not None else self.settings.agi_host
        self.port = port if port is not None else self.settings.agi_port
        agi_cfg = self.engine.menu.agi
        self.header_timeout = float(agi_cfg.get("header_timeout_seconds", 10))
        self.command_timeout = float(agi_cfg.get("command_timeout_seconds", 120))
        self.app: FastAgiApp | None = None
        self._server: asyncio.Server | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        self.app = FastAgiApp(
            header_timeout=self.header_timeout, command_timeout=self.command_timeout
        )
        session = IvrSession(
            self.engine,
            self.clock,
            sounds_dir=self.settings.agi_sounds_dir,
            voice=self.settings.agi_tts_voice,
        )
        self.app.add_route(ROUTE, session.__call__)
        self._server = await asyncio.start_server(
            self.app.handler, self.host, self.port, backlog=1024
        )
        self._watchdog = asyncio.create_task(self.app.watchdog())
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("FastAGI IVR listening on agi://%s:%d/%s", host, port, ROUTE)
        return host, port

    async def heartbeat(self, redis: Any, namespace: str, interval: float = 5.0) -> None:
        """Tell the web app (/healthz, /metrics) this server is up and what it did: a Redis hash
        {ns}:agi:status that expires when the heartbeats stop. Redis away: try again later."""
        import json
        import time

        key = f"{namespace}:agi:status"
        since = time.time()
        while True:
            app = self.app
            stats = dict(app.stats) if app is not None else {}
            errors = sum(v for k, v in stats.items() if k in ERROR_OUTCOMES)
            try:
                await redis.hset(
                    key,
                    mapping={
                        "listening": f"agi://{self.host}:{self.port}/{ROUTE}",
                        "since": since,
                        "updated": time.time(),
                        "sessions": sum(stats.values()),
                        "active": app.active if app is not None else 0,
                        "errors": errors,
                        "stats": json.dumps(stats),
                    },
                )
                await redis.expire(key, max(1, int(interval * 3)))
            except Exception as e:
                log.debug("AGI heartbeat not written (%s)", type(e).__name__)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()
