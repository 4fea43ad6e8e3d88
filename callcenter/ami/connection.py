"""One AMI connection per Asterisk: panoramisk underneath, our own reconnect/backoff/login on top.

Why not panoramisk's own reconnect: it retries every `reconnect_timeout` seconds forever without
backoff, re-sends un-answered actions after the next FullyBooted (an Originate or Hangup replayed
minutes later is dangerous), never resolves a Login that got no answer, and decodes every TCP chunk
on its own (a UTF-8 character split between two reads loses its bytes; Chinese names do that).
So we keep its parser (`Message.from_line`) and action/response matching, and replace the rest.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from config.settings import AsteriskServer

log = logging.getLogger(__name__)

EOF = "\r\n\r\n"
_LONG_DIGITS = re.compile(r"\d{7,}")


def _mask(m: re.Match) -> str:
    """Never log a full phone number, not even inside a garbage frame."""
    d = m.group(0)
    return d[:3] + "****" + d[-4:]


MAX_FRAME = 1 << 20  # a frame larger than 1 MiB is garbage, not AMI


class AmiError(Exception):
    """Base of every error an AMI action or the connection raises; `str()` is the clear reason."""


class AmiNotConnected(AmiError):
    pass


class AmiTimeout(AmiError):
    pass


class AmiLoginError(AmiError):
    pass


class _NeverRequeue:
    """panoramisk re-sends un-answered actions after a reconnect unless 'forgetable'. Forget all."""

    def __contains__(self, item: object) -> bool:
        return True


class BridgeProtocol(AMIProtocol):
    """panoramisk's protocol with an incremental UTF-8 decoder and bounded, counted framing."""

    def connection_made(self, transport):
        factory: Any = getattr(self, "factory", None)  # bound by BridgeManager._make_protocol
        super().connection_made(transport)  # (panoramisk resets factory to None here)
        self.factory = factory
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._skipping = False

    version: str | None  # panoramisk's, from the AMI banner

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if self.version is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.split("\r\n", 1)[0].partition("/")[2].strip()
        if self._skipping:
            idx = text.find(EOF)
            if idx < 0:
                return
            text = text[idx + 4 :]
            self._skipping = False
        buf = self._buf + text if self._buf else text
        frames = buf.split(EOF)
        self._buf = frames.pop()
        if len(self._buf) > MAX_FRAME:
            self._buf = ""
            self._skipping = True
            self.factory.frame_error("oversized", "")
        raw = self.factory.owner.raw_event
        for frame in frames:
            frame = frame.strip()
            if not frame:
                continue
            if len(frame) > MAX_FRAME:
                self.factory.frame_error("oversized", "")
                continue
            # Fast path: a plain event (no ActionID, so no pending action wants it) goes to the
            # owner as raw text; it parses only what it handles. Noise costs one slice.
            if raw is not None and frame.startswith("Event: ") and "\r\nActionID: " not in frame:
                eol = frame.find("\r\n")
                name = frame[7:eol] if eol > 0 else frame[7:]
                if name != "Shutdown":
                    raw(name, frame)
                    continue
            message = Message.from_line(frame)
            if message is None:
                self.factory.frame_error("unparsable", frame)
                continue
            self.handle_message(message)


class BridgeManager(Manager):
    """panoramisk Manager minus its reconnect, login and pattern dispatch (we own those)."""

    def __init__(self, owner: AmiConnection, **config: Any) -> None:
        super().__init__(**config)
        # panoramisk sets protocol.factory in a done-callback of the connection future, which can
        # run after Asterisk's first bytes arrive (a fast PBX, loopback): bind it at construction.
        self.config["protocol_factory"] = self._make_protocol
        self.owner = owner
        self.forgetable_actions = _NeverRequeue()

    def _make_protocol(self) -> BridgeProtocol:
        protocol = BridgeProtocol()
        protocol.factory = self
        return protocol

    def connection_made(self, f):
        if f.cancelled() or f.exception() is not None:
            return  # AmiConnection.run() sees the failure and backs off
        super().connection_made(f)

    def ping(self):  # panoramisk's pinger; ours checks the answer
        self.pinger = self.loop.call_later(self.ping_interval, self.ping)
        self.owner.ping_now()

    def connection_lost(self, exc):
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.owner.lost(exc)

    def dispatch(self, event):
        self.owner.on_event(event)
        return []

    def frame_error(self, kind: str, frame: str) -> None:
        self.owner.frame_error(kind, frame)


@dataclass
class ConnStats:
    connects: int = 0
    connect_failures: int = 0
    login_failures: int = 0
    disconnects: int = 0
    resyncs: int = 0
    frames_unparsable: int = 0
    frames_oversized: int = 0
    last_error: str = ""
    delays: list[float] = field(default_factory=list)


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: float, rng: random.Random
) -> float:
    """Exponential backoff with +-jitter so many bridges do not reconnect in lock-step."""
    d = min(cap, base * (2**attempt))
    return max(0.0, d * (1 + rng.uniform(-jitter, jitter)))


class AmiConnection:
    """Keeps one AMI session alive: connect, login, resync hook, events out, actions in."""

    def __init__(
        self,
        server: AsteriskServer,
        *,
        on_event: Callable[[Message], None],
        on_raw_event: Callable[[str, str], None] | None = None,
        on_connected: Callable[[AmiConnection], Awaitable[object]] | None = None,
        on_lost: Callable[[], None] | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.2,
        login_timeout: float = 10.0,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.server = server
        self._on_event = on_event
        self._on_raw_event = on_raw_event
        self.raw_event = self._raw_event if on_raw_event is not None else None
        self._on_connected = on_connected
        self._on_lost = on_lost
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.login_timeout = login_timeout
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.max_attempts = max_attempts
        self.rng = rng or random.Random()
        self.stats = ConnStats()
        self.manager: BridgeManager | None = None
        self.authenticated = False
        self.connected_event = asyncio.Event()
        self._lost: asyncio.Future | None = None
        self._pending: set[asyncio.Future] = set()
        self._stopping = False
        self._ping_task: asyncio.Task | None = None

    # ----- callbacks from the manager ------------------------------------------------------
    def on_event(self, message: Message) -> None:
        try:
            self._on_event(message)
        except Exception:  # a bug in a handler must never kill the socket
            log.exception("AMI event handler failed")

    def _raw_event(self, name: str, frame: str) -> None:
        try:
            if self._on_raw_event is not None:  # only bound as raw_event when given
                self._on_raw_event(name, frame)
        except Exception:
            log.exception("AMI event handler failed")

    def frame_error(self, kind: str, frame: str) -> None:
        if kind == "oversized":
            self.stats.frames_oversized += 1
        else:
            self.stats.frames_unparsable += 1
        log.warning("AMI frame skipped (%s): %r", kind, _LONG_DIGITS.sub(_mask, frame[:120]))

    def lost(self, exc: object) -> None:
        if self.authenticated and self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:
                log.exception("AMI on_lost hook failed")
        self.authenticated = False
        self.connected_event.clear()
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(AmiNotConnected(f"AMI connection to {self.server.name} lost"))
        self._pending.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    def ping_now(self) -> None:
        if self.authenticated and (self._ping_task is None or self._ping_task.done()):
            self._ping_task = asyncio.ensure_future(self._ping())

    async def _ping(self) -> None:
        try:
            await self.send({"Action": "Ping"}, timeout=self.action_timeout)
        except AmiTimeout:
            log.warning("AMI ping to %s unanswered; reconnecting", self.server.name)
            self.close_transport()
        except AmiError:
            pass

    # ----- actions -------------------------------------------------------------------------
    async def send(
        self,
        action: dict[str, Any],
        *,
        timeout: float | None = None,
        as_list: bool | None = False,
        require_login: bool = True,
    ) -> Any:
        """Send one action; returns panoramisk's Message (or list for EventList actions).

        `as_list=False` matters: panoramisk guesses "more will follow" from the message text,
        and e.g. QueueAdd's "Added interface to queue" would otherwise never resolve.
        """
        m = self.manager
        if m is None or m.protocol is None or m.protocol.closed:
            raise AmiNotConnected(f"not connected to Asterisk {self.server.name}")
        if require_login and not self.authenticated:
            raise AmiNotConnected(f"not logged in to Asterisk {self.server.name}")
        fut = m.send_action(dict(action), as_list=as_list)
        self._pending.add(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout or self.action_timeout)
        except TimeoutError:
            raise AmiTimeout(
                f"{action.get('Action')} got no answer from {self.server.name} "
                f"within {timeout or self.action_timeout:g}s"
            ) from None
        finally:
            self._pending.discard(fut)

    # ----- lifecycle -----------------------------------------------------------------------
    def close_transport(self) -> None:
        if self.manager is not None and self.manager.protocol is not None:
            self.manager.protocol.close()
            self.lost(None)

    async def stop(self) -> None:
        self._stopping = True
        if self._ping_task:
            self._ping_task.cancel()
        if self.manager is not None:
            self.manager.close()
        self.lost(None)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self.manager = BridgeManager(
            self,
            host=self.server.host,
            port=self.server.port,
            loop=loop,
            encoding="utf-8",
            ping_delay=max(1, int(self.ping_interval)),
            ping_interval=max(1, int(self.ping_interval)),
        )
        self._lost = loop.create_future()
        await asyncio.wait_for(self.manager.connect(), self.login_timeout)
        self.stats.connects += 1
        if not self.server.secret.get_secret_value():
            self.close_transport()
            raise AmiLoginError(
                f"AMI secret for {self.server.name} is empty: set CALLCENTER_ASTERISK__<n>__SECRET "
                f"(the `secret` of [{self.server.username}] in the PBX's manager.conf)"
            )
        try:
            resp = await self.send(
                {
                    "Action": "Login",
                    "Username": self.server.username,
                    "Secret": self.server.secret.get_secret_value(),
                    "Events": "on",
                },
                timeout=self.login_timeout,
                require_login=False,
            )
        except AmiNotConnected:
            raise AmiLoginError(
                f"Asterisk {self.server.name} closed the connection during login"
            ) from None
        if not resp.success:
            self.stats.login_failures += 1
            self.close_transport()
            raise AmiLoginError(
                f"AMI login to {self.server.name} as {self.server.username!r} refused: "
                f"{resp.message or resp.response} (the user and secret must match the PBX's "
                f"manager.conf: CALLCENTER_ASTERISK__<n>__USERNAME / __SECRET)"
            )
        self.authenticated = True
        self.connected_event.set()

    async def run(self) -> None:
        """Connect, resync, wait for loss, back off, repeat, until stop()."""
        attempt = 0
        while not self._stopping:
            try:
                await self._connect_once()
                attempt = 0
                log.info("AMI connected to %s:%s", self.server.host, self.server.port)
                if self._on_connected is not None:
                    await self._on_connected(self)
                    self.stats.resyncs += 1
                if not self._stopping and self._lost is not None:  # set by _connect_once
                    await self._lost
                self.stats.disconnects += 1
                log.warning("AMI connection to %s lost", self.server.name)
            except AmiLoginError as e:
                self.stats.last_error = str(e)
                log.error("%s", e)
            except (OSError, TimeoutError, AmiError) as e:
                self.stats.connect_failures += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.warning("AMI %s unavailable: %s", self.server.name, self.stats.last_error)
            except Exception as e:  # a bug must not end the reconnect loop for good
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.exception("AMI session with %s failed", self.server.name)
            finally:
                self.authenticated = False
                self.connected_event.clear()
                if self.manager is not None:
                    with contextlib.suppress(Exception):
                        self.manager.close()
            if self._stopping:
                break
            if self.max_attempts is not None and attempt + 1 >= self.max_attempts:
                break
            delay = backoff_delay(
                attempt, self.backoff_base, self.backoff_max, self.jitter, self.rng
            )
            self.stats.delays.append(delay)
            attempt += 1
            await asyncio.sleep(delay)
