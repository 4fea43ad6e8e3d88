"""A stand-in for Asterisk's res_agi on the FastAGI socket (tests, bench/agi.py, the demo).

It connects like Asterisk does, sends the agi_* environment block and a blank line, then reads
commands and answers each with the reply a real Asterisk 22 gives ("200 result=…"), pressing keys
from a script. It can hang up mid-dialogue the way Asterisk does (result=-1, a bare HANGUP line,
then 511 for every later command) and can be told to send arbitrary (malformed) replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_ENV = {
    "agi_network": "yes",
    "agi_network_script": "ivr",
    "agi_request": "agi://127.0.0.1:4573/ivr",
    "agi_channel": "Local/12345@dxe-inbound-00000001;2",
    "agi_language": "zh",
    "agi_type": "Local",
    "agi_uniqueid": "1795569465.30",
    "agi_version": "22.10.1",
    "agi_callerid": "13200132000",
    "agi_calleridname": "吴九",
    "agi_callingpres": "0",
    "agi_callingani2": "0",
    "agi_callington": "0",
    "agi_callingtns": "0",
    "agi_dnid": "unknown",
    "agi_rdnis": "unknown",
    "agi_context": "dxe-inbound",
    "agi_extension": "12345",
    "agi_priority": "7",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140587963147968",
    "agi_arg_1": "12345",
}
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


_TOKEN = re.compile(r'"((?:\\.|[^"\\])*)"|(\S+)')


def split_args(cmd: str) -> list[str]:
    """Asterisk's AGI argument split: whitespace, double quotes, backslash escapes."""
    if '"' not in cmd and "\\" not in cmd:
        return cmd.split()
    return [
        re.sub(r"\\(.)", r"\1", quoted) if bare == "" else bare
        for quoted, bare in _TOKEN.findall(cmd)
    ]


def env_block(env: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass
class Transcript:
    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    closed_by_server: bool = False
    latencies: list[float] = field(default_factory=list)  # reply sent -> next command, seconds

    @property
    def verbs(self) -> list[str]:
        out = []
        for c in self.commands:
            words = c.split(" ")
            two = " ".join(words[:2])
            out.append(two if two in _TWO_WORD else words[0])
        return out


_TWO_WORD = {
    "GET DATA",
    "STREAM FILE",
    "WAIT FOR",
    "SET VARIABLE",
    "GET VARIABLE",
    "GET FULL",
    "CHANNEL STATUS",
}


class SimulatedAsterisk:
    """One call. `keys` answers each GET DATA / WAIT FOR DIGIT in turn (None = timeout).

    `barge` maps the index of a STREAM FILE command (0-based among STREAM FILEs) to a key pressed
    during it. `hangup_at` makes the caller hang up while the N-th command (0-based) runs.
    `reply` may override any reply: called with (index, command), returns raw bytes or None.
    `think` returns seconds to wait before answering a command (caller / playback time).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        env: dict[str, str] | None = None,
        raw_env: bytes | None = None,
        keys: Iterable[str | None] = (),
        barge: dict[int, str] | None = None,
        hangup_at: int | None = None,
        reply: Callable[[int, str], bytes | None] | None = None,
        think: Callable[[str], float] | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.raw_env = raw_env if raw_env is not None else env_block(env or DEFAULT_ENV)
        self.keys = list(keys)
        self.barge = barge or {}
        self.hangup_at = hangup_at
        self.reply = reply
        self.think = think
        self.timeout = timeout
        self.dead = False
        self.streams = 0

    def answer(self, cmd: str, t: Transcript) -> str:
        """Asterisk's reply to one command on a live channel."""
        args = split_args(cmd)
        head = " ".join(args[:2]).upper()
        if args and args[0].upper() == "ANSWER":
            return "200 result=0"
        if head == "GET DATA":
            key = self.keys.pop(0) if self.keys else None
            return "200 result= (timeout)" if key is None else f"200 result={key}"
        if head == "STREAM FILE":
            idx = self.streams
            self.streams += 1
            key = self.barge.get(idx)
            if key is not None and len(args) > 3 and key in args[3]:
                return f"200 result={ord(key)} endpos=4000"
            return "200 result=0 endpos=16000"
        if head == "WAIT FOR":
            key = self.keys.pop(0) if self.keys else None
            return f"200 result={ord(key) if key else 0}"
        if head == "SET VARIABLE" and len(args) >= 4:
            return "200 result=1"
        if head == "GET VARIABLE" and len(args) >= 3:
            v = t.variables.get(args[2])
            return "200 result=0" if v is None else f"200 result=1 ({v})"
        if head == "CHANNEL STATUS":
            return "200 result=6"
        if args and args[0].upper() in ("VERBOSE", "NOOP"):
            return "200 result=1"
        return "510 Invalid or unknown command"

    async def run(self) -> Transcript:
        t = Transcript()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self.raw_env)
            await writer.drain()
            sent_at = time.perf_counter()
            while True:
                if self.timeout is None:  # the bench: no per-read timer to skew the figures
                    raw = await reader.readline()
                else:
                    async with asyncio.timeout(self.timeout):
                        raw = await reader.readline()
                if not raw:
                    t.closed_by_server = True
                    return t
                t.latencies.append(time.perf_counter() - sent_at)
                cmd = raw.decode("utf-8", errors="replace").rstrip("\n")
                idx = len(t.commands)
                t.commands.append(cmd)
                if self.think is not None:
                    delay = self.think(cmd)
                    if delay > 0:
                        await asyncio.sleep(delay)
                out = self.reply(idx, cmd) if self.reply is not None else None
                if out is None:
                    if self.dead:
                        line = DEAD
                    elif self.hangup_at is not None and idx == self.hangup_at:
                        # the caller hangs up while this command runs
                        self.dead = True
                        line = "200 result=-1\nHANGUP"
                    else:
                        line = self.answer(cmd, t)
                    t.replies.append(line)
                    out = (line + "\n").encode()
                elif out == b"":
                    return t  # Asterisk vanishes: close without a reply
                else:
                    t.replies.append(out.decode("utf-8", errors="replace"))
                if cmd.startswith("SET VARIABLE ") and out.startswith(b"200 result=1"):
                    args = split_args(cmd)  # a variable is set only when Asterisk says so
                    if len(args) >= 4:
                        t.variables[args[2]] = args[3]
                if out:
                    writer.write(out)
                    await writer.drain()
                sent_at = time.perf_counter()
        except (ConnectionError, asyncio.IncompleteReadError):
            t.closed_by_server = True
            return t
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
