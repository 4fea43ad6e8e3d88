"""The call-center figures, computed in one place: per queue, per agent, per half hour.

Two sources, never mixed up:
- live (callers waiting, longest wait, agents by state, time in state) from the bridge's snapshot in
  Redis (callcenter.live.load_snapshot), merged over every PBX;
- stored (offered / answered / abandoned, service level, ASA, abandon rate, AHT, paused time) from
  the call records and the agent state-change log in the database, so a restart of the bridge or the
  web mid-day neither resets nor doubles the day's counts (one CallRecord per call_id; durations are
  gaps between consecutive state rows, whatever their number).

Definitions (DESIGN.md, GB/T 33358):
- offered: calls that entered a queue (their first queue is the one they count for);
- answered: reached an agent (answered and transferred records); abandoned: hung up waiting;
  a short abandon waited less than `short_abandon_seconds`;
- service level, both common definitions side by side:
  sl_answered = answered within N ÷ answered;
  sl_offered  = answered within N ÷ (offered − short abandons);
- ASA = total wait of answered calls ÷ answered; abandon rate = abandoned ÷ offered;
- AHT = (talk + wrap-up) ÷ handled. Asterisk's TalkTime runs from connect to end, so it already
  holds the hold time: hold is not added again. A call's wrap-up is the wrap-up interval of its
  agent that begins within a few seconds of the call's end (from the state log).
  A transferred call counts as handled by every agent it reached; its talk time goes to the last.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from callcenter.models import AgentStateChange, CallRecord
from config.database import session_scope
from config.loader import load_yaml
from config.settings import Settings

STATES = ("logged-out", "ready", "on-call", "wrap-up", "paused")
WRAPUP_MATCH_S = 5.0  # a wrap-up interval this close to a call's end belongs to that call


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Thresholds:
    service_level_seconds: int = 15
    service_level_target: float = 0.8
    short_abandon_seconds: int = 5
    longest_wait_alert_seconds: int = 60
    paused_alert_seconds: int = 900


@dataclass(frozen=True)
class BoardConfig:
    default: Thresholds = field(default_factory=Thresholds)
    queues: dict[str, Thresholds] = field(default_factory=dict)
    spy_phone_template: str = "PJSIP/{ext}"
    spy_context: str = "dxe-spy"
    timezone: str = "Asia/Shanghai"

    def of(self, queue: str) -> Thresholds:
        return self.queues.get(queue, self.default)


def board_config(settings: Settings) -> BoardConfig:
    """config/defaults/wallboard.yaml (or the operator's copy in config_dir)."""
    raw = load_yaml(settings, "wallboard.yaml")
    names = set(Thresholds.__dataclass_fields__)
    base = Thresholds(**{k: v for k, v in (raw.get("default") or {}).items() if k in names})
    queues = {
        str(q): Thresholds(**{**asdict(base), **{k: v for k, v in (o or {}).items() if k in names}})
        for q, o in (raw.get("queues") or {}).items()
    }
    spy = raw.get("spy") or {}
    return BoardConfig(
        base,
        queues,
        str(spy.get("phone_template") or "PJSIP/{ext}"),
        str(spy.get("context") or "dxe-spy"),
        settings.timezone,
    )


# ---------------------------------------------------------------- the agent state log
def store_state_changes(engine: Engine, server: str, rows: list[dict[str, Any]]) -> int:
    """The bridge's side: append state changes (note_agent_states rows) to the stored log."""
    with session_scope(engine) as s:
        for r in rows:
            s.add(
                AgentStateChange(
                    server=server[:32],
                    interface=str(r["interface"])[:100],
                    agent_name=(str(r.get("agent_name") or "")[:100] or None),
                    state=str(r["state"])[:16],
                    reason=(str(r.get("reason") or "")[:64] or None),
                    at=_dt(float(r["at"])),
                )
            )
    return len(rows)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@dataclass
class Interval:
    server: str
    interface: str
    name: str
    state: str
    reason: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


def state_intervals(session: Session, start: datetime, end: datetime) -> list[Interval]:
    """Each agent's states over [start, end): the row in force at `start` (the last before it)
    plus every row inside, each lasting until the next one (the last until `end`)."""
    rows = session.exec(
        select(AgentStateChange)
        .where(col(AgentStateChange.at) < end, col(AgentStateChange.at) >= start)
        .order_by(col(AgentStateChange.at), col(AgentStateChange.id))
    ).all()
    by_agent: dict[tuple[str, str], list[AgentStateChange]] = defaultdict(list)
    for r in rows:
        by_agent[(r.server, r.interface)].append(r)
    # the state each agent was in when the period began
    before = session.exec(
        select(AgentStateChange)
        .where(col(AgentStateChange.at) < start)
        .where(col(AgentStateChange.at) >= start - timedelta(days=2))
        .order_by(col(AgentStateChange.at), col(AgentStateChange.id))
    ).all()
    opening: dict[tuple[str, str], AgentStateChange] = {}
    for r in before:
        opening[(r.server, r.interface)] = r
    out: list[Interval] = []
    for key in set(by_agent) | set(opening):
        seq = by_agent.get(key, [])
        first = opening.get(key)
        points: list[tuple[datetime, AgentStateChange]] = []
        if first is not None:
            points.append((start, first))
        points += [(r.at, r) for r in seq]
        for i, (at, r) in enumerate(points):
            until = points[i + 1][0] if i + 1 < len(points) else end
            out.append(
                Interval(
                    r.server,
                    r.interface,
                    r.agent_name or "",
                    r.state,
                    r.reason or "",
                    at,
                    until,
                )
            )
    return out


# ---------------------------------------------------------------- stored figures
@dataclass
class QueueFigures:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    answered_within: int = 0
    wait_answered: int = 0  # seconds, summed
    talk: int = 0
    wrapup: float = 0.0
    handled: int = 0
    sl_seconds: int = 15

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            sl_answered=_ratio(self.answered_within, self.answered),
            sl_offered=_ratio(self.answered_within, self.offered - self.short_abandoned),
            asa=_ratio(self.wait_answered, self.answered, 1),
            abandon_rate=_ratio(self.abandoned, self.offered),
            aht=_ratio(self.talk + self.wrapup, self.handled, 1),
        )
        d["wrapup"] = round(self.wrapup, 1)
        return d


@dataclass
class AgentFigures:
    server: str
    interface: str
    name: str = ""
    handled: int = 0
    talk: int = 0
    wrapup: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    paused_by_reason: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "interface": self.interface,
            "name": self.name,
            "handled": self.handled,
            "talk": self.talk,
            "wrapup": round(self.wrapup, 1),
            "aht": _ratio(self.talk + self.wrapup, self.handled, 1),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "paused": round(self.seconds.get("paused", 0.0), 1),
            "paused_by_reason": {k: round(v, 1) for k, v in self.paused_by_reason.items()},
            "logged_in": round(sum(v for k, v in self.seconds.items() if k != "logged-out"), 1),
        }


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b > 0 else None


def local_day_bounds(day: datetime | Any, tz: str) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) of a local date, as naive UTC."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    return (
        start.astimezone(UTC).replace(tzinfo=None),
        end.astimezone(UTC).replace(tzinfo=None),
    )


def half_hour(dt: datetime, tz: str) -> str:
    """The local half-hour slot of a naive-UTC time: "YYYY-MM-DD HH:MM"."""
    local = dt.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:") + ("30" if local.minute >= 30 else "00")


def period_figures(
    session: Session, cfg: BoardConfig, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    """The stored figures of [start, end) (naive UTC): by queue, by agent, by half hour, total.

    Calls count in the period they started in. Agent state time is cut at min(end, now).
    """
    upto = min(end, now)
    records = session.exec(
        select(CallRecord)
        .where(col(CallRecord.started_at) >= start, col(CallRecord.started_at) < end)
        .order_by(col(CallRecord.started_at))
    ).all()
    intervals = state_intervals(session, start, upto) if upto > start else []
    # wrap-up intervals by agent, sorted by start, to attach each to the call it follows
    wraps: dict[str, list[Interval]] = defaultdict(list)
    for iv in intervals:
        if iv.state == "wrap-up":
            wraps[iv.interface].append(iv)
    for lst in wraps.values():
        lst.sort(key=lambda iv: iv.start)
    used: set[int] = set()

    def wrap_after(agent: str, ended: datetime | None) -> float:
        lst = wraps.get(agent)
        if not lst or ended is None:
            return 0.0
        starts = [iv.start for iv in lst]
        i = bisect.bisect_left(starts, ended - timedelta(seconds=WRAPUP_MATCH_S))
        while i < len(lst) and lst[i].start <= ended + timedelta(seconds=WRAPUP_MATCH_S):
            if id(lst[i]) not in used:
                used.add(id(lst[i]))
                return lst[i].seconds
            i += 1
        return 0.0

    queues: dict[str, QueueFigures] = {}
    slots: dict[str, QueueFigures] = {}
    total = QueueFigures(sl_seconds=cfg.default.service_level_seconds)
    agents: dict[tuple[str, str], AgentFigures] = {}

    def agent(server: str, iface: str, name: str = "") -> AgentFigures:
        a = agents.get((server, iface))
        if a is None:
            a = agents[(server, iface)] = AgentFigures(server, iface, name)
        if name and not a.name:
            a.name = name
        return a

    for rec in records:
        if not rec.queue:
            continue  # never queued (IVR hang-up, voicemail): not offered to agents
        th = cfg.of(rec.queue)
        q = queues.setdefault(rec.queue, QueueFigures(sl_seconds=th.service_level_seconds))
        slot = half_hour(rec.started_at, cfg.timezone)
        h = slots.setdefault(slot, QueueFigures(sl_seconds=cfg.default.service_level_seconds))
        answered = rec.answered_at is not None or rec.disposition in ("answered", "transferred")
        wait = int(rec.wait_seconds or 0)
        wrap = wrap_after(rec.agent, rec.ended_at) if (answered and rec.agent) else 0.0
        for f, th_s in ((q, th.service_level_seconds), (h, th.service_level_seconds),
                        (total, th.service_level_seconds)):  # fmt: skip
            f.offered += 1
            if answered:
                f.answered += 1
                f.handled += 1
                f.wait_answered += wait
                f.talk += int(rec.talk_seconds or 0)
                f.wrapup += wrap
                if wait <= th_s:
                    f.answered_within += 1
            elif rec.disposition == "abandoned":
                f.abandoned += 1
                if wait < th.short_abandon_seconds:
                    f.short_abandoned += 1
        if answered and rec.agent:
            reached = list((rec.extra or {}).get("agents") or []) or [rec.agent]
            for iface in dict.fromkeys(reached):
                a = agent(rec.server, iface, (rec.agent_name or "") if iface == rec.agent else "")
                a.handled += 1
            last = agent(rec.server, rec.agent, rec.agent_name or "")
            last.talk += int(rec.talk_seconds or 0)
            last.wrapup += wrap

    for iv in intervals:
        a = agent(iv.server, iv.interface, iv.name)
        a.seconds[iv.state] = a.seconds.get(iv.state, 0.0) + iv.seconds
        if iv.state == "paused":
            key = iv.reason or "未注明"
            a.paused_by_reason[key] = a.paused_by_reason.get(key, 0.0) + iv.seconds

    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "queues": {k: v.as_dict() for k, v in sorted(queues.items())},
        "agents": {f"{s}|{i}": a.as_dict() for (s, i), a in sorted(agents.items())},
        "halfhours": {k: v.as_dict() for k, v in sorted(slots.items())},
        "total": total.as_dict(),
    }


def day_figures(
    session: Session, cfg: BoardConfig, now: datetime, day: Any | None = None
) -> dict[str, Any]:
    """Today's (or `day`'s) stored figures, local calendar day."""
    start, end = today_bounds(cfg, now) if day is None else local_day_bounds(day, cfg.timezone)
    return period_figures(session, cfg, start, end, now)


def today_bounds(cfg: BoardConfig, now: datetime) -> tuple[datetime, datetime]:
    """The local day containing `now` (naive UTC), as naive-UTC bounds."""
    return local_day_bounds(
        now.replace(tzinfo=UTC).astimezone(ZoneInfo(cfg.timezone)), cfg.timezone
    )


def abandoned_calls(session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Calls abandoned in a queue in [start, end) with their callback's status (ticketing's
    CallbackTask: open = promised, done, failed, cancelled; none when no number to call)."""
    from ticketing import CallbackTask

    recs = session.exec(
        select(CallRecord)
        .where(col(CallRecord.started_at) >= start, col(CallRecord.started_at) < end)
        .where(CallRecord.disposition == "abandoned", col(CallRecord.queue).is_not(None))
        .order_by(col(CallRecord.started_at).desc())
        .limit(200)
    ).all()
    ids = [r.call_id for r in recs]
    tasks = {
        t.call_id: t
        for t in session.exec(
            select(CallbackTask).where(
                col(CallbackTask.call_id).in_(ids), CallbackTask.reason == "abandoned"
            )
        ).all()
    }
    out = []
    for r in recs:
        t = tasks.get(r.call_id)
        out.append(
            {
                "call_id": r.call_id,
                "server": r.server,
                "started_at": r.started_at.replace(tzinfo=UTC).timestamp(),
                "queue": r.queue,
                "wait_seconds": r.wait_seconds,
                "caller": _mask(r.caller_phone or ""),
                "ticket_number": r.ticket_number,
                "callback": t.status if t is not None else "none",
                "callback_attempts": t.attempts if t is not None else 0,
            }
        )
    return out


def _mask(phone: str) -> str:
    """Supervisors see enough of a number to recognise it, never the whole of it on a wall."""
    return (phone[:-8] + "****" + phone[-4:]) if len(phone) > 8 else ("****" if phone else "")


# ---------------------------------------------------------------- live figures
def live_figures(snapshot: dict[str, Any], cfg: BoardConfig, now: float) -> dict[str, Any]:
    """From a merged live snapshot (callcenter.live.load_snapshot): per queue callers waiting,
    longest wait and agents by state (paused by reason); per agent its state and time in it.
    A queue of the same name on several PBXs is one service queue: its figures add up."""
    queues: dict[str, dict[str, Any]] = {}

    def q_of(name: str) -> dict[str, Any]:
        q = queues.get(name)
        if q is None:
            q = queues[name] = {
                "name": name,
                "waiting": 0,
                "longest_wait": 0,
                "agents": dict.fromkeys(STATES, 0) | {"logged-in": 0},
                "paused_by_reason": {},
                "servers": [],
            }
        return q

    for row in snapshot.get("queues", []):
        q = q_of(row["name"])
        q["waiting"] += int(row.get("waiting") or 0)
        for c in row.get("callers") or []:
            joined = c.get("joined_at")
            wait = (now - float(joined)) if joined else float(c.get("wait_seconds") or 0)
            q["longest_wait"] = max(q["longest_wait"], int(max(0.0, wait)))
        if row.get("server") not in q["servers"]:
            q["servers"].append(row.get("server"))
    agents: list[dict[str, Any]] = []
    for a in snapshot.get("agents", []):
        state = a.get("state") or "logged-out"
        since = a.get("state_since")
        agents.append(
            {
                "key": f"{a.get('server')}|{a.get('interface')}",
                "server": a.get("server"),
                "interface": a.get("interface"),
                "name": a.get("name") or "",
                "state": state,
                "pause_reason": a.get("pause_reason") or "",
                "state_since": since,
                "in_state": int(max(0.0, now - float(since))) if since else None,
                "queues": sorted((a.get("queues") or {}).keys()),
                "paused_queues": a.get("paused_queues") or [],
                "call_id": a.get("call_id") or "",
            }
        )
        for qname, m in (a.get("queues") or {}).items():
            q = q_of(qname)
            st = m.get("state") or state
            if m.get("status") in ("4", "5"):
                st = "logged-out"
            if st not in STATES:
                st = state
            q["agents"][st] += 1
            if st != "logged-out":
                q["agents"]["logged-in"] += 1
            if st == "paused":
                reason = m.get("reason") or "未注明"
                q["paused_by_reason"][reason] = q["paused_by_reason"].get(reason, 0) + 1
    agents.sort(key=lambda x: (x["name"] or x["interface"], x["server"] or ""))
    return {"queues": dict(sorted(queues.items())), "agents": agents}


def alerts(
    live: dict[str, Any], day: dict[str, Any], cfg: BoardConfig, now: float
) -> list[dict[str, Any]]:
    """What needs a supervisor now: a long wait, service level under target, a long pause."""
    out: list[dict[str, Any]] = []
    for name, q in live.get("queues", {}).items():
        th = cfg.of(name)
        if q["longest_wait"] > th.longest_wait_alert_seconds:
            out.append(
                {
                    "kind": "wait",
                    "queue": name,
                    "level": "red",
                    "text": f"{name} 最长等待 {q['longest_wait']} 秒，超过 "
                    f"{th.longest_wait_alert_seconds} 秒",
                }
            )
    for name, f in day.get("queues", {}).items():
        th = cfg.of(name)
        sl = f.get("sl_answered")
        if sl is not None and sl < th.service_level_target:
            out.append(
                {
                    "kind": "sl",
                    "queue": name,
                    "level": "yellow",
                    "text": f"{name} 服务水平 {sl * 100:.0f}%，低于目标 "
                    f"{th.service_level_target * 100:.0f}%",
                }
            )
    limit = cfg.default.paused_alert_seconds
    for a in live.get("agents", []):
        if a["state"] == "paused" and a["in_state"] is not None:
            th_s = min([cfg.of(q).paused_alert_seconds for q in a["queues"]] or [limit])
            if a["in_state"] > th_s:
                out.append(
                    {
                        "kind": "paused",
                        "agent": a["key"],
                        "level": "yellow",
                        "text": f"{a['name'] or a['interface']} 小休"
                        f"（{a['pause_reason'] or '未注明'}）已 {a['in_state'] // 60} 分钟",
                    }
                )
    return out


def board(
    snapshot: dict[str, Any], day: dict[str, Any], cfg: BoardConfig, now: float
) -> dict[str, Any]:
    """The wallboard's whole state: live figures beside the day's stored ones, and the alerts."""
    live = live_figures(snapshot, cfg, now)
    queues: dict[str, Any] = {}
    for name in sorted(set(live["queues"]) | set(day.get("queues", {}))):
        th = cfg.of(name)
        queues[name] = {
            "name": name,
            "live": live["queues"].get(name)
            or live_figures({"queues": [{"name": name}]}, cfg, now)["queues"][name],
            "today": day.get("queues", {}).get(name)
            or QueueFigures(sl_seconds=th.service_level_seconds).as_dict(),
            "thresholds": asdict(th),
        }
    today_agents = day.get("agents", {})
    agents = []
    for a in live["agents"]:
        agents.append({**a, "today": today_agents.get(a["key"])})
    servers = {
        name: {"connected": bool((meta.get("connection") or {}).get("connected"))}
        for name, meta in (snapshot.get("servers") or {}).items()
        if isinstance(meta, dict)
    }
    return {
        "ts": now,
        "servers": servers,
        "queues": queues,
        "agents": agents,
        "total": day.get("total"),
        "halfhours": day.get("halfhours", {}),
        "alerts": alerts(live, day, cfg, now),
    }


def agent_today(
    session: Session, cfg: BoardConfig, now: datetime, interface: str, server: str | None = None
) -> dict[str, Any]:
    """One agent's own figures today (the agent console's block): calls, AHT, paused by reason."""
    day = day_figures(session, cfg, now)
    found = [
        a
        for a in day["agents"].values()
        if a["interface"] == interface and (server is None or a["server"] == server)
    ]
    if not found:
        return AgentFigures(server or "", interface).as_dict()
    first = found[0]
    if len(found) == 1:
        return first
    merged = AgentFigures(first["server"], interface, first["name"])
    for a in found:
        merged.handled += a["handled"]
        merged.talk += a["talk"]
        merged.wrapup += a["wrapup"]
        for k, v in a["seconds"].items():
            merged.seconds[k] = merged.seconds.get(k, 0.0) + v
        for k, v in a["paused_by_reason"].items():
            merged.paused_by_reason[k] = merged.paused_by_reason.get(k, 0.0) + v
    return merged.as_dict()
