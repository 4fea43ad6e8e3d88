"""Live call/queue/agent state of one Asterisk, driven by AMI events. No I/O, no clock of its own.

Why a plain state machine: it must be testable and benchmarkable alone (feed it dicts, read the
result), and fast enough that ingest is bounded by parsing, not by bookkeeping. Every mutator takes
`now` (epoch seconds) from the caller; durations that Asterisk reports (HoldTime, TalkTime) are
taken from the events, so replays at any speed give the same figures.

Identity: a *call* is everything sharing one Linkedid (so a blind transfer stays one call); a *leg*
is one channel (Uniqueid). A call ends when its last leg hangs up; ended calls are queued in
`ended` for the bridge to turn into CallRecords.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# IVR menu digits of the hotline (config/ivr.yaml pairs with these) → ticket category codes.
CHOICE_CATEGORY = {"1": "enterprise", "2": "government", "3": "complaint", "4": "complaint"}
NAME_CATEGORY = {
    "企业服务": "enterprise",
    "政务服务": "government",
    "投诉咨询": "complaint",
    "政策查询": "complaint",
    "enterprise": "enterprise",
    "government": "government",
    "complaint": "complaint",
    "policy": "complaint",
}
# QueueMember Status = device state: 2 in use, 3 busy, 6 ringing, 7 ring-in-use, 8 on hold.
BUSY_DEVICE = frozenset({"2", "3", "6", "7", "8"})
GONE_DEVICE = frozenset({"4", "5"})  # invalid / unavailable → logged out
UNKNOWN = frozenset({"", "<unknown>", "<Unknown>", "anonymous", "Anonymous"})
MAX_CALL_CHANNELS = 32  # a runaway transfer loop must not grow a record without bound


@dataclass(slots=True)
class Leg:
    uniqueid: str
    channel: str
    linkedid: str
    state: str = ""
    caller_num: str = ""
    caller_name: str = ""
    agent: bool = False
    hold: bool = False
    bridge: str = ""
    app: str = ""


@dataclass(slots=True)
class Call:
    call_id: str
    started: float
    caller_num: str = ""
    caller_name: str = ""
    legs: dict[str, Leg] = field(default_factory=dict)
    status: str = "ivr"  # ivr | queued | ringing | talking | hold | voicemail | ended
    ivr_choices: list[str] = field(default_factory=list)
    ivr_names: list[str] = field(default_factory=list)
    ivr_path: str = ""
    ivr_category: str = ""
    queue: str = ""
    queues: list[str] = field(default_factory=list)
    queue_uid: str = ""  # the channel that waits in the queue (the caller's leg)
    joined_at: float | None = None
    position: int = 0
    wait_seconds: int | None = None
    answered: float | None = None
    agent: str = ""
    agent_name: str = ""
    agents: list[str] = field(default_factory=list)
    talk_seconds: int = 0
    hold_seconds: float = 0.0
    hold_since: float | None = None
    recordings: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)  # every leg's name (voicemail callerchan)
    abandoned: bool = False
    queued_abandon: bool = False
    voicemail: bool = False
    voicemail_box: str = ""
    transferred: bool = False
    ticket_number: str = ""
    hangup_cause: str = ""
    ended: float | None = None
    ended_by: str = "hangup"  # hangup | resync
    discovered: bool = False  # first seen by a resync, not from its start
    restored: bool = False  # facts given back from a previous bridge run (callcenter/ami/facts.py)
    unconfirmed: bool = False  # the AMI link dropped: this call may have ended meanwhile
    ivr_fallback: bool = False  # the dialplan's agi-fallback ran (FastAGI unreachable)
    answer_estimated: bool = False  # answered before we looked: `answered` is an upper bound
    end_unknown: bool = False  # ended while no bridge ran and no CDR says when

    @property
    def category(self) -> str | None:
        if self.ivr_category:
            return NAME_CATEGORY.get(self.ivr_category, self.ivr_category)
        for choice in reversed(self.ivr_choices):
            if choice in CHOICE_CATEGORY:
                return CHOICE_CATEGORY[choice]
        for name in reversed(self.ivr_names):
            if name in NAME_CATEGORY:
                return NAME_CATEGORY[name]
        return None

    @property
    def path(self) -> str:
        return self.ivr_path or ">".join(self.ivr_choices)

    @property
    def disposition(self) -> str:
        if self.voicemail:
            return "voicemail"
        if self.transferred:
            return "transferred"
        if self.answered is not None:
            return "answered"
        return "abandoned"

    def live_dict(self, now: float) -> dict[str, Any]:
        """What the wallboard / agent console shows for a call in progress."""
        wait = self.wait_seconds
        if wait is None and self.joined_at is not None:
            wait = int(now - self.joined_at)
        return {
            "call_id": self.call_id,
            "caller": self.caller_num,
            "caller_name": self.caller_name,
            "status": self.status,
            "started": self.started,
            "ivr_path": self.path,
            "category": self.category,
            "queue": self.queue,
            "position": self.position,
            "wait_seconds": wait,
            "answered": self.answered,
            "agent": self.agent,
            "agent_name": self.agent_name,
            "hold": self.hold_since is not None,
            "recording": self.recordings[-1] if self.recordings else "",
            "ticket_number": self.ticket_number,
            "legs": [leg.channel for leg in self.legs.values()],
            "joined_at": self.joined_at,
            "unconfirmed": self.unconfirmed,
        }

    def record(self) -> dict[str, Any]:
        """The finished call, as plain JSON-able data (journaled before it reaches the DB)."""
        return {
            "call_id": self.call_id,
            "caller": self.caller_num,
            "caller_name": self.caller_name,
            "started": self.started,
            "answered": self.answered,
            "ended": self.ended,
            "ivr_path": self.path,
            "ivr_choices": list(self.ivr_choices),
            "category": self.category,
            "queue": self.queue,
            "queues": list(self.queues),
            "wait_seconds": self.wait_seconds,
            "agent": self.agent,
            "agent_name": self.agent_name,
            "agents": list(self.agents),
            "talk_seconds": self.talk_seconds,
            "hold_seconds": round(self.hold_seconds, 1),
            "disposition": self.disposition,
            "queued_abandon": self.queued_abandon,
            "voicemail_box": self.voicemail_box,
            "recording": self.recordings[0] if self.recordings else "",
            "recordings": list(self.recordings),
            "channels": list(self.channels),
            "ticket_number": self.ticket_number,
            "hangup_cause": self.hangup_cause,
            "ended_by": self.ended_by,
            "discovered": self.discovered,
            "restored": self.restored,
            "ivr_fallback": self.ivr_fallback,
            "answer_estimated": self.answer_estimated,
            "unknown": "；".join(
                x
                for x, on in (
                    (
                        "准确接通时间（系统重启期间接通，按重新发现该通话的时间计）",
                        self.answer_estimated,
                    ),
                    ("结束时间（通话在系统重启期间结束，按重启后的时间计）", self.end_unknown),
                )
                if on
            ),
            # reached the after-hours mailbox but left no message: still owed the promised callback
            "vm_no_message": bool(self.voicemail_box) and not self.voicemail,
        }


@dataclass(slots=True)
class Membership:
    queue: str
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    status: str = "1"
    in_call: bool = False
    calls_taken: int = 0
    wrapup: int = 0


@dataclass(slots=True)
class Agent:
    interface: str
    name: str = ""
    queues: dict[str, Membership] = field(default_factory=dict)
    call_id: str = ""
    ringing: bool = False
    wrapup_until: float = 0.0
    ringing_call: str = ""  # the call ringing this agent (AgentCalled): the console's screen-pop
    shown: tuple[str, str] = ("", "")  # (state, pause reason) last noted (note_agent_states)
    state_since: float = 0.0  # when `shown` began: the wallboard's time in state

    def state(self, now: float) -> str:
        if not self.queues or all(m.status in GONE_DEVICE for m in self.queues.values()):
            return "logged-out"
        if self.call_id or any(m.status in BUSY_DEVICE or m.in_call for m in self.queues.values()):
            return "on-call"
        if now < self.wrapup_until:
            return "wrap-up"
        # paused only where paused: an agent paused in one queue still takes the others' calls
        if all(m.paused for m in self.queues.values()):
            return "paused"
        return "ready"

    def live_dict(self, now: float) -> dict[str, Any]:
        paused = [m for m in self.queues.values() if m.paused]
        state = self.state(now)
        base = "ready" if state == "paused" else state
        return {
            "interface": self.interface,
            "name": self.name,
            "state": state,
            "pause_reason": paused[0].reason if paused else "",
            "paused_queues": sorted(m.queue for m in paused),
            "call_id": self.call_id,
            "ringing": self.ringing,
            "ringing_call": self.ringing_call if self.ringing else "",
            "queues": {
                q: {
                    "state": "paused" if m.paused and base == "ready" else base,
                    "paused": m.paused,
                    "reason": m.reason,
                    "penalty": m.penalty,
                    "status": m.status,
                }
                for q, m in self.queues.items()
            },
            "calls_taken": max((m.calls_taken for m in self.queues.values()), default=0),
            "state_since": self.state_since or None,
        }

    def shown_state(self, now: float) -> tuple[str, str]:
        """(state, pause reason): what the wallboard shows and the state log records."""
        state = self.state(now)
        if state != "paused":
            return state, ""
        return state, next((m.reason for m in self.queues.values() if m.paused), "")


@dataclass(slots=True)
class Queue:
    name: str
    waiting: dict[str, float] = field(default_factory=dict)  # caller uniqueid → joined at
    strategy: str = ""
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0
    longest_hold: int = 0
    logged_in: int | None = None
    available: int | None = None

    def live_dict(self, state: LiveState, now: float) -> dict[str, Any]:
        callers: list[dict[str, Any]] = []
        for uid, joined in self.waiting.items():
            leg_call = state.call_of(uid)
            callers.append(
                {
                    "uniqueid": uid,
                    "call_id": leg_call.call_id if leg_call else "",
                    "caller": leg_call.caller_num if leg_call else "",
                    "position": len(callers) + 1,
                    "joined_at": joined,
                    "wait_seconds": int(now - joined),
                }
            )
        members = [a.interface for a in state.agents.values() if self.name in a.queues]
        return {
            "name": self.name,
            "waiting": len(self.waiting),
            "callers": callers,
            "members": members,
            "strategy": self.strategy,
            "completed": self.completed,
            "abandoned": self.abandoned,
            "holdtime": self.holdtime,
            "talktime": self.talktime,
            "longest_hold": self.longest_hold,
            "logged_in": self.logged_in,
            "available": self.available,
        }


@dataclass(slots=True)
class Reconciled:
    """What one resync changed; logged and counted so drift is visible."""

    channels_added: int = 0
    channels_removed: int = 0
    calls_ended: int = 0
    queue_entries_added: int = 0
    queue_entries_removed: int = 0
    members_added: int = 0
    members_removed: int = 0
    members_updated: int = 0

    @property
    def total(self) -> int:
        return sum(
            (
                self.channels_added,
                self.channels_removed,
                self.queue_entries_added,
                self.queue_entries_removed,
                self.members_added,
                self.members_removed,
                self.members_updated,
            )
        )

    def as_dict(self) -> dict[str, int]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["total"] = self.total
        return d


class LiveState:
    """Calls, queues and agents of one PBX. Mutated only through the methods below."""

    def __init__(self, server: str = "pbx1") -> None:
        self.server = server
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}  # uniqueid → leg (live only)
        self.by_channel: dict[str, str] = {}  # channel name → uniqueid
        self.queues: dict[str, Queue] = {}
        self.agents: dict[str, Agent] = {}
        self.ended: list[Call] = []
        self.dirty_calls: set[str] = set()
        self.removed_calls: set[str] = set()
        self.dirty_queues: set[str] = set()
        self.dirty_agents: set[str] = set()
        self.counters: dict[str, int] = {"events": 0, "calls_ended": 0}
        self.pbx: dict[str, Any] = {}  # last FullyBooted: uptime 0 = Asterisk just restarted
        self.restored_facts: dict[str, dict[str, Any]] = {}  # call_id → facts (facts.py)
        self.disconnected_at: float | None = None  # AMI link lost at (None: connected)
        # interface → (state, reason, since) the previous bridge run published (note_agent_states)
        self.prior_states: dict[str, tuple[str, str, float]] = {}
        self._touched: set[str] | None = None  # uniqueids touched by events during a resync
        self._gone: set[str] | None = None
        self._members_touched: set[tuple[str, str]] | None = None

    # ----- lookups -------------------------------------------------------------------------
    def call_of(self, uniqueid: str) -> Call | None:
        leg = self.legs.get(uniqueid)
        return self.calls.get(leg.linkedid) if leg else None

    def _queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = Queue(name)
        self.dirty_queues.add(name)
        return q

    def _agent(self, interface: str, name: str = "") -> Agent:
        a = self.agents.get(interface)
        if a is None:
            a = self.agents[interface] = Agent(interface, name)
        elif name and not a.name:
            a.name = name
        self.dirty_agents.add(interface)
        return a

    def _touch(self, call: Call) -> None:
        self.dirty_calls.add(call.call_id)

    # ----- channels ------------------------------------------------------------------------
    def leg(
        self,
        uniqueid: str,
        linkedid: str,
        channel: str,
        now: float,
        state: str = "",
        caller_num: str = "",
        caller_name: str = "",
    ) -> Leg:
        """Create or refresh a leg (Newchannel, Newstate, NewCallerid, any channel event)."""
        if self._touched is not None:
            self._touched.add(uniqueid)
        leg = self.legs.get(uniqueid)
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid, now)
            facts = self.restored_facts.pop(linkedid, None) if self.restored_facts else None
            if facts:
                from callcenter.ami.facts import restore

                restore(call, facts)
                self.counters["calls_restored"] = self.counters.get("calls_restored", 0) + 1
        if leg is None:
            leg = Leg(uniqueid, channel, linkedid)
            leg.agent = self._is_agent_channel(channel)
            self.legs[uniqueid] = leg
            self.by_channel[channel] = uniqueid
            call.legs[uniqueid] = leg
            if len(call.channels) < MAX_CALL_CHANNELS:
                call.channels.append(channel)
        elif leg.channel != channel:  # masquerade/rename
            self.by_channel.pop(leg.channel, None)
            self.by_channel[channel] = uniqueid
            leg.channel = channel
            if channel not in call.channels and len(call.channels) < MAX_CALL_CHANNELS:
                call.channels.append(channel)
        if state:
            leg.state = state
        if caller_num and caller_num not in UNKNOWN:
            leg.caller_num = caller_num
            if caller_name and caller_name not in UNKNOWN:
                leg.caller_name = caller_name
            if not leg.agent and not call.caller_num:
                call.caller_num = caller_num
                call.caller_name = leg.caller_name
        self.dirty_calls.add(linkedid)
        return leg

    def _is_agent_channel(self, channel: str) -> bool:
        base = channel.rsplit("-", 1)[0] if "-" in channel else channel
        return base in self.agents

    def hangup(self, uniqueid: str, now: float, cause: str = "") -> Call | None:
        """A channel is gone. Returns the call when this was its last leg (the call ended)."""
        if self._gone is not None:
            self._gone.add(uniqueid)
        leg = self.legs.pop(uniqueid, None)
        if leg is None:
            return None
        if self.by_channel.get(leg.channel) == uniqueid:
            del self.by_channel[leg.channel]
        call = self.calls.get(leg.linkedid)
        if call is None:
            return None
        call.legs.pop(uniqueid, None)
        if uniqueid == call.queue_uid or (not leg.agent and not call.hangup_cause):
            call.hangup_cause = cause or call.hangup_cause
        self._leave_queues(uniqueid)
        if leg.hold:
            self._unhold(call, leg, now)
        if call.legs:
            self._touch(call)
            return None
        return self._end(call, now)

    def _end(self, call: Call, now: float, by: str = "hangup") -> Call:
        call.ended = now
        call.ended_by = by
        call.status = "ended"
        if call.hold_since is not None:
            call.hold_seconds += now - call.hold_since
            call.hold_since = None
        for uid in list(call.legs):
            self.legs.pop(uid, None)
        call.legs.clear()
        for agent in self.agents.values():
            if agent.call_id == call.call_id:
                agent.call_id = ""
                agent.ringing = False
                self.dirty_agents.add(agent.interface)
        del self.calls[call.call_id]
        self.dirty_calls.discard(call.call_id)
        self.removed_calls.add(call.call_id)
        self.ended.append(call)
        self.counters["calls_ended"] += 1
        return call

    def _leave_queues(self, uniqueid: str) -> None:
        for q in self.queues.values():
            if q.waiting.pop(uniqueid, None) is not None:
                self.dirty_queues.add(q.name)
                self._renumber(q)

    def _renumber(self, q: Queue) -> None:
        """Asterisk moves everyone behind a leaving caller up one place: so do we (join order)."""
        for pos, uid in enumerate(q.waiting, 1):
            call = self.call_of(uid)
            if call is not None and call.queue_uid == uid and call.position != pos:
                call.position = pos
                self._touch(call)

    def bridge_enter(self, uniqueid: str, bridge: str) -> None:
        leg = self.legs.get(uniqueid)
        if leg:
            leg.bridge = bridge

    def bridge_leave(self, uniqueid: str) -> None:
        leg = self.legs.get(uniqueid)
        if leg:
            leg.bridge = ""

    def hold(self, uniqueid: str, now: float, on: bool) -> None:
        leg = self.legs.get(uniqueid)
        if leg is None:
            return
        call = self.calls.get(leg.linkedid)
        if call is None:
            return
        if on and not leg.hold:
            leg.hold = True
            if call.hold_since is None:
                call.hold_since = now
            call.status = "hold"
        elif not on and leg.hold:
            self._unhold(call, leg, now)
        self._touch(call)

    def _unhold(self, call: Call, leg: Leg, now: float) -> None:
        leg.hold = False
        if call.hold_since is not None and not any(x.hold for x in call.legs.values()):
            call.hold_seconds += now - call.hold_since
            call.hold_since = None
            if call.status == "hold":
                call.status = "talking" if call.agent else "ivr"

    # ----- variables / IVR -----------------------------------------------------------------
    def varset(self, uniqueid: str, variable: str, value: str) -> None:
        leg = self.legs.get(uniqueid)
        if leg is None:
            return
        call = self.calls.get(leg.linkedid)
        if call is None:
            return
        if variable == "IVR_OPTION":  # this project's FastAGI menu (ivr/agi.py)
            if value and (not call.ivr_choices or call.ivr_choices[-1] != value):
                call.ivr_choices.append(value)
        elif variable == "IVR_RESULT":
            if value == "voicemail":
                call.status = "voicemail"
        elif variable == "IVR_CHOICE":  # the capture PBX's dialplan menu
            if value == "afterhours":
                call.status = "voicemail"
            if value:
                call.ivr_choices.append(value)
        elif variable == "IVR_CHOICE_NAME":
            if value:
                call.ivr_names.append(value)
        elif variable == "IVR_PATH":
            call.ivr_path = value
        elif variable == "IVR_CATEGORY":
            call.ivr_category = value
        elif variable == "MIXMONITOR_FILENAME":
            if value and value not in call.recordings:
                call.recordings.append(value)
        elif variable == "TICKET_NUMBER":
            call.ticket_number = value
        elif variable == "VMSTATUS":
            if value == "SUCCESS":
                call.voicemail = True
        else:
            return
        self._touch(call)

    def after_hours(self, uniqueid: str, mailbox: str) -> None:
        call = self.call_of(uniqueid)
        if call:
            call.status = "voicemail"
            call.voicemail_box = mailbox
            self._touch(call)

    def readback(self, uniqueid: str, values: dict[str, str], now: float) -> None:
        """Channel variables read back (Getvar) for a call rediscovered without saved facts."""
        call = self.call_of(uniqueid)
        if call is None:
            return
        for var in ("IVR_OPTION", "IVR_CATEGORY", "IVR_PATH", "MIXMONITOR_FILENAME", "IVR_RESULT"):
            if values.get(var):
                self.varset(uniqueid, var, values[var])
        if values.get("IVR_QUEUE") and not call.queue:
            call.queue = values["IVR_QUEUE"]
            call.queues.append(call.queue)
        if values.get("MEMBERINTERFACE") and not call.agent:
            # connected to an agent before we looked; the answer time is not known exactly:
            # the discovery time bounds it (talk time is then a lower bound)
            call.agent = values["MEMBERINTERFACE"]
            call.agent_name = values.get("MEMBERNAME", "")
            call.agents.append(call.agent)
            if call.answered is None:
                call.answered = now
                call.answer_estimated = True
            call.status = "talking"
        self._touch(call)

    def call_end_summary(self, uniqueid: str, f: dict[str, Any]) -> None:
        """UserEvent DxeCallEnd (hangup handler): fills what the events missed, and tells when
        the dialplan's fallback ran because the FastAGI server was unreachable."""
        call = self.call_of(uniqueid)
        if call is None:
            return
        result = f.get("ivrresult", "")
        if result == "fallback" and not call.ivr_fallback:
            call.ivr_fallback = True
            self.counters["ivr_fallbacks"] = self.counters.get("ivr_fallbacks", 0) + 1
            log.warning("call %s: IVR unreachable, dialplan fallback used", call.call_id)
        if f.get("ivrpath") and not call.ivr_path:
            call.ivr_path = f["ivrpath"]
        if f.get("ivrcategory") and not call.ivr_category:
            call.ivr_category = f["ivrcategory"]
        rec = f.get("recording", "")
        if rec and isinstance(rec, str) and rec not in call.recordings:
            call.recordings.append(rec)
        if f.get("vmstatus") == "SUCCESS" and call.voicemail_box:
            call.voicemail = True
        self._touch(call)

    # ----- queues --------------------------------------------------------------------------
    def queue_join(
        self, uniqueid: str, queue: str, now: float, position: int = 0, wait: int = 0
    ) -> None:
        q = self._queue(queue)
        q.waiting[uniqueid] = now - wait
        call = self.call_of(uniqueid)
        if call is None:
            return
        call.queue = call.queue or queue
        if not call.queues or call.queues[-1] != queue:
            call.queues.append(queue)
        call.queue_uid = uniqueid
        call.joined_at = now - wait
        call.position = position
        call.status = "queued"
        leg = self.legs.get(uniqueid)
        if leg is not None and leg.caller_num:
            call.caller_num, call.caller_name = leg.caller_num, leg.caller_name or call.caller_name
        self._touch(call)

    def queue_leave(self, uniqueid: str, queue: str) -> None:
        q = self._queue(queue)
        q.waiting.pop(uniqueid, None)
        self._renumber(q)
        call = self.call_of(uniqueid)
        if call:
            call.position = 0
            self._touch(call)

    def queue_abandon(self, uniqueid: str, queue: str, holdtime: int) -> None:
        q = self._queue(queue)
        q.waiting.pop(uniqueid, None)
        q.abandoned += 1
        self._renumber(q)
        call = self.call_of(uniqueid)
        if call:
            call.queued_abandon = True
            call.abandoned = True
            call.wait_seconds = holdtime
            self._touch(call)

    def agent_called(self, uniqueid: str, interface: str, name: str, dest_uid: str) -> None:
        agent = self._agent(interface, name)
        agent.ringing = True
        dest = self.legs.get(dest_uid)
        call = self.call_of(uniqueid)
        if dest is not None:
            dest.agent = True
            call = self.calls.get(dest.linkedid) or call
            if call and call.status == "queued":
                call.status = "ringing"
                self._touch(call)
        agent.ringing_call = call.call_id if call is not None else ""

    def agent_ring_no_answer(self, uniqueid: str, interface: str) -> None:
        agent = self._agent(interface)
        agent.ringing = False
        agent.ringing_call = ""
        call = self.call_of(uniqueid)
        if call and call.status == "ringing":
            call.status = "queued"
            self._touch(call)

    def agent_connect(
        self, uniqueid: str, queue: str, interface: str, name: str, holdtime: int, now: float
    ) -> None:
        agent = self._agent(interface, name)
        agent.ringing = False
        call = self.call_of(uniqueid)
        if call is None:
            return
        agent.call_id = call.call_id
        if call.answered is None:
            call.answered = now
        if call.wait_seconds is None:
            call.wait_seconds = holdtime
        else:
            call.wait_seconds += holdtime
        call.agent, call.agent_name = interface, name or agent.name
        call.agents.append(interface)
        call.status = "talking"
        call.position = 0
        q = self._queue(queue)
        q.waiting.pop(uniqueid, None)
        self._renumber(q)
        self._touch(call)

    def agent_complete(
        self,
        uniqueid: str,
        queue: str,
        interface: str,
        talktime: int,
        reason: str,
        now: float,
        channel: str = "",
    ) -> None:
        agent = self._agent(interface)
        call = self.call_of(uniqueid) if uniqueid else None
        if call is None and not uniqueid:
            # During an orderly PBX restart AgentComplete comes without Uniqueid: the caller's
            # channel, else the member's current call, still names the call.
            uid = self.by_channel.get(channel)
            call = self.call_of(uid) if uid else None
            if call is None and agent.call_id:
                call = self.calls.get(agent.call_id)
        if call is not None:
            call.talk_seconds += talktime
            if reason == "transfer":
                call.transferred = True
            if call.status in ("talking", "hold"):
                call.status = "ivr" if reason == "transfer" else "talking"
            self._touch(call)
        if call is None or agent.call_id == call.call_id:
            agent.call_id = ""
        membership = agent.queues.get(queue)
        if membership is not None and membership.wrapup > 0:
            agent.wrapup_until = now + membership.wrapup
        q = self._queue(queue)
        q.completed += 1

    def transfer(self, transferee_channel: str) -> None:
        uid = self.by_channel.get(transferee_channel)
        call = self.call_of(uid) if uid else None
        if call:
            call.transferred = True
            self._touch(call)

    def member(
        self,
        queue: str,
        interface: str,
        name: str = "",
        *,
        penalty: int | None = None,
        paused: bool | None = None,
        reason: str | None = None,
        status: str | None = None,
        in_call: bool | None = None,
        calls_taken: int | None = None,
        wrapup: int | None = None,
    ) -> Membership:
        """QueueMember* events and QueueStatus rows: one agent's membership in one queue."""
        if self._members_touched is not None:
            self._members_touched.add((queue, interface))
        agent = self._agent(interface, name)
        m = agent.queues.get(queue)
        if m is None:
            m = agent.queues[queue] = Membership(queue)
            self._queue(queue)
        if penalty is not None:
            m.penalty = penalty
        if paused is not None:
            m.paused = paused
            if not paused:
                m.reason = ""
        if reason is not None and (paused or m.paused):
            m.reason = reason
        if status is not None:
            m.status = status
        if in_call is not None:
            m.in_call = in_call
        if calls_taken is not None:
            m.calls_taken = calls_taken
        if wrapup is not None:
            m.wrapup = wrapup
        return m

    def member_removed(self, queue: str, interface: str) -> None:
        if self._members_touched is not None:
            self._members_touched.add((queue, interface))
        agent = self.agents.get(interface)
        if agent is not None and agent.queues.pop(queue, None) is not None:
            self.dirty_agents.add(interface)
            self.dirty_queues.add(queue)

    def queue_summary(self, rows: list[dict[str, str]]) -> int:
        """QueueSummary rows: Asterisk's own hold/talk averages (s) and agents logged in/free."""
        n = 0
        for row in rows:
            name = row.get("queue", "")
            if not name or row.get("event") not in (None, "QueueSummary"):
                continue
            q = self._queue(name)
            q.holdtime = _int(row.get("holdtime"), q.holdtime)
            q.talktime = _int(row.get("talktime"), q.talktime)
            q.longest_hold = _int(row.get("longestholdtime"), q.longest_hold)
            q.logged_in = _int(row.get("loggedin"), q.logged_in or 0)
            q.available = _int(row.get("available"), q.available or 0)
            n += 1
        return n

    # ----- resync --------------------------------------------------------------------------
    def begin_resync(self) -> None:
        """From here on, events win over the (older) snapshot the resync actions return."""
        self._touched = set()
        self._gone = set()
        self._members_touched = set()

    def abort_resync(self) -> None:
        self._touched = self._gone = self._members_touched = None

    def apply_resync(
        self,
        channels: list[dict[str, str]],
        queue_rows: list[dict[str, str]],
        now: float,
    ) -> Reconciled:
        """Converge to the PBX's truth: CoreShowChannels/Status rows + QueueStatus rows.

        Rows are dicts with lower-case AMI keys. Channels touched by events since begin_resync()
        are left as the events made them (they are newer than the snapshot).
        """
        touched = self._touched or set()
        gone = self._gone or set()
        mtouched = self._members_touched or set()
        self._touched = self._gone = self._members_touched = None
        rec = Reconciled()

        seen: set[str] = set()
        for row in channels:
            uid = row.get("uniqueid", "")
            if not uid or uid in seen:
                continue
            seen.add(uid)
            if uid in gone or uid in touched:
                continue
            linked = row.get("linkedid") or uid
            is_new = uid not in self.legs
            new_call = linked not in self.calls
            leg = self.leg(
                uid,
                linked,
                row.get("channel", ""),
                now,
                row.get("channelstatedesc", ""),
                row.get("calleridnum", ""),
                row.get("calleridname", ""),
            )
            leg.app = row.get("application", "")
            if row.get("bridgeid"):
                leg.bridge = row["bridgeid"]
            if is_new:
                rec.channels_added += 1
            if new_call:
                call = self.calls[linked]
                call.discovered = True
                seen_start = now - _duration(row.get("duration", "") or row.get("seconds", ""))
                call.started = min(call.started, seen_start) if call.restored else seen_start
        # A call gone while the link was down ended when the link dropped (a PBX crash takes its
        # calls with it), not now: talk and wait times are measured to then.
        end_at = self.disconnected_at if self.disconnected_at is not None else now
        for uid in list(self.legs):
            if uid not in seen and uid not in touched:
                rec.channels_removed += 1
                ended = self.hangup(uid, end_at, cause="")
                if ended is not None:
                    self._ended_unseen(ended, end_at)
                    rec.calls_ended += 1
        self.disconnected_at = None
        for call in self.calls.values():
            if call.unconfirmed:
                call.unconfirmed = False
                self._touch(call)

        # queues: only the queues the response covers are reconciled
        reported_queues: dict[str, set[str]] = {}
        reported_members: dict[str, set[str]] = {}
        for row in queue_rows:
            ev = row.get("event", "")
            qname = row.get("queue", "")
            if not qname:
                continue
            if ev == "QueueParams":
                q = self._queue(qname)
                q.strategy = row.get("strategy", q.strategy)
                q.completed = _int(row.get("completed"), q.completed)
                q.abandoned = _int(row.get("abandoned"), q.abandoned)
                q.holdtime = _int(row.get("holdtime"), q.holdtime)
                q.talktime = _int(row.get("talktime"), q.talktime)
                reported_queues.setdefault(qname, set())
                reported_members.setdefault(qname, set())
            elif ev == "QueueMember":
                iface = row.get("location") or row.get("interface", "")
                reported_members.setdefault(qname, set()).add(iface)
                if (qname, iface) in mtouched:
                    continue
                agent = self.agents.get(iface)
                existed = agent is not None and qname in agent.queues
                before = _member_tuple(agent.queues[qname]) if agent and existed else None
                m = self.member(
                    qname,
                    iface,
                    row.get("name", "") or row.get("membername", ""),
                    penalty=_int(row.get("penalty"), 0),
                    paused=row.get("paused") == "1",
                    reason=row.get("pausedreason", ""),
                    status=row.get("status", "1"),
                    in_call=row.get("incall") == "1",
                    calls_taken=_int(row.get("callstaken"), 0),
                    wrapup=_int(row.get("wrapuptime"), 0),
                )
                if not existed:
                    rec.members_added += 1
                elif before != _member_tuple(m):
                    rec.members_updated += 1
            elif ev == "QueueEntry":
                uid = row.get("uniqueid", "")
                reported_queues.setdefault(qname, set()).add(uid)
                q = self._queue(qname)
                if uid in gone or uid in touched:
                    continue
                if uid not in q.waiting and uid in self.legs:
                    rec.queue_entries_added += 1
                    self.queue_join(
                        uid, qname, now, _int(row.get("position"), 0), _int(row.get("wait"), 0)
                    )
        for qname, uids in reported_queues.items():
            found = self.queues.get(qname)
            if found is None:
                continue
            for uid in list(found.waiting):
                if uid not in uids and uid not in touched:
                    found.waiting.pop(uid)
                    rec.queue_entries_removed += 1
                    self.dirty_queues.add(qname)
        for qname, ifaces in reported_members.items():
            for agent in list(self.agents.values()):
                if (
                    qname in agent.queues
                    and agent.interface not in ifaces
                    and (qname, agent.interface) not in mtouched
                ):
                    self.member_removed(qname, agent.interface)
                    rec.members_removed += 1
        return rec

    def _ended_unseen(self, call: Call, end: float) -> None:
        """A call whose end no event reported (found gone by a resync): complete its figures."""
        call.ended_by = "resync"
        if call.answered is not None and not call.talk_seconds:
            call.talk_seconds = max(0, int(end - call.answered))
        waiting = call.joined_at is not None and not (call.voicemail or call.voicemail_box)
        if call.answered is None and waiting:
            # cut off while waiting: the caller is owed a callback like any queue abandon
            call.queued_abandon = call.abandoned = True
            if call.wait_seconds is None and call.joined_at is not None:
                call.wait_seconds = max(0, int(end - call.joined_at))

    def end_leftover_facts(self, now: float) -> int:
        """Calls a previous bridge saved that no longer exist: they ended while no bridge ran.
        Without a CDR to tell when, they end now, and their record says the end is unknown."""
        from callcenter.ami.facts import restore

        n = 0
        for call_id, facts in list(self.restored_facts.items()):
            if call_id in self.calls:
                continue
            call = Call(call_id, float(facts.get("started") or now))
            restore(call, facts)
            call.status = "ended"
            call.ended = now
            self._ended_unseen(call, now)
            call.ended_by = "restart"
            call.end_unknown = True
            self.removed_calls.add(call_id)
            self.ended.append(call)
            self.counters["calls_ended"] += 1
            n += 1
        self.restored_facts.clear()
        return n

    def connection_lost(self, now: float) -> None:
        """The AMI link dropped: from now on every call shown is unconfirmed until a resync."""
        if self.disconnected_at is None:
            self.disconnected_at = now
        for call in self.calls.values():
            call.unconfirmed = True
            self._touch(call)

    # ----- agent state log -----------------------------------------------------------------
    def note_agent_states(self, now: float) -> list[dict[str, Any]]:
        """Agents whose (state, reason) changed since last noted: one row each for the stored
        state log (callcenter.models.AgentStateChange). Called by the bridge before a publish,
        so the state_since it sets is what the snapshot shows.

        A state the previous bridge run already published (`prior_states`, read back from Redis
        at start) is not a change: a restart neither logs it twice nor restarts its clock.
        """
        out: list[dict[str, Any]] = []
        for iface in list(self.dirty_agents):
            agent = self.agents.get(iface)
            if agent is None:
                continue
            shown = agent.shown_state(now)
            if shown == agent.shown:
                continue
            prior = self.prior_states.pop(iface, None) if not agent.shown[0] else None
            agent.shown = shown
            if prior is not None and (prior[0], prior[1]) == shown:
                agent.state_since = prior[2]
                continue
            agent.state_since = now
            out.append(
                {
                    "interface": iface,
                    "agent_name": agent.name,
                    "state": shown[0],
                    "reason": shown[1],
                    "at": now,
                }
            )
        return out

    def wrapups_over(self, now: float) -> int:
        """Agents whose wrap-up ran out with no event to say so: marked dirty to be republished."""
        n = 0
        for agent in self.agents.values():
            if agent.shown[0] == "wrap-up" and now >= agent.wrapup_until:
                self.dirty_agents.add(agent.interface)
                n += 1
        return n

    # ----- snapshot ------------------------------------------------------------------------
    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "server": self.server,
            "calls": {cid: c.live_dict(now) for cid, c in self.calls.items()},
            "queues": {n: q.live_dict(self, now) for n, q in self.queues.items()},
            "agents": {i: a.live_dict(now) for i, a in self.agents.items()},
        }

    def drain_ended(self) -> list[Call]:
        out, self.ended = self.ended, []
        return out


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _duration(text: str) -> int:
    """CoreShowChannel Duration is HH:MM:SS; Status gives Seconds."""
    if not text:
        return 0
    if ":" in text:
        total = 0
        for part in text.split(":"):
            total = total * 60 + _int(part, 0)
        return total
    return _int(text, 0)


def _member_tuple(m: Membership) -> tuple:
    return (m.penalty, m.paused, m.reason, m.status, m.in_call)
