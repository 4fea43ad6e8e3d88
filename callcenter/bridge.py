"""The bridge process: AMI connection(s) → live state → Redis, finished calls → DB (via a journal).

One `PbxBridge` per configured Asterisk; `run_bridge(settings)` runs them all until cancelled.
Ingest is synchronous and cheap (parse → handler → dirty marks); Redis publishing happens in
batches every `flush_interval`; call records go to an fsync'ed journal first and reach the DB
from a retry loop, so neither a Redis nor a DB outage loses anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callcenter.ami.actions import AmiActions
from callcenter.ami.buffer import Journal
from callcenter.ami.calls import persist_call
from callcenter.ami.connection import AmiConnection, AmiError
from callcenter.ami.handlers import Dispatcher, fields_of
from callcenter.ami.publish import Publisher, keys
from callcenter.ami.state import LiveState, Reconciled
from callcenter.commands import ready_due, serve_commands
from callcenter.spool_sweep import Sweeper
from config.settings import AsteriskServer, Settings

log = logging.getLogger(__name__)

RESYNC_ACTIONS = ("CoreShowChannels", "QueueStatus", "Status")
READBACK_VARS = (
    "IVR_OPTION",
    "IVR_CATEGORY",
    "IVR_PATH",
    "IVR_QUEUE",
    "IVR_RESULT",
    "MIXMONITOR_FILENAME",
    "MEMBERINTERFACE",
    "MEMBERNAME",
)
POISON_TRIES = 3  # a record refused this often for a non-transient reason is set aside


def transient(e: BaseException) -> bool:
    """Worth retrying the same record later: the database or the disk was away or busy. Anything
    else (a value the schema refuses, a bug) would fail the same way forever."""
    from sqlalchemy import exc

    return isinstance(
        e,
        exc.OperationalError
        | exc.InterfaceError
        | exc.TimeoutError
        | exc.IntegrityError
        | exc.DisconnectionError
        | OSError
        | ConnectionError,
    ) or bool(getattr(e, "connection_invalidated", False))


class PbxBridge:
    def __init__(
        self,
        settings: Settings,
        server: AsteriskServer,
        *,
        redis=None,
        engine=None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.05,
        retry_interval: float = 2.0,
        resync_interval: float = 300.0,
        queue_poll_interval: float = 15.0,
        journal_path: Path | None = None,
        **conn_kw: Any,
    ) -> None:
        self.settings = settings
        self.server = server
        self.clock = clock
        self.state = LiveState(server.name)
        self.dispatcher = Dispatcher(self.state)
        self.redis = redis
        self.engine = engine
        self.publisher = (
            Publisher(redis, settings.redis_namespace, server.name) if redis is not None else None
        )
        self.journal = Journal(
            journal_path or (settings.data_dir / "bridge" / f"calls-{server.name}.jsonl")
        )
        self.conn = AmiConnection(
            server,
            on_event=self.on_event,
            on_raw_event=self.on_raw_event,
            on_connected=self.resync,
            on_lost=self._on_lost,
            **conn_kw,
        )
        self.actions = AmiActions(self.conn)
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.resync_interval = resync_interval
        self.queue_poll_interval = queue_poll_interval
        self.reconciled: list[dict[str, int]] = []
        self.stored = 0
        self.buried = 0  # records the DB refused for good (dead-letter file)
        self._refused: dict[str, int] = {}
        self.store_failures = 0
        self.last_store_error = ""
        self._dirty = asyncio.Event()
        self._calls_ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._journal_scheduled = False
        self._flushing = False
        self._resync_lock = asyncio.Lock()
        self.idle = asyncio.Event()  # set whenever journal and publisher have caught up
        self.sweeper = Sweeper(settings, server) if engine is not None else None
        self.last_sweep: dict[str, Any] = {}
        self.disconnected_since: float | None = None
        self.connected_since: float | None = None
        self.reconcile_counts: dict[str, int] = {}  # CDR reconcile (callcenter/ami/reconcile.py)
        self.outcomes: dict[str, int] = {}  # stored calls by disposition / ticket outcome
        self.agent_log: list[dict[str, Any]] = []  # state changes not yet stored (AgentStateChange)
        self._agent_log_ready = asyncio.Event()

    # ----- ingest (synchronous, hot path) --------------------------------------------------
    def on_raw_event(self, name: str, frame: str) -> None:
        """Plain events (no ActionID) arrive unparsed; see BridgeProtocol's fast path."""
        if self.dispatcher.apply_raw(name, frame, self.clock()):
            if self.state.ended:
                self._take_ended()
            if not self._dirty.is_set():
                self._dirty.set()

    def on_event(self, message) -> None:
        store = message._store
        name = store.get("event")
        if name is None:
            return
        name = name[1]
        if name == "Shutdown":
            log.warning(
                "Asterisk %s is shutting down (restart: %s)",
                self.server.name,
                store.get("restart", ("", "?"))[1],
            )
        self.dispatcher.apply(name, None, self.clock(), message)
        if self.state.ended:
            self._take_ended()
        if not self._dirty.is_set():
            self._dirty.set()

    def _take_ended(self) -> None:
        """Journal finished calls (one fsync per batch) before anything else happens to them.

        Scheduled with call_soon, so every call that ended within one socket read shares one
        write; a crash can only lose what Asterisk reported in the last read, not earlier calls.
        """
        if not self._journal_scheduled:
            self._journal_scheduled = True
            asyncio.get_running_loop().call_soon(self._journal_ended)

    def _journal_ended(self) -> None:
        self._journal_scheduled = False
        ended = self.state.drain_ended()
        if not ended:
            return
        try:
            self.journal.put_many([(c.call_id, c.record()) for c in ended])
        except OSError as e:  # disk full / read-only: keep them in memory and try again
            log.error("call journal write failed (%s); retrying", e)
            self.state.ended[:0] = ended
            asyncio.get_running_loop().call_later(1.0, self._take_ended)
            return
        self._calls_ready.set()

    def ops_snapshot(self) -> dict[str, Any]:
        """What /healthz and /metrics show of this PBX link (read from Redis by the web app)."""
        st = self.conn.stats
        return {
            "connected": self.conn.authenticated,
            "connected_since": self.connected_since,
            "disconnected_since": self.disconnected_since,
            "reconnects": max(0, st.connects - 1),
            "disconnects": st.disconnects,
            "calls_in_progress": len(self.state.calls),
            "ivr_fallbacks": self.state.counters.get("ivr_fallbacks", 0),
            "calls_restored": self.state.counters.get("calls_restored", 0),
            "calls_stored": self.stored,
            "outcomes": dict(self.outcomes),
            "reconcile": dict(self.reconcile_counts),
        }

    def _on_lost(self) -> None:
        """Say so at once: the PBX is unreachable since now and every call shown is unconfirmed."""
        now = self.clock()
        self.state.connection_lost(now)
        self.disconnected_since = now
        self.connected_since = None
        self._dirty.set()

    # ----- resync ---------------------------------------------------------------------------
    async def resync(self, conn: AmiConnection) -> Reconciled:
        """After every (re)connect: ask Asterisk what exists, converge the state to it."""
        async with self._resync_lock:
            return await self._resync(conn)

    async def _resync(self, conn: AmiConnection) -> Reconciled:
        started = self.clock()
        self.state.begin_resync()
        rows: dict[str, list[Any]] = {}
        try:
            for action in RESYNC_ACTIONS:
                resp = await conn.send({"Action": action}, as_list=None)
                rows[action] = resp if isinstance(resp, list) else [resp]
        except AmiError:
            self.state.abort_resync()
            raise
        channels = [
            fields_of(m)
            for action in ("CoreShowChannels", "Status")
            for m in rows[action]
            if m.get("event") in ("CoreShowChannel", "Status")
        ]
        queue_rows = [
            fields_of(m)
            for m in rows["QueueStatus"]
            if m.get("event") in ("QueueParams", "QueueMember", "QueueEntry")
        ]
        rec = self.state.apply_resync(channels, queue_rows, self.clock())
        if self.state.restored_facts and (self.engine is None or self.server.cdr_dir is None):
            # no CDR to reconcile from: what the previous bridge knew still files those calls
            gone = self.state.end_leftover_facts(self.clock())
            if gone:
                log.warning("%d call(s) ended while no bridge ran; filed from saved facts", gone)
        self.disconnected_since = None
        self.connected_since = self.connected_since or self.clock()
        self._journal_ended()
        summary = rec.as_dict()
        self.reconciled.append(summary)
        log.info("AMI resync %s: %s", self.server.name, summary)
        if self.publisher is not None:
            self.publisher.meta["reconciled"] = summary
        self._dirty.set()
        unknown = [c for c in self.state.calls.values() if c.discovered and not c.restored]
        if unknown:  # no saved facts (Redis lost them): ask the channels themselves
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.ensure_future(self.read_back_variables(unknown)))
        if self.engine is not None and self.server.cdr_dir is not None:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.ensure_future(self.reconcile_cdr(until=started)))
        return rec

    async def read_back_variables(self, calls: list[Any]) -> int:
        """Channel variables the dialplan and the AGI set (IVR_*, MIXMONITOR_FILENAME, and
        app_queue's MEMBERINTERFACE/MEMBERNAME once connected), read back with Getvar for calls a
        new bridge found without saved facts. Returns how many values were found."""
        found = 0
        for call in calls:
            legs = [leg for leg in list(call.legs.values()) if not leg.agent]
            for leg in legs[:2]:
                values: dict[str, str] = {}
                for var in READBACK_VARS:
                    try:
                        resp = await self.conn.send(
                            {"Action": "Getvar", "Channel": leg.channel, "Variable": var},
                            timeout=3,
                        )
                    except AmiError:
                        return found
                    get = getattr(resp, "get", None)
                    if get is None or not getattr(resp, "success", False):
                        continue
                    # only an answer about this variable (and channel) counts
                    if (get("Variable") or var) != var or not get("Value"):
                        continue
                    values[var] = get("Value")
                found += len(values)
                if values:
                    self.state.readback(leg.uniqueid, values, self.clock())
        if found:
            self._dirty.set()
        return found

    async def reconcile_cdr(self, until: float | None = None) -> dict[str, int]:
        """File the calls that ended while nobody listened, from the PBX's CDR (reconcile.py)."""
        from callcenter.ami.reconcile import CdrCursor, reconcile
        from callcenter.asterisk_config import cdr_csv_path

        path = cdr_csv_path(self.server)
        if path is None or self.engine is None:
            return {}
        skip = set(self.state.calls) | {cid for cid, _ in self.journal.pending()}
        cursor = CdrCursor(self.journal.path.with_name(f"cdr-{self.server.name}.json"))
        try:
            report = await asyncio.to_thread(
                reconcile,
                self.engine,
                self.settings,
                self.server.name,
                path,
                cursor,
                until=until,
                skip=skip,
                facts=self.state.restored_facts,
            )
        except Exception:  # never let the reconcile take the bridge down
            log.exception("CDR reconcile of %s failed", self.server.name)
            return {}
        counts = report.as_dict()
        for k, v in counts.items():
            self.reconcile_counts[k] = self.reconcile_counts.get(k, 0) + v
        if report.stored or report.failed:
            log.info("CDR reconcile %s: %s", self.server.name, counts)
        if self.publisher is not None:
            self.publisher.meta["cdr_reconcile"] = self.reconcile_counts
        return counts

    # ----- background loops -----------------------------------------------------------------
    async def _publish_loop(self) -> None:
        backoff = self.flush_interval
        while not self._stopping:
            await self._dirty.wait()
            await asyncio.sleep(backoff)
            self._dirty.clear()
            if self.publisher is None:
                continue
            self.publisher.meta["connection"] = {
                "authenticated": self.conn.authenticated,
                "connected": self.conn.authenticated,
                "disconnected_since": self.disconnected_since,
                **{k: v for k, v in vars(self.conn.stats).items() if k != "delays"},
                **self.dispatcher.counts(),
            }
            self.publisher.meta["pbx"] = self.state.pbx
            self.publisher.meta["ops"] = self.ops_snapshot()
            self._note_agent_states()
            self._flushing = True
            try:
                ok = await self.publisher.flush(self.state, self.clock())
            except Exception:  # a bug in one snapshot must not stop publishing for good
                log.exception("live-state publish failed")
                ok = False
            finally:
                self._flushing = False
            if ok:
                backoff = self.flush_interval
            else:
                backoff = min(5.0, backoff * 2 if backoff < 0.5 else backoff * 1.5)
                self._dirty.set()
            self._update_idle()

    def _note_agent_states(self) -> None:
        """Agent state changes since the last publish → the stored state log (wallboard figures)."""
        changes = self.state.note_agent_states(self.clock())
        if changes and self.engine is not None:
            self.agent_log.extend(changes)
            self._agent_log_ready.set()

    async def _agent_log_loop(self) -> None:
        """Store the agent state log; on a DB error keep the rows and try again (none lost)."""
        from callcenter.figures import store_state_changes

        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._agent_log_ready.wait(), self.retry_interval)
            self._agent_log_ready.clear()
            if not self.agent_log or self.engine is None:
                continue
            batch = self.agent_log[:500]
            try:
                await asyncio.to_thread(store_state_changes, self.engine, self.server.name, batch)
            except Exception as e:
                log.warning("agent state log not stored yet (%s); will retry", type(e).__name__)
                continue
            del self.agent_log[: len(batch)]
            if self.agent_log:
                self._agent_log_ready.set()
            self._update_idle()

    async def _wrapup_loop(self) -> None:
        """Wrap-up ends by the clock, not by an event: republish agents whose wrap-up ran out,
        and make ready the agents whose console wrap-up time is up (commands.ready_due)."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self.state.wrapups_over(self.clock()):
                self._dirty.set()
            if self.redis is None or not self.conn.connected_event.is_set():
                continue  # PBX away: the schedules wait in Redis for the link
            try:
                await ready_due(
                    self.redis,
                    self.settings.redis_namespace,
                    self.server.name,
                    self.actions,
                    self._paused_reason,
                    time.time(),
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: the next second tries again
                log.warning("auto-ready check failed (%s)", type(e).__name__)

    def _paused_reason(self, interface: str) -> str | None:
        """The reason the agent is paused for, as this bridge last saw it (None: not paused, or
        an agent it does not know)."""
        agent = self.state.agents.get(interface)
        if agent is None:
            return None
        return next((m.reason for m in agent.queues.values() if m.paused), None)

    async def _load_prior_states(self) -> None:
        """What the previous run published of each agent, so its state clock and log carry on."""
        try:
            raw = await self.redis.hgetall(
                keys(self.settings.redis_namespace, self.server.name)["agents"]
            )
        except Exception:  # Redis away: the states simply start now
            return
        for v in raw.values():
            try:
                a = json.loads(v)
                since = float(a.get("state_since") or 0)
            except (ValueError, TypeError, AttributeError):
                continue
            if since:
                reason = a.get("pause_reason") or "" if a.get("state") == "paused" else ""
                self.state.prior_states[str(a.get("interface"))] = (
                    str(a.get("state")),
                    reason,
                    since,
                )

    async def _store_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._calls_ready.wait(), self.retry_interval)
            self._calls_ready.clear()
            if self.engine is None:
                continue
            for call_id, rec in self.journal.pending(limit=200):
                if self.publisher is not None and not rec.get("ticket_number"):
                    linked = await self.publisher.take_ticket_link(call_id)
                    if linked:
                        rec["ticket_number"] = linked
                try:
                    await asyncio.to_thread(
                        persist_call, self.engine, self.settings, rec, self.server.name
                    )
                except Exception as e:
                    self.store_failures += 1
                    self.last_store_error = f"{type(e).__name__}: {e}"[:300]
                    if transient(e):  # DB down, lock timeout …: keep it journaled, retry later
                        log.warning(
                            "call %s not stored yet (%s); will retry", call_id, type(e).__name__
                        )
                        break
                    tries = self._refused[call_id] = self._refused.get(call_id, 0) + 1
                    if tries < POISON_TRIES:
                        log.warning(
                            "call %s refused (%s); try %d", call_id, type(e).__name__, tries
                        )
                        continue
                    log.error(
                        "call %s refused %d times (%s); moved to %s",
                        call_id,
                        tries,
                        type(e).__name__,
                        self.journal.dead_path,
                    )
                    self.journal.bury(call_id, rec, self.last_store_error)
                    self._refused.pop(call_id, None)
                    self.buried += 1
                    continue
                self.journal.done([call_id])
                self._refused.pop(call_id, None)
                self.stored += 1
                outcome = str(rec.get("disposition") or "unknown")
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self._update_idle()

    async def _resync_loop(self) -> None:
        """Also resync now and then while connected: a lost event must not linger for hours."""
        while not self._stopping:
            await asyncio.sleep(self.resync_interval)
            if self.conn.authenticated:
                try:
                    await self.resync(self.conn)
                except AmiError as e:
                    log.warning("periodic AMI resync failed: %s", e)

    async def poll_queue_summary(self) -> int:
        """Asterisk's hold/talk averages per queue (QueueSummary), for the wallboard."""
        resp = await self.conn.send({"Action": "QueueSummary"}, as_list=None)
        rows = [fields_of(m) for m in (resp if isinstance(resp, list) else [resp])]
        n = self.state.queue_summary([r for r in rows if r.get("event") == "QueueSummary"])
        if n:
            self._dirty.set()
        return n

    async def _queue_poll_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.queue_poll_interval)
            if self.conn.authenticated:
                try:
                    await self.poll_queue_summary()
                except AmiError as e:
                    log.debug("QueueSummary poll failed: %s", e)

    async def _sweep_loop(self) -> None:
        """Recordings the call-end import could not take yet, voicemail tickets, retention."""
        assert self.sweeper is not None
        while not self._stopping:
            if self.engine is None:  # no database (yet): nothing to file recordings against
                await asyncio.sleep(self.sweeper.policy.sweep_interval_s)
                continue
            try:
                report = await asyncio.to_thread(self.sweeper.run_once, self.engine)
                self.last_sweep = report.as_dict()
            except Exception as e:  # DB down …: the next sweep tries again
                log.warning("recordings sweep failed (%s: %s)", type(e).__name__, e)
            await asyncio.sleep(self.sweeper.policy.sweep_interval_s)

    def _update_idle(self) -> None:
        clean = not (
            self._flushing
            or self.state.ended
            or self.state.dirty_calls
            or self.state.dirty_queues
            or self.state.dirty_agents
            or self.state.removed_calls
            or self._dirty.is_set()
        )
        if clean and (
            self.engine is None or (self.journal.pending_count == 0 and not self.agent_log)
        ):
            self.idle.set()
        else:
            self.idle.clear()

    async def start(self) -> None:
        if self.redis is not None:  # what a previous bridge knew of calls still up (facts.py)
            from callcenter.ami.facts import load

            self.state.restored_facts = await load(
                self.redis, self.settings.redis_namespace, self.server.name
            )
            await self._load_prior_states()
        self._tasks = [
            asyncio.ensure_future(self.conn.run()),
            asyncio.ensure_future(self._publish_loop()),
            asyncio.ensure_future(self._store_loop()),
            asyncio.ensure_future(self._resync_loop()),
            asyncio.ensure_future(self._queue_poll_loop()),
            asyncio.ensure_future(self._wrapup_loop()),
            asyncio.ensure_future(self._agent_log_loop()),
        ]
        if self.sweeper is not None and self.server.spool_dir:
            self._tasks.append(asyncio.ensure_future(self._sweep_loop()))
        if self.redis is not None:  # queue log-in / pause requests from the web (commands.py)
            self._tasks.append(
                asyncio.ensure_future(
                    serve_commands(
                        self.redis,
                        self.settings.redis_namespace,
                        self.server.name,
                        self.actions,
                        running=lambda: not self._stopping,
                    )
                )
            )
        self._calls_ready.set()  # records journaled by a previous run

    async def stop(self) -> None:
        self._stopping = True
        await self.conn.stop()
        self._dirty.set()
        self._calls_ready.set()
        self._agent_log_ready.set()
        for t in self._tasks:
            t.cancel()
        # py3.11 wait_for may swallow a cancel that races a completion; the flag ends the loops
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(t), 5)
        self._tasks = []

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until everything seen so far is published and stored (tests, demo, shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self._update_idle()
            if self.idle.is_set() and not self._dirty.is_set():
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("bridge did not settle")
            self._calls_ready.set()
            if self.agent_log:
                self._agent_log_ready.set()
            await asyncio.sleep(0.02)


async def run_bridge(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run one PbxBridge per settings.asterisk entry until `stop` is set (or cancelled)."""
    import redis.asyncio as aioredis

    from config.database import make_engine
    from config.redis import redis_url

    engine = make_engine(settings.resolved_database_url)
    r = aioredis.from_url(redis_url(settings))
    bridges = [PbxBridge(settings, s, redis=r, engine=engine) for s in settings.asterisk]
    for b in bridges:
        await b.start()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        for b in bridges:
            with contextlib.suppress(Exception):
                await b.settle(timeout=5)
            await b.stop()
        await r.aclose()
        engine.dispose()


async def run_simulation(
    settings: Settings,
    fixtures_dir: Path,
    scenarios: list[str],
    *,
    speed: float | None = None,
    redis=None,
    engine=None,
    on_progress: Callable[[str, PbxBridge], None] | None = None,
) -> list[dict[str, Any]]:
    """SIMULATION: replay captured Asterisk transcripts through the real bridge, one by one.

    The replaying peer (callcenter.ami.replay) stands in for Asterisk on a loopback port; the
    bridge, live state, Redis publishing, call records and tickets are the real ones. Used by
    `callcenter bridge simulate` and as the groundwork of `callcenter demo`.
    Returns, per scenario, the connection and ingest counters.
    """
    from callcenter.ami.replay import ReplayServer, Transcript, default_library

    library = default_library(fixtures_dir)
    out: list[dict[str, Any]] = []
    for name in scenarios:
        tr = Transcript.load(fixtures_dir, name)
        server = await ReplayServer(
            tr,
            library=library,
            speed=speed,
            gate=frozenset(a.lower() for a in RESYNC_ACTIONS),
        ).start()
        configured = next((a for a in settings.asterisk if a.name == "simulated-pbx"), None)
        cfg = AsteriskServer(
            name="simulated-pbx",
            host="127.0.0.1",
            port=server.port,
            secret="simulation",
            spool_dir=configured.spool_dir if configured else None,  # the demo's copy of pbx-side/
        )
        bridge = PbxBridge(
            settings, cfg, redis=redis, engine=engine, backoff_base=0.05, backoff_max=1.0
        )
        await bridge.start()
        try:
            if on_progress is not None:
                on_progress(name, bridge)
            await server.finished.wait()
            await bridge.conn.send({"Action": "Ping"})  # answered after every event sent
            await bridge.settle(timeout=30)
            out.append(
                {
                    "scenario": name,
                    **bridge.dispatcher.counts(),
                    "calls_stored": bridge.stored,
                    "reconciled": bridge.reconciled,
                }
            )
        finally:
            await bridge.stop()
            await server.close()
    return out
