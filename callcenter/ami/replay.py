"""A replaying AMI peer: serves captured Asterisk transcripts over a real TCP socket.

SIMULATION ONLY. It stands in for Asterisk in tests, the benchmark and `callcenter demo`: it
writes the recorded server bytes unchanged (banner, Login reply, events, with the original
relative pacing or as fast as possible) and answers the client's actions with the recorded
reply of the best-matching recorded action (its ActionID rewritten to the client's). It can drop
a connection mid-stream, refuse connections for a while (PBX down) and chain the conn1/conn2/conn3
transcripts of the restart captures. File formats: ../shared/fixtures/ami/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

EOL = "\r\n"
EOF = "\r\n\r\n"
STATE_ACTIONS = frozenset({"coreshowchannels", "queuestatus", "status", "queuesummary"})
# Events that tell a queue member's current fields (QueueStatus answers with QueueMember)
MEMBER_EVENTS = frozenset(
    {
        "queuemember",
        "queuememberadded",
        "queuememberstatus",
        "queuememberpause",
        "queuememberpenalty",
        "queuememberringinuse",
    }
)
# QueueMemberPause as Asterisk 22 sends it (app_queue's queue_member_blob), in its order
PAUSE_FIELDS = (
    ("Queue", "queue"),
    ("MemberName", "membername"),
    ("Interface", "interface"),
    ("StateInterface", "stateinterface"),
    ("Membership", "membership"),
    ("Penalty", "penalty"),
    ("CallsTaken", "callstaken"),
    ("LastCall", "lastcall"),
    ("LastPause", "lastpause"),
    ("LoginTime", "logintime"),
    ("InCall", "incall"),
    ("Status", "status"),
    ("Paused", "paused"),
    ("PausedReason", "pausedreason"),
    ("Ringinuse", "ringinuse"),
    ("Wrapuptime", "wrapuptime"),
)


@dataclass(slots=True)
class Frame:
    seq: int
    t: float
    dir: str
    data: str
    action: str = ""  # tx: the action name (lower-case)
    action_id: str = ""  # tx: its ActionID; rx: the ActionID header when present
    params: dict[str, str] = field(default_factory=dict)


def parse_frame(text: str) -> dict[str, str]:
    """Lower-case header dict of one frame (first value wins; good enough for matching)."""
    out: dict[str, str] = {}
    for line in text.split(EOL):
        k, sep, v = line.partition(": ")
        if sep and k.lower() not in out:
            out[k.lower()] = v
    return out


@dataclass
class ConnScript:
    """One recorded TCP connection, split into banner, reply groups and the event stream."""

    number: int
    banner: str = ""
    tx: list[Frame] = field(default_factory=list)
    replies: dict[str, list[Frame]] = field(default_factory=dict)  # recorded ActionID → frames
    stream: list[Frame] = field(default_factory=list)
    server_closes: bool = False  # eof not caused by the client's Logoff
    empty: bool = False  # accepted, then reset before any byte (cold restart conn2)

    def login_reply(self) -> list[Frame]:
        for f in self.tx:
            if f.action == "login":
                return self.replies.get(f.action_id, [])
        return []


class Transcript:
    def __init__(self, name: str, conns: dict[int, ConnScript]) -> None:
        self.name = name
        self.conns = conns

    @classmethod
    def load(cls, directory: Path, name: str, *, verify: bool = True) -> Transcript:
        path = Path(directory) / f"{name}.jsonl"
        frames: dict[int, list[Frame]] = {}
        kinds: dict[int, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            conn = o.get("conn", 0)
            if conn == 0:
                continue
            d = o["dir"]
            kinds.setdefault(conn, []).append(d)
            if d not in ("rx", "tx", "eof"):
                continue
            f = Frame(o["seq"], o["t"], d, o.get("data", ""))
            if d == "rx" and o.get("banner"):
                f.dir = "banner"
            if d in ("rx", "tx"):
                h = parse_frame(f.data)
                f.action_id = h.get("actionid", "")
                if d == "tx":
                    f.action = h.get("action", "").lower()
                    f.params = {k: v for k, v in h.items() if k not in ("actionid", "secret")}
            frames.setdefault(conn, []).append(f)
        conns: dict[int, ConnScript] = {}
        for n, fs in frames.items():
            sc = ConnScript(n)
            tx_ids = {f.action_id for f in fs if f.dir == "tx" and f.action_id}
            last_tx = ""
            for f in fs:
                if f.dir == "banner":
                    sc.banner = f.data
                elif f.dir == "tx":
                    sc.tx.append(f)
                    last_tx = f.action
                elif f.dir == "eof":
                    sc.server_closes = last_tx != "logoff"
                elif f.action_id in tx_ids:
                    sc.replies.setdefault(f.action_id, []).append(f)
                else:
                    sc.stream.append(f)
            conns[n] = sc
            if verify:
                _verify_bytes(directory, name, n, fs, len(kinds) > 1 or _multi(directory, name))
        for n, ks in kinds.items():
            if n not in conns or (not conns[n].banner and "eof" in ks):
                sc = conns.setdefault(n, ConnScript(n))
                sc.empty = not sc.banner
        return cls(name, dict(sorted(conns.items())))

    def all_tx(self) -> list[tuple[ConnScript, Frame]]:
        return [(c, f) for c in self.conns.values() for f in c.tx]


def _multi(directory: Path, name: str) -> bool:
    return (Path(directory) / f"{name}.conn1.ami").exists()


def _verify_bytes(directory: Path, name: str, n: int, fs: list[Frame], multi: bool) -> None:
    """The jsonl rx frames must be the exact .ami bytes; refuse a transcript that is not."""
    ami = Path(directory) / (f"{name}.conn{n}.ami" if multi else f"{name}.ami")
    if not ami.exists():
        return
    rx = "".join(f.data for f in fs if f.dir in ("banner", "rx")).encode("utf-8")
    if rx != ami.read_bytes():
        raise ValueError(f"{ami.name}: jsonl rx frames differ from the captured bytes")


def rewrite_action_id(data: str, recorded: str, client: str | None) -> str:
    old = f"ActionID: {recorded}{EOL}"
    if client is None:
        return data.replace(old, "")
    return data.replace(old, f"ActionID: {client}{EOL}")


class ReplayServer:
    """Serve `transcript` to whoever connects. One client at a time, like a bridge would be.

    conns: which recorded connection to play for the 1st, 2nd … accepted TCP connection
      (default: all recorded ones in order; after the last, an idle session that only answers).
    speed: None = as fast as possible; 1.0 = original pacing.
    gate: action names (lower-case) the client must send before events flow (the resync), so
      tests are deterministic; gate_timeout releases it anyway.
    drop_after: {connection index (1-based accept order): events} → hard close after N events.
    resume: after a drop, the next connection continues the same stream (skipping `resume_skip`
      events: what the client missed while it was away).
    down_for: seconds to refuse connections after a server-side close (PBX restarting).
    secret: when set, a Login with another secret gets Asterisk's recorded failure and a close.
    pause_at: {connection index: events} → stop there, set `paused`, wait for `resume_event`.
        A tuple of counts pauses at each; between two pauses both events are cleared again,
        so a test can wait for the next pause and resume it (e.g. before the call, mid-call).
    inject: {stream index: raw bytes} written before that event (garbage for robustness tests).
    chunk: write every frame in pieces of this many bytes (splits UTF-8 characters on purpose).
    library: other transcripts whose recorded replies answer actions this one never saw.

    Like Asterisk, a successful QueuePause is followed by the member's new state in every queue it
    paused (DeviceStateChange of Queue:<queue>_pause_<interface>, then QueueMemberPause), built
    from what this peer last told the client about that member (QueueMember / QueueMember* events).
    """

    def __init__(
        self,
        transcript: Transcript,
        *,
        library: list[Transcript] | None = None,
        conns: list[int] | None = None,
        speed: float | None = None,
        gate: set[str] | frozenset[str] = frozenset(),
        gate_timeout: float = 5.0,
        drop_after: dict[int, int] | None = None,
        resume: bool = False,
        resume_skip: int = 0,
        down_for: float = 0.0,
        secret: str | None = None,
        pause_at: dict[int, int | tuple[int, ...]] | None = None,
        inject: dict[int, bytes] | None = None,
        chunk: int | None = None,
        login_failure: list[Frame] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.transcript = transcript
        self.library = library or []
        self.order = conns or list(transcript.conns)
        self.speed = speed
        self.gate = {g.lower() for g in gate}
        self.gate_timeout = gate_timeout
        self.drop_after = drop_after or {}
        self.resume = resume
        self.resume_skip = resume_skip
        self.down_for = down_for
        self.secret = secret
        self.pause_at = pause_at or {}
        self.inject = inject or {}
        self.chunk = chunk
        self.paused = asyncio.Event()
        self.resume_event = asyncio.Event()
        self.login_failure = login_failure
        self.host = host
        self.port = port
        self.accepted = 0
        self.received: list[dict[str, str]] = []  # every action the client sent (lower-case keys)
        self.events_sent = 0
        self.streams_finished = 0
        self.finished = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._resume_pos: dict[int, int] = {}
        self._used: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # (queue, interface) -> the member's fields as last sent (lower-case keys)
        self.members: dict[tuple[str, str], dict[str, str]] = {}

    # ----- lifecycle -----------------------------------------------------------------------
    async def start(self) -> ReplayServer:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.resume_event.set()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _go_down(self, seconds: float) -> None:
        """Stop listening (connections are refused), then listen again on the same port."""
        if self._server is None or seconds <= 0:
            return
        self._server.close()
        self._server = None
        await asyncio.sleep(seconds)
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )

    # ----- one client ----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self.accepted += 1
        index = self.accepted
        number = self.order[index - 1] if index <= len(self.order) else None
        script = self.transcript.conns.get(number) if number is not None else None
        try:
            if script is not None and script.empty:
                writer.transport.abort()
                return
            await self._session(index, script, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # client gone, or our own close(): the session just ends
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _session(
        self,
        index: int,
        script: ConnScript | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        banner = script.banner if script and script.banner else "Asterisk Call Manager/11.0.0\r\n"
        writer.write(banner.encode("utf-8"))
        await writer.drain()
        gate_seen: set[str] = set()
        gate_open = asyncio.Event()
        if not self.gate:
            gate_open.set()
        logged_in = asyncio.Event()
        closed = asyncio.Event()
        start = self._resume_pos.get(script.number, 0) if (self.resume and script) else 0
        cursor = [0]
        if script and script.stream:
            cursor[0] = script.stream[min(start, len(script.stream) - 1)].seq

        async def read_actions() -> None:
            buf = ""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    closed.set()
                    return
                buf += chunk.decode("utf-8", "replace")
                *frames, buf = buf.split(EOF)
                for text in frames:
                    if not text.strip():
                        continue
                    h = parse_frame(text)
                    self.received.append(h)
                    action = h.get("action", "").lower()
                    if action == "login":
                        ok = await self._login(script, h, writer)
                        if not ok:
                            closed.set()
                            writer.transport.abort()
                            return
                        logged_in.set()
                        continue
                    if action == "logoff":
                        writer.write(
                            _frame(
                                "Response: Goodbye",
                                h.get("actionid"),
                                "Message: Thanks for all the fish.",
                            )
                        )
                        await writer.drain()
                        closed.set()
                        writer.close()
                        return
                    await self._answer(script, h, cursor[0], writer)
                    if action in self.gate:
                        gate_seen.add(action)
                        if gate_seen >= self.gate:
                            gate_open.set()

        reader_task = asyncio.ensure_future(read_actions())
        try:
            waiter = asyncio.ensure_future(logged_in.wait())
            await asyncio.wait({waiter, reader_task}, return_when=asyncio.FIRST_COMPLETED)
            if not logged_in.is_set():
                waiter.cancel()
                return
            if script is None:  # idle PBX: answer actions until the client leaves
                await closed.wait()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate_open.wait(), self.gate_timeout)
            limit = self.drop_after.get(index)
            pause = self.pause_at.get(index)
            pauses = (
                sorted(pause) if isinstance(pause, tuple) else ([] if pause is None else [pause])
            )
            prev_t = None
            for sent, i in enumerate(range(start, len(script.stream)), start=1):
                if closed.is_set():
                    return
                f = script.stream[i]
                if self.speed and prev_t is not None and f.t > prev_t:
                    await asyncio.sleep((f.t - prev_t) / self.speed)
                prev_t = f.t
                if i in self.inject:
                    writer.write(self.inject[i])
                self._observe(f.data)
                data = f.data.encode("utf-8")
                if self.chunk:
                    for j in range(0, len(data), self.chunk):
                        writer.write(data[j : j + self.chunk])
                        await writer.drain()
                else:
                    writer.write(data)
                cursor[0] = f.seq
                self.events_sent += 1
                if sent % 64 == 0:
                    await writer.drain()
                if pauses and sent == pauses[0]:
                    await writer.drain()
                    self.paused.set()
                    await self.resume_event.wait()
                    pauses.pop(0)
                    if pauses and not closed.is_set():  # the next pause waits for a new resume
                        self.paused.clear()
                        self.resume_event.clear()
                if limit is not None and sent >= limit:
                    await writer.drain()
                    self._resume_pos[script.number] = i + 1 + self.resume_skip
                    writer.transport.abort()
                    return
            await writer.drain()
            self.streams_finished += 1
            if script.server_closes:
                writer.transport.abort()
                if self.down_for:
                    await self._go_down(self.down_for)
                return
            self.finished.set()
            await closed.wait()
        finally:
            reader_task.cancel()

    async def _login(
        self, script: ConnScript | None, h: dict[str, str], writer: asyncio.StreamWriter
    ) -> bool:
        client_id = h.get("actionid")
        if self.secret is not None and h.get("secret") != self.secret:
            frames = self.login_failure or [
                Frame(
                    0,
                    0,
                    "rx",
                    "Response: Error\r\nActionID: x\r\nMessage: Authentication failed\r\n\r\n",
                    action_id="x",
                )
            ]
            for f in frames:
                writer.write(rewrite_action_id(f.data, f.action_id, client_id).encode("utf-8"))
            await writer.drain()
            return False
        frames = script.login_reply() if script else []
        if not frames:
            writer.write(_frame("Response: Success", client_id, "Message: Authentication accepted"))
            await writer.drain()
            return True
        ok = True
        for f in frames:
            if "Response: Error" in f.data:
                ok = False
            writer.write(rewrite_action_id(f.data, f.action_id, client_id).encode("utf-8"))
        await writer.drain()
        return ok

    def find_reply(
        self, script: ConnScript | None, h: dict[str, str], cursor: int
    ) -> list[Frame] | None:
        """Best recorded reply: same action, at/after the stream position, same parameters."""
        name = h.get("action", "").lower()
        params = {k: v for k, v in h.items() if k not in ("actionid", "secret")}
        best: tuple | None = None
        best_frames: list[Frame] | None = None
        best_key = ("", 0)
        sources: list[tuple[int, Transcript]] = [(0, self.transcript)]
        sources += [(1, t) for t in self.library]
        for rank, tr in sources:
            for sc, f in tr.all_tx():
                if f.action != name:
                    continue
                frames = sc.replies.get(f.action_id)
                if not frames:
                    continue
                same_conn = rank == 0 and script is not None and sc.number == script.number
                after = f.seq >= cursor if same_conn else (rank == 0)
                exact = f.params == params
                # the library always answers as the idle PBX it recorded first
                unused = rank == 1 or (tr.name, f.seq) not in self._used
                # unused first (a sequence of the same action gets the recorded sequence of
                # answers), then the next one after the stream position, then earliest
                near = -abs(f.seq - cursor) if same_conn and after else -f.seq
                if name in STATE_ACTIONS:  # what exists *now* beats same parameters
                    score = (-rank, unused, after, exact, near)
                else:  # commands: the recorded answers to the same parameters, in order
                    score = (-rank, exact, unused, True, -f.seq)
                if best is None or score > best:
                    best, best_frames, best_key = score, frames, (tr.name, f.seq)
        if best_frames is not None:
            self._used.add(best_key)
        return best_frames

    async def _answer(
        self, script: ConnScript | None, h: dict[str, str], cursor: int, writer
    ) -> None:
        client_id = h.get("actionid")
        frames = self.find_reply(script, h, cursor)
        if frames is None:
            writer.write(
                _frame(
                    "Response: Error",
                    client_id,
                    f"Message: Invalid/unknown command: {h.get('action', '')}. "
                    "Use Action: ListCommands to show available commands.",
                )
            )
        else:
            ok = False
            for f in frames:
                self._observe(f.data)
                ok = ok or f.data.startswith("Response: Success")
                writer.write(rewrite_action_id(f.data, f.action_id, client_id).encode("utf-8"))
            if ok and h.get("action", "").lower() == "queuepause":
                writer.write(self._pause_events(h))
        await writer.drain()

    # ----- queue members ---------------------------------------------------------------------
    def _observe(self, data: str) -> None:
        """Keep the members' fields as the frames sent to the client tell them."""
        if "Event: QueueMember" not in data:
            return
        h = parse_frame(data)
        event = h.get("event", "").lower()
        queue, iface = h.get("queue"), h.get("interface") or h.get("location")
        if not queue or not iface:
            return
        if event == "queuememberremoved":
            self.members.pop((queue, iface), None)
        elif event in MEMBER_EVENTS:
            m = self.members.setdefault((queue, iface), {"ringinuse": "0", "wrapuptime": "0"})
            m.update({k: v for k, v in h.items() if k not in ("event", "privilege", "actionid")})
            m["interface"] = iface
            m["membername"] = h.get("membername") or h.get("name") or m.get("membername", iface)
            m.setdefault("stateinterface", iface)

    def _pause_events(self, h: dict[str, str]) -> bytes:
        """What Asterisk sends after pausing/unpausing `interface` (in `queue`, or in all)."""
        iface = h.get("interface", "")
        queue = h.get("queue") or None
        paused = h.get("paused", "").strip().lower() in ("true", "yes", "1", "on")
        out: list[bytes] = []
        for (q, i), m in self.members.items():
            if i.lower() != iface.lower() or (queue is not None and q != queue):
                continue
            m["paused"] = "1" if paused else "0"
            m["pausedreason"] = h.get("reason", "") if paused else ""
            if paused:
                m["lastpause"] = str(int(time.time()))
            out.append(
                _frame(
                    "Event: DeviceStateChange",
                    None,
                    "Privilege: call,all",
                    f"Device: Queue:{q}_pause_{i}",
                    f"State: {'INUSE' if paused else 'NOT_INUSE'}",
                )
            )
            lines = [f"{name}: {m.get(key, '0')}" for name, key in PAUSE_FIELDS]
            out.append(_frame("Event: QueueMemberPause", None, "Privilege: agent,all", *lines))
        return b"".join(out)


def _frame(first: str, action_id: str | None, *lines: str) -> bytes:
    parts = [first]
    if action_id is not None:
        parts.append(f"ActionID: {action_id}")
    parts.extend(lines)
    return (EOL.join(parts) + EOF).encode("utf-8")


def default_library(directory: Path) -> list[Transcript]:
    """The action captures: idle-PBX answers for CoreShowChannels/QueueStatus/Status, members."""
    return [
        Transcript.load(directory, "actions-status"),
        Transcript.load(directory, "actions-queue-members"),
    ]


def login_failure_frames(directory: Path) -> list[Frame]:
    tr = Transcript.load(directory, "actions-login-failed")
    return tr.conns[1].login_reply()
