"""The FastAGI server over a real TCP socket, driven by a peer that speaks AGI like Asterisk.

The reference capture (scenario-fastagi: Asterisk 22 → FastAGI, caller presses 2) is replayed:
its exact environment bytes, its reply to GET DATA, its reply shapes for the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from ivr_testing import CLOSED, FIXTURES, OPEN

from config.settings import Settings
from ivr.agi import AgiServer, mask_number, parse_reply
from ivr.agi_sim import DEFAULT_ENV, SimulatedAsterisk, env_block

AMI = FIXTURES / "ami"
ESC = '"0123456789*#"'
MENU = "GET DATA dxe/welcome 8000 1"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@pytest.fixture
async def server(clock) -> AsyncIterator[AgiServer]:
    srv = AgiServer(Settings(), clock=clock, host="127.0.0.1", port=0)
    await srv.start()
    yield srv
    await srv.close()


def addr(srv: AgiServer) -> tuple[str, int]:
    return srv._server.sockets[0].getsockname()[:2]


async def call(srv: AgiServer, **kw):
    host, port = addr(srv)
    return await asyncio.wait_for(SimulatedAsterisk(host, port, **kw).run(), 30)


async def settle(srv: AgiServer, key: str, n: int = 1) -> None:
    """The server counts an outcome just after closing; wait for it (bounded)."""
    for _ in range(200):
        if srv.app.stats[key] >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"stats[{key}] never reached {n}: {dict(srv.app.stats)}")


def queue_tail(option: str, category: str | None, queue: str, path: str) -> list[str]:
    cmds = [f'SET VARIABLE IVR_OPTION "{option}"']
    if category:
        cmds.append(f'SET VARIABLE IVR_CATEGORY "{category}"')
    cmds += [
        f'SET VARIABLE IVR_QUEUE "{queue}"',
        f'SET VARIABLE IVR_PATH "{path}"',
        'SET VARIABLE IVR_RESULT "queue"',
    ]
    return cmds


# ---- the reference capture ----


def _fixture_session():
    raw = (AMI / "scenario-fastagi.from-asterisk.agi").read_bytes()
    env_bytes = raw[: raw.index(b"\n\n") + 2]
    pairs, pending = {}, None
    for line in (AMI / "scenario-fastagi.agi.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["dir"] == "tx":
            pending = rec["data"].rstrip("\n")
        elif rec["dir"] == "rx" and pending is not None:
            pairs[pending] = rec["data"].rstrip("\n")
            pending = None
    return env_bytes, pairs


async def test_replays_the_reference_asterisk_session(server, clock):
    env_bytes, pairs = _fixture_session()
    env = dict(
        line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
        for line in env_bytes.decode().splitlines()
        if line
    )
    assert env["agi_network_script"] == "ivr" and len(env) == 23
    # the call happened at the time encoded in its uniqueid (a Wednesday morning: open)
    clock.now = datetime.fromtimestamp(float(env["agi_uniqueid"]), UTC)
    ref_set = next(v for k, v in pairs.items() if k.startswith("SET VARIABLE"))

    def reply(_i: int, cmd: str) -> bytes | None:
        if cmd in pairs:  # the reference answered this exact command
            return (pairs[cmd] + "\n").encode()
        if cmd.startswith("SET VARIABLE"):
            return (ref_set + "\n").encode()
        return None  # ANSWER / STREAM FILE: the simulator's Asterisk replies

    t = await call(server, raw_env=env_bytes, reply=reply)

    assert MENU in pairs  # our menu gather is byte-identical to the reference's
    assert t.commands == [
        "ANSWER",
        MENU,
        *queue_tail("government", "government", "dxe-government", "2"),
        'STREAM FILE dxe/transfer ""',
    ]
    assert pairs[MENU] == "200 result=2"
    # same decision as the reference dialplan: 2 → 政务服务 → dxe-government
    ref_vars = {
        k.split(" ")[2]: k.split(" ", 3)[3].strip('"')
        for k in pairs
        if k.startswith("SET VARIABLE")
    }
    assert t.variables["IVR_QUEUE"] == ref_vars["DXE_QUEUE"]
    assert t.variables["IVR_PATH"] == ref_vars["IVR_CHOICE"]
    assert server.engine.menu.options["2"].label == ref_vars["IVR_CHOICE_NAME"]
    assert t.closed_by_server
    await settle(server, "queue")


# ---- menu branches over the socket ----


async def test_direct_choice(server):
    t = await call(server, keys=["1"])
    assert t.commands == [
        "ANSWER",
        MENU,
        *queue_tail("enterprise", "enterprise", "dxe-enterprise", "1"),
        'STREAM FILE dxe/transfer ""',
    ]
    assert t.variables["IVR_RESULT"] == "queue"


async def test_operator_sets_no_category(server):
    t = await call(server, keys=["0"])
    assert "IVR_CATEGORY" not in t.variables
    assert t.variables["IVR_QUEUE"] == "dxe-general"
    assert t.variables["IVR_OPTION"] == "operator"


async def test_policy_routes_as_consultation(server):
    t = await call(server, keys=["4"])
    assert t.variables["IVR_OPTION"] == "policy"
    assert t.variables["IVR_CATEGORY"] == "complaint"
    assert t.variables["IVR_QUEUE"] == "dxe-complaint"


async def test_invalid_then_timeout_then_valid(server):
    t = await call(server, keys=["9", None, "3"])
    assert t.commands == [
        "ANSWER",
        MENU,
        f"STREAM FILE dxe/invalid {ESC}",
        MENU,
        f"STREAM FILE dxe/no-input {ESC}",
        MENU,
        *queue_tail("complaint", "complaint", "dxe-complaint", "9-t-3"),
        'STREAM FILE dxe/transfer ""',
    ]


async def test_key_during_retry_prompt_barges_in(server):
    # first STREAM FILE (index 0) is the invalid-input prompt; the caller presses 2 during it
    t = await call(server, keys=["7"], barge={0: "2"})
    assert t.verbs[:4] == ["ANSWER", "GET DATA", "STREAM FILE", "SET VARIABLE"]
    assert t.variables["IVR_PATH"] == "7-2"
    assert t.variables["IVR_QUEUE"] == "dxe-government"


async def test_hash_alone_is_invalid(server):
    def reply(i, cmd):
        return b"200 result=\n" if i == 1 else None  # GET DATA ended by '#', no digits

    t = await call(server, keys=["1", "1"], reply=reply)
    assert t.variables["IVR_PATH"] == "#-1"


async def test_retries_exhausted_goes_to_operator(server):
    t = await call(server, keys=[None, "8", None])
    assert t.variables["IVR_PATH"] == "t-8-t"
    assert t.variables["IVR_QUEUE"] == "dxe-general"
    assert t.commands[-1] == 'STREAM FILE dxe/to-operator ""'


async def test_after_hours_sets_voicemail_and_callback(server, clock):
    clock.now = CLOSED
    t = await call(server)
    assert t.commands == [
        "ANSWER",
        'SET VARIABLE IVR_PATH ""',
        'SET VARIABLE IVR_CALLBACK_AT "2026-11-26T08:30:00+08:00"',
        'SET VARIABLE IVR_RESULT "voicemail"',
        'STREAM FILE dxe/closed ""',
    ]


async def test_dialplan_can_force_after_hours(server):
    env = {**DEFAULT_ENV, "agi_arg_2": "mode=closed"}
    t = await call(server, env=env)
    assert t.variables["IVR_RESULT"] == "voicemail"


async def test_missing_prompt_file_on_a_live_channel_continues(server):
    def reply(i, cmd):
        if cmd.startswith("STREAM FILE dxe/invalid"):
            return b"200 result=-1 endpos=0\n"  # file not found, channel still up
        return None

    t = await call(server, keys=["9", "2"], reply=reply)
    assert "CHANNEL STATUS" in t.commands
    assert t.variables["IVR_RESULT"] == "queue"


async def test_concurrent_sessions_do_not_mix(server):
    digits = ["1", "2", "3", "4", "0"] * 6
    results = await asyncio.gather(*(call(server, keys=[d]) for d in digits))
    assert [r.variables["IVR_PATH"] for r in results] == digits
    await settle(server, "queue", len(digits))
    assert server.app.peak >= 2


# ---- hangups ----


@pytest.mark.parametrize("at", [0, 1, 2, 3])
async def test_hangup_mid_dialogue(server, at):
    # 0 = during ANSWER, 1 = during the menu, 2 = during the retry prompt, 3 = second menu
    t = await call(server, keys=["9", "1"], hangup_at=at)
    assert t.closed_by_server
    assert "IVR_RESULT" not in t.variables
    # nothing is sent after the server learnt of the hangup, beyond one status probe
    assert len(t.commands) <= at + 2
    await settle(server, "caller_hangup")
    # the server is still healthy
    t2 = await call(server, keys=["2"])
    assert t2.variables["IVR_RESULT"] == "queue"


async def test_bare_hangup_line_and_511(server):
    def reply(i, cmd):
        if i == 1:
            return b"HANGUP\n"
        return (
            b"511 Command Not Permitted on a dead channel or intercept routine\n" if i > 1 else None
        )

    t = await call(server, reply=reply)
    assert len(t.commands) == 2 and t.closed_by_server
    await settle(server, "caller_hangup")


async def test_asterisk_vanishes_mid_command(server):
    t = await call(server, reply=lambda i, cmd: b"" if i == 1 else None)
    assert len(t.commands) == 2
    await settle(server, "caller_hangup")


async def test_hangup_data_marker(server):
    t = await call(server, reply=lambda i, cmd: b"200 result=0 (hangup)\n" if i == 1 else None)
    assert len(t.commands) == 2
    await settle(server, "caller_hangup")


# ---- malformed replies ----


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage\n",
        b"200 nonsense\n",
        b"999 what is this\n",
        b"\n",
        b"\xff\xfe\xfd\n",
        b"200 result=abc\n",
        b"510 Invalid or unknown command\n",
        b"520-Invalid command syntax.  Proper usage follows:\n Usage: GET DATA\n520 End of proper usage.\n",
    ],
)
async def test_malformed_reply_ends_session_cleanly(server, bad):
    t = await call(server, keys=["1"], reply=lambda i, cmd: bad if i == 1 else None)
    assert t.closed_by_server
    assert len(t.commands) == 2  # nothing after the bad reply
    assert "IVR_RESULT" not in t.variables  # the dialplan falls back (general queue)
    await settle(server, "protocol_error")
    assert server.app.stats["crashed"] == 0
    t2 = await call(server, keys=["3"])
    assert t2.variables["IVR_QUEUE"] == "dxe-complaint"


async def test_100_trying_is_skipped(server):
    t = await call(
        server,
        keys=["1"],
        reply=lambda i, cmd: b"100 result=0 Trying...\n200 result=0\n" if i == 0 else None,
    )
    assert t.variables["IVR_RESULT"] == "queue"


@pytest.mark.parametrize(
    "raw_env",
    [
        b"agi_network: yes\nagi_network_scr",  # connection drops inside the environment
        b"",  # connects and closes
        b"this is not agi\n\n",
        b"agi_network: yes\nagi_channel: X\n\n",  # no agi_network_script
        b"agi_network: yes\nagi_network_script: other\n\n",  # unknown route
    ],
)
async def test_bad_environment_is_dropped(server, raw_env):
    host, port = addr(server)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw_env)
    await writer.drain()
    if raw_env.endswith(b"scr") or raw_env == b"":
        writer.write_eof()
    # the server closes without sending any command
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    t2 = await call(server, keys=["1"])
    assert t2.variables["IVR_RESULT"] == "queue"
    assert server.app.stats["crashed"] == 0


# ---- small pieces ----


def test_parse_reply_shapes():
    r = parse_reply("200 result=1 (13200132000)")
    assert (r.code, r.result, r.data) == (200, "1", "13200132000")
    r = parse_reply("200 result= (timeout)")
    assert (r.result, r.data) == ("", "timeout")
    r = parse_reply("200 result=50 endpos=4000")
    assert (r.value, r.rest) == (50, "endpos=4000")
    assert parse_reply("511 Command Not Permitted").code == 511


def test_mask_number():
    assert mask_number("13200132000") == "132****2000"
    assert mask_number("+8613800138000") == "+86138****8000"
    assert mask_number("8001") == "****"
    assert mask_number(None) == ""


async def test_gather_without_prompt_uses_wait_for_digit(clock):
    """A Gather with no prompt to play (engines/menus that pre-announce) waits with WAIT FOR DIGIT."""
    from ivr.engine import Gather, IvrEngine, Turn

    base = AgiServer(Settings(), clock=clock).engine

    class Silent(IvrEngine):
        def start(self, now, *, force=None):
            t = super().start(now, force=force)
            return Turn((), Gather(timeout_seconds=5), t.state)

    srv = AgiServer(Settings(), engine=Silent(base.menu, base.hours), clock=clock, port=0)
    await srv.start()
    try:
        t = await call(srv, keys=["3"])
        assert t.commands[:2] == ["ANSWER", "WAIT FOR DIGIT 5000"]
        assert t.variables["IVR_QUEUE"] == "dxe-complaint"
        t = await call(srv, keys=[None, "1"])  # timeout, then the normal menu with GET DATA
        assert t.commands[1] == "WAIT FOR DIGIT 5000"
        assert t.variables["IVR_PATH"] == "t-1"
    finally:
        await srv.close()


async def test_silent_peers_are_timed_out(clock):
    srv = AgiServer(Settings(), clock=clock, port=0)
    srv.header_timeout = srv.command_timeout = 0.2
    await srv.start()
    try:
        host, port = addr(srv)
        # connects, never sends the environment
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await settle(srv, "bad_env")

        # sends the environment, then never answers a command
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(env_block(DEFAULT_ENV))
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 10) == b"ANSWER\n"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # server gave up and closed
        writer.close()
        await settle(srv, "protocol_error")
    finally:
        await srv.close()


async def test_overlong_reply_line_is_a_protocol_error(server):
    t = await call(
        server, reply=lambda i, cmd: b"200 result=" + b"9" * 70000 + b"\n" if i == 1 else None
    )
    assert len(t.commands) == 2
    await settle(server, "protocol_error")
