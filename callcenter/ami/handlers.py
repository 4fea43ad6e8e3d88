"""AMI event name → state handler. Unknown events are ignored, malformed ones skipped; never fatal.

The user `callcenter` reads `all`, so most traffic (Newexten, CEL, DeviceStateChange, RTCP…) is
noise: the table lookup is the only cost such an event pays. Handlers get the event as a plain
dict with lower-case keys (see `fields_of`) and `now` from the bridge's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from callcenter.ami.state import LiveState

log = logging.getLogger(__name__)

Fields = dict[str, str]
Handler = Callable[[LiveState, Fields, float], None]

# Only these variables matter; VarSet is the busiest event, so filter before anything else.
VARS = frozenset(
    {
        "IVR_CHOICE",
        "IVR_CHOICE_NAME",
        "IVR_OPTION",
        "IVR_RESULT",
        "IVR_PATH",
        "IVR_CATEGORY",
        "MIXMONITOR_FILENAME",
        "TICKET_NUMBER",
        "VMSTATUS",
    }
)


def fields_of(message: Any) -> Fields:
    """panoramisk Message → {lower-case key: value}. Repeated keys keep their list value."""
    store = getattr(message, "_store", None)
    if store is not None:
        return {k: v[1] for k, v in store.items()}
    return {str(k).lower(): v for k, v in message.items()}


def parse_fields(frame: str) -> Fields:
    """One raw event frame → {lower-case key: value} (what panoramisk's Message would hold).

    Same rules as panoramisk.Message.from_line: "Key: value" lines, others ignored; a repeated
    key becomes a list.
    """
    out: Fields = {}
    for line in frame.split("\r\n"):
        k, sep, v = line.partition(": ")
        if sep:
            k = k.lower()
            if k in out:
                old = out[k]
                # a repeated key (ChanVariable, ...) keeps every value, in order
                out[k] = [*old, v] if isinstance(old, list) else [old, v]  # type: ignore[assignment]
            else:
                out[k] = v
    return out


def varset_name(frame: str) -> str:
    """The Variable of a raw VarSet frame without parsing the rest (VarSet is the busiest)."""
    i = frame.find("\r\nVariable: ")
    if i < 0:
        return ""
    j = frame.find("\r\n", i + 12)
    return frame[i + 12 : j] if j > 0 else frame[i + 12 :]


def _s(f: Fields, key: str) -> str:
    v = f.get(key, "")
    return v if isinstance(v, str) else (v[-1] if v else "")


def _int(f: Fields, key: str) -> int:
    v = _s(f, key)
    return int(v) if v else 0


def _leg(st: LiveState, f: Fields, now: float) -> None:
    st.leg(
        f["uniqueid"],
        f["linkedid"],
        f["channel"],
        now,
        f.get("channelstatedesc", ""),
        f.get("calleridnum", ""),
        f.get("calleridname", ""),
    )


def _hangup(st: LiveState, f: Fields, now: float) -> None:
    st.hangup(f["uniqueid"], now, f.get("cause", ""))


def _varset(st: LiveState, f: Fields, now: float) -> None:
    var = f.get("variable", "")
    if var in VARS:
        st.varset(f["uniqueid"], var, _s(f, "value"))


def _dial_begin(st: LiveState, f: Fields, now: float) -> None:
    if "destuniqueid" in f and "destlinkedid" in f:
        st.leg(
            f["destuniqueid"],
            f["destlinkedid"],
            f.get("destchannel", ""),
            now,
            f.get("destchannelstatedesc", ""),
        )


def _queue_join(st: LiveState, f: Fields, now: float) -> None:
    if f["uniqueid"] not in st.legs and "linkedid" in f:
        _leg(st, f, now)
    st.queue_join(f["uniqueid"], f["queue"], now, _int(f, "position"))


def _queue_leave(st: LiveState, f: Fields, now: float) -> None:
    st.queue_leave(f["uniqueid"], f["queue"])


def _queue_abandon(st: LiveState, f: Fields, now: float) -> None:
    st.queue_abandon(f["uniqueid"], f["queue"], _int(f, "holdtime"))


def _agent_called(st: LiveState, f: Fields, now: float) -> None:
    st.agent_called(
        f["uniqueid"], f["interface"], f.get("membername", ""), f.get("destuniqueid", "")
    )


def _agent_connect(st: LiveState, f: Fields, now: float) -> None:
    st.agent_connect(
        f["uniqueid"],
        f["queue"],
        f["interface"],
        f.get("membername", ""),
        _int(f, "holdtime"),
        now,
    )


def _agent_complete(st: LiveState, f: Fields, now: float) -> None:
    st.agent_complete(
        _s(f, "uniqueid"),
        f["queue"],
        f["interface"],
        _int(f, "talktime"),
        f.get("reason", ""),
        now,
        _s(f, "channel"),
    )


def _agent_rna(st: LiveState, f: Fields, now: float) -> None:
    st.agent_ring_no_answer(f["uniqueid"], f["interface"])


def _member(st: LiveState, f: Fields, now: float) -> None:
    paused = f.get("paused")
    st.member(
        f["queue"],
        f["interface"],
        f.get("membername", ""),
        penalty=_int(f, "penalty") if "penalty" in f else None,
        paused=None if paused is None else paused == "1",
        reason=f.get("pausedreason"),
        status=f.get("status"),
        in_call=None if "incall" not in f else f["incall"] == "1",
        calls_taken=_int(f, "callstaken") if "callstaken" in f else None,
        wrapup=_int(f, "wrapuptime") if "wrapuptime" in f else None,
    )


def _member_removed(st: LiveState, f: Fields, now: float) -> None:
    st.member_removed(f["queue"], f["interface"])


def _bridge_enter(st: LiveState, f: Fields, now: float) -> None:
    st.bridge_enter(f["uniqueid"], f.get("bridgeuniqueid", ""))


def _bridge_leave(st: LiveState, f: Fields, now: float) -> None:
    st.bridge_leave(f["uniqueid"])


def _hold(st: LiveState, f: Fields, now: float) -> None:
    st.hold(f["uniqueid"], now, True)


def _unhold(st: LiveState, f: Fields, now: float) -> None:
    st.hold(f["uniqueid"], now, False)


def _transfer(st: LiveState, f: Fields, now: float) -> None:
    if f.get("result", "Success") == "Success":
        st.transfer(f["transfereechannel"])


def _user_event(st: LiveState, f: Fields, now: float) -> None:
    if f.get("userevent") == "DxeAfterHours" and "uniqueid" in f:
        st.after_hours(f["uniqueid"], f.get("mailbox", ""))
    elif f.get("userevent") == "DxeCallEnd" and "uniqueid" in f:
        st.call_end_summary(f["uniqueid"], f)


def _message_waiting(st: LiveState, f: Fields, now: float) -> None:
    if "uniqueid" in f:
        call = st.call_of(f["uniqueid"])
        if call is not None:
            call.voicemail_box = f.get("mailbox", call.voicemail_box)


def _mixmonitor(st: LiveState, f: Fields, now: float) -> None:
    call = st.call_of(f["uniqueid"])
    if call is not None:
        st.dirty_calls.add(call.call_id)


def _fully_booted(st: LiveState, f: Fields, now: float) -> None:
    st.pbx = {"uptime": _s(f, "uptime"), "last_reload": _s(f, "lastreload"), "booted_seen": now}


HANDLERS: dict[str, Handler] = {
    "FullyBooted": _fully_booted,
    "Newchannel": _leg,
    "Newstate": _leg,
    "NewCallerid": _leg,
    "Hangup": _hangup,
    "VarSet": _varset,
    "DialBegin": _dial_begin,
    "QueueCallerJoin": _queue_join,
    "QueueCallerLeave": _queue_leave,
    "QueueCallerAbandon": _queue_abandon,
    "AgentCalled": _agent_called,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "AgentRingNoAnswer": _agent_rna,
    "QueueMemberStatus": _member,
    "QueueMemberAdded": _member,
    "QueueMemberPause": _member,
    "QueueMemberPenalty": _member,
    "QueueMemberRinginuse": _member,
    "QueueMemberRemoved": _member_removed,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "Hold": _hold,
    "Unhold": _unhold,
    "BlindTransfer": _transfer,
    "AttendedTransfer": _transfer,
    "UserEvent": _user_event,
    "MessageWaiting": _message_waiting,
    "MixMonitorStart": _mixmonitor,
}


class Dispatcher:
    """Applies events to a LiveState and counts what happened to each (handled/ignored/malformed)."""

    def __init__(self, state: LiveState) -> None:
        self.state = state
        self.handled = 0
        self.ignored = 0
        self.malformed = 0
        self.last_error = ""

    def apply(self, name: str, fields: Fields | None, now: float, message: Any = None) -> bool:
        handler = HANDLERS.get(name)
        if handler is None:
            self.ignored += 1
            return False
        try:
            handler(self.state, fields if fields is not None else fields_of(message), now)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            self.malformed += 1
            self.last_error = f"{name}: {type(e).__name__} {e}"
            log.warning("malformed AMI event skipped: %s", self.last_error)
            return False
        self.handled += 1
        return True

    def apply_raw(self, name: str, frame: str, now: float) -> bool:
        """Fast path for a raw event frame: unknown events and unwanted VarSets are not parsed."""
        if name not in HANDLERS or (name == "VarSet" and varset_name(frame) not in VARS):
            self.ignored += 1
            return False
        return self.apply(name, parse_fields(frame), now)

    def counts(self) -> dict[str, int]:
        return {"handled": self.handled, "ignored": self.ignored, "malformed": self.malformed}
