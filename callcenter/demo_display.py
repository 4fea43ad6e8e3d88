"""`callcenter demo`'s terminal output: the SIMULATION banner and rich tables of the live
snapshot and of the call records with their tickets. No database, no network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from config.logging import mask_phones

BANNER_ZH = "【模拟演示】未连接真实电话交换机：来电为录制的 Asterisk 流量回放，工单为演示数据。"
BANNER_EN = (
    "SIMULATION: no real PBX is connected. Calls are replays of captured Asterisk traffic; "
    "tickets created here are demo data."
)
SIM_TAG = "[模拟 SIMULATION]"


def mask(raw: Any) -> str:
    return mask_phones(str(raw or "")) or "-"


def live_tables(snapshot: dict[str, Any]) -> Group:
    """Calls, queues and agents of the live snapshot (what the wallboard reads from Redis)."""
    calls = Table(title=f"{SIM_TAG} 通话 Calls", expand=True)
    for col in ("call", "caller", "status", "IVR", "queue", "wait s", "agent"):
        calls.add_column(col)
    for c in snapshot.get("calls", []):
        calls.add_row(
            str(c.get("call_id")),
            mask(c.get("caller")),
            str(c.get("status") or "-"),
            str(c.get("ivr_path") or "-"),
            str(c.get("queue") or "-"),
            str(c.get("wait_seconds") if c.get("wait_seconds") is not None else "-"),
            str(c.get("agent_name") or c.get("agent") or "-"),
        )
    queues = Table(title=f"{SIM_TAG} 队列 Queues", expand=True)
    for col in ("queue", "waiting", "completed", "abandoned", "members"):
        queues.add_column(col)
    for q in snapshot.get("queues", []):
        queues.add_row(
            str(q["name"]),
            str(q.get("waiting", 0)),
            str(q.get("completed", 0)),
            str(q.get("abandoned", 0)),
            str(len(q.get("members", []))),
        )
    agents = Table(title=f"{SIM_TAG} 坐席 Agents", expand=True)
    for col in ("agent", "name", "state", "pause reason", "calls taken"):
        agents.add_column(col)
    for a in snapshot.get("agents", []):
        agents.add_row(
            str(a["interface"]),
            str(a.get("name") or "-"),
            str(a.get("state") or "-"),
            str(a.get("pause_reason") or "-"),
            str(a.get("calls_taken", 0)),
        )
    return Group(calls, queues, agents)


def tickets_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"{SIM_TAG} 通话记录与工单 Call records → tickets", expand=True)
    for col in ("call", "caller", "disposition", "queue", "ticket", "category", "callback"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["call_id"],
            r["caller"],
            r["disposition"],
            r["queue"],
            r["ticket"],
            f"{r['category']}/{r['urgency']}" if r["ticket"] != "-" else r["note"] or "-",
            r["callback"],
        )
    return t


class LiveDisplay:
    """A rich Live view on a terminal; plain tables after each scenario otherwise (logs, CI)."""

    def __init__(self, console: Console, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.console = console
        self.snapshot = snapshot
        self.live: Live | None = None

    def __enter__(self) -> LiveDisplay:
        if self.console.is_terminal:
            self.live = Live(Panel("…", title=SIM_TAG), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(
                Panel(live_tables(self.snapshot()), title=f"{SIM_TAG} {BANNER_EN[:60]}…")
            )

    def after_scenario(self) -> None:
        if self.live is None:
            self.console.print(live_tables(self.snapshot()))
