"""Calls the bridge never saw (service stopped, bridge restarting, link down), filed from
Asterisk's own call records: the cdr_custom CSV shipped in config/asterisk/cdr_custom.conf.

Why the CDR: it is written by the PBX at every hang-up whether anyone listens or not, so it is the
one record that survives the project being away. On every (re)connect the bridge reads the rows
that ended before it logged in and after the previous reconcile, groups them by Linkedid (one call,
as in the live path), and stores each call it does not hold yet through the same persist_call as
live calls — idempotent on call_id, so a call seen live is never filed twice. What the CDR cannot
say (how long the caller waited, an IVR choice the dialplan never recorded) is written in the
ticket as unknown, never guessed. Facts a previous bridge saved in Redis (facts.py) fill gaps.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# the CSV's columns, in the order of config/asterisk/cdr_custom.conf's [dxe.csv] `fields` (write-config
# refuses a cdr_custom.conf that differs); start/answer/end are epoch seconds, answer 0 = unanswered
COLUMNS = (
    "linkedid",
    "uniqueid",
    "channel",
    "dstchannel",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "src",
    "clid",
    "dcontext",
    "lastapp",
    "ivr_path",
    "ivr_category",
    "ivr_option",
    "ivr_result",
    "dxe_queue",
    "recording",
    "vm_status",
)
# a call is the hotline's when one of its legs ran these contexts (extensions.conf) or carries an
# IVR decision; other CDRs (internal calls, callbacks agents dial out) are not hotline calls
HOTLINE_CONTEXTS = frozenset({"dxe-inbound", "dxe-hangup"})
FIRST_LOOKBACK_S = 24 * 3600  # with no cursor yet (first start): calls of the last day
SLACK_S = 120.0  # rows near the previous cutoff are read again (persist_call dedupes)
_CLID = re.compile(r'^"?(?P<name>[^"<]*)"?\s*<(?P<num>[^>]*)>')
_CHAN_SUFFIX = re.compile(r"-[0-9a-f]+(;\d)?$")


@dataclass
class ReconcileReport:
    rows: int = 0
    calls: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped_live: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "calls": self.calls,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "skipped_live": self.skipped_live,
            "failed": self.failed,
        }


def _f(v: str) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x > 0 else None


def read_rows(path: Path, since: float, until: float) -> list[dict[str, str]]:
    """CDR rows that ended in [since, until). A malformed line is skipped, never fatal."""
    out: list[dict[str, str]] = []
    try:
        fh = path.open(encoding="utf-8", errors="replace", newline="")
    except FileNotFoundError:
        return out
    with fh:
        for values in csv.reader(fh):
            if len(values) < len(COLUMNS):
                continue
            row = dict(zip(COLUMNS, values, strict=False))
            end = _f(row["end"])
            if end is None or not (since <= end < until) or not row["linkedid"]:
                continue
            out.append(row)
    return out


def agent_of(dstchannel: str) -> str:
    """`Local/8001@agents-0000001a;1` → `Local/8001@agents`; `PJSIP/8001-00000003` → `PJSIP/8001`."""
    return _CHAN_SUFFIX.sub("", dstchannel)


def _first(rows: Iterable[dict[str, str]], key: str) -> str:
    return next((r[key] for r in rows if r.get(key)), "")


def call_from_rows(rows: list[dict[str, str]], facts: dict[str, Any] | None = None) -> dict:
    """One call (all CDR legs of one Linkedid) → the record persist_call takes."""
    rows = sorted(rows, key=lambda r: (_f(r["start"]) or 0, r["uniqueid"]))
    caller_row = next((r for r in rows if r.get("ivr_result") or r.get("dxe_queue")), rows[0])
    m = _CLID.match(caller_row.get("clid", ""))
    started = min(_f(r["start"]) or 0 for r in rows) or None
    ended = max(_f(r["end"]) or 0 for r in rows) or None
    talked = [
        r
        for r in rows
        if r.get("dstchannel")
        and r.get("lastapp") == "Queue"
        and _f(r["answer"])
        and int(r.get("billsec") or 0) > 0
    ]
    ivr_result = _first(rows, "ivr_result")
    vm_status = _first(rows, "vm_status")
    queue = _first(rows, "dxe_queue")
    option = _first(rows, "ivr_option")
    answered = _f(talked[0]["answer"]) if talked else None
    if vm_status == "SUCCESS" and ivr_result == "voicemail":
        disposition = "voicemail"
    elif answered is not None:
        disposition = "answered"
    else:
        disposition = "abandoned"
    unknown = ["本通话发生在系统未连接交换机期间，依交换机话单补录"]
    if not _first(rows, "ivr_path") and not option:
        unknown.append("语音导航选择未记录")
    if queue:
        unknown.append("排队等待时长")
    rec: dict[str, Any] = {
        "call_id": rows[0]["linkedid"],
        "caller": caller_row.get("src") or (m.group("num") if m else ""),
        "caller_name": (m.group("name").strip() if m else "") or "",
        "started": started,
        "answered": answered,
        "ended": ended,
        "ivr_path": _first(rows, "ivr_path"),
        "ivr_choices": [option] if option else [],
        "category": _first(rows, "ivr_category") or None,
        "queue": queue,
        "queues": [queue] if queue else [],
        "wait_seconds": None,
        "agent": agent_of(talked[0]["dstchannel"]) if talked else "",
        "agent_name": "",
        "agents": [agent_of(r["dstchannel"]) for r in talked],
        "talk_seconds": sum(int(r.get("billsec") or 0) for r in talked),
        "hold_seconds": 0,
        "disposition": disposition,
        "queued_abandon": bool(queue) and answered is None and ivr_result != "voicemail",
        "voicemail_box": "",
        "recording": _first(rows, "recording") if talked else "",
        "recordings": [_first(rows, "recording")] if talked and _first(rows, "recording") else [],
        "channels": [r["channel"] for r in rows][:32],
        "ticket_number": "",
        "hangup_cause": "",
        "ended_by": "cdr",
        "source": "cdr",
        "ivr_fallback": ivr_result == "fallback",
        "vm_no_message": ivr_result == "voicemail" and vm_status != "SUCCESS",
    }
    if facts:  # the bridge saw the start of this call before it went away
        for k in ("ivr_path", "queue", "agent", "agent_name", "caller_name"):
            if facts.get(k) and not rec.get(k):
                rec[k] = facts[k]
        if facts.get("ivr_choices") and not rec["ivr_choices"]:
            rec["ivr_choices"] = facts["ivr_choices"]
        if facts.get("joined_at") and "排队等待时长" in unknown:
            end_wait = answered or ended
            if end_wait:
                rec["wait_seconds"] = max(0, int(end_wait - facts["joined_at"]))
                unknown.remove("排队等待时长")
        rec["restored"] = True
    rec["unknown"] = "；".join(unknown)
    return rec


class CdrCursor:
    """Up to when the CDR was reconciled (a small JSON file beside the call journal)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> float | None:
        try:
            return float(json.loads(self.path.read_text())["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def set(self, until: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"until": until}))
        tmp.replace(self.path)


def reconcile(
    engine: Any,
    settings: Any,
    server: str,
    csv_path: Path,
    cursor: CdrCursor,
    *,
    until: float | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    facts: dict[str, dict[str, Any]] | None = None,
) -> ReconcileReport:
    """File every call that ended before `until` (the login time) and is not in `skip` (calls
    live or journaled). Blocking: run it in a thread."""
    from callcenter.ami.calls import persist_call

    until = until if until is not None else time.time()
    prev = cursor.get()
    since = (prev - SLACK_S) if prev is not None else until - FIRST_LOOKBACK_S
    report = ReconcileReport()
    rows = read_rows(csv_path, since, until)
    report.rows = len(rows)
    by_call: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_call.setdefault(r["linkedid"], []).append(r)
    by_call = {
        cid: legs
        for cid, legs in by_call.items()
        if any(
            r.get("dcontext") in HOTLINE_CONTEXTS or r.get("ivr_result") or r.get("dxe_queue")
            for r in legs
        )
    }
    report.calls = len(by_call)
    ok = True
    for call_id, legs in by_call.items():
        if call_id in skip:
            report.skipped_live += 1
            continue
        rec = call_from_rows(legs, (facts or {}).get(call_id))
        try:
            outcome = persist_call(engine, settings, rec, server)
        except Exception as e:  # DB away: the cursor stays, the next connect tries again
            report.failed += 1
            report.errors.append(f"{call_id}: {type(e).__name__}")
            log.warning("CDR reconcile of call %s failed (%s)", call_id, type(e).__name__)
            ok = False
            continue
        if outcome == "duplicate":
            report.duplicates += 1
        else:
            report.stored += 1
            log.info("call %s reconciled from the CDR (%s)", call_id, rec["disposition"])
    if ok:
        cursor.set(until)
    return report
