"""The daily / date-range queue and agent report (by queue, by agent, by half hour) as xlsx and CSV.

Computed from the stored call records and agent state log (callcenter.figures.period_figures),
never from the live state, so a report of a past day is the same before and after any restart.
"""

from __future__ import annotations

import csv
import io
from typing import Any

Table = tuple[str, list[str], list[list[Any]]]

QUEUE_HEAD = ["队列", "呼入", "接通", "放弃", "短时放弃", "N秒内接通", "服务水平(÷接通)",
              "服务水平(÷呼入-短时放弃)", "平均应答(秒)", "放弃率", "平均处理时长(秒)", "N(秒)"]  # fmt: skip
AGENT_HEAD = ["坐席", "接口", "交换机", "处理通话", "通话(秒)", "话后处理(秒)", "平均处理时长(秒)",
              "签入(秒)", "就绪(秒)", "通话中(秒)", "小休(秒)", "小休原因"]  # fmt: skip


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


def _queue_row(name: str, f: dict[str, Any]) -> list[Any]:
    return [
        name, f["offered"], f["answered"], f["abandoned"], f["short_abandoned"],
        f["answered_within"], _pct(f["sl_answered"]), _pct(f["sl_offered"]),
        "" if f["asa"] is None else f["asa"], _pct(f["abandon_rate"]),
        "" if f["aht"] is None else f["aht"], f["sl_seconds"],
    ]  # fmt: skip


def tables(fig: dict[str, Any], reasons: dict[str, str] | None = None) -> list[Table]:
    """The report's three tables from period_figures' result (reason codes shown by label)."""
    reasons = reasons or {}
    queues = [_queue_row(n, f) for n, f in fig["queues"].items()]
    queues.append(_queue_row("合计", fig["total"]))
    agents = []
    for a in fig["agents"].values():
        s = a["seconds"]
        agents.append(
            [
                a["name"], a["interface"], a["server"], a["handled"], a["talk"], a["wrapup"],
                "" if a["aht"] is None else a["aht"], a["logged_in"], s.get("ready", 0),
                s.get("on-call", 0), a["paused"],
                "；".join(f"{reasons.get(k, k)} {int(v)}秒" for k, v in a["paused_by_reason"].items()),
            ]
        )  # fmt: skip
    halves = [_queue_row(slot, f) for slot, f in fig["halfhours"].items()]
    return [
        ("按队列", QUEUE_HEAD, queues),
        ("按坐席", AGENT_HEAD, agents),
        ("按半小时", ["时段", *QUEUE_HEAD[1:]], halves),
    ]


def to_csv(title: str, tabs: list[Table]) -> bytes:
    """One CSV with the three tables one after another (UTF-8 with BOM: Excel opens it right)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([title])
    for name, head, rows in tabs:
        w.writerow([])
        w.writerow([name])
        w.writerow(head)
        w.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(title: str, tabs: list[Table]) -> bytes:
    """One workbook, one sheet per table, header row bold and frozen."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    for sheet in list(wb.worksheets):
        wb.remove(sheet)
    for name, head, rows in tabs:
        ws = wb.create_sheet(name)
        ws.append([title])
        ws.append(head)
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append(row)
        ws.freeze_panes = "A3"
        for i, h in enumerate(head, 1):
            ws.column_dimensions[ws.cell(2, i).column_letter].width = max(10, len(h) * 2 + 2)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
