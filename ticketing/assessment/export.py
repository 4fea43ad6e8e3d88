"""The ranking as an official pastes it into a report: Chinese headers, one row per department
(rank, each indicator, score, band), the city's row last. CSV (UTF-8 with BOM, so Excel opens
it as such) and xlsx (openpyxl; rates as numbers formatted as percentages)."""

from __future__ import annotations

import csv
import io
from typing import Any

from ticketing.assessment.indicators import HOURS, INDICATORS, RATE
from ticketing.assessment.scoring import Assessment, city_average


def headers(result: Assessment) -> list[str]:
    out = ["排名", "部门"]
    for code in result.columns:
        ind = INDICATORS[code]
        unit = "（%）" if ind.kind == RATE else ("（小时）" if ind.kind == HOURS else "")
        out.append(ind.label + unit)
    return [*out, "得分", "等次"]


def table(result: Assessment) -> list[list[Any]]:
    """Rows of plain values: rates as fractions (0.875), hours rounded to 0.1, None when there
    was nothing to measure. The last row is the city's (全市)."""
    rows: list[list[Any]] = []
    for r in result.rows:
        rows.append(
            [
                r.rank if r.rank is not None else "—",
                r.name,
                *[_value(code, r.figures[code].value) for code in result.columns],
                r.score if r.score is not None else "—",
                r.band,
            ]
        )
    avg = city_average(result)
    rows.append(["", "全市", *[_value(code, avg[code]) for code in result.columns], "", ""])
    return rows


def _value(code: str, v: float | None) -> Any:
    if v is None:
        return None
    kind = INDICATORS[code].kind
    if kind == RATE:
        return round(v, 4)
    if kind == HOURS:
        return round(v, 1)
    return round(v, 1) if v != int(v) else int(v)


def _text(code: str | None, v: Any) -> str:
    if v is None:
        return "—"
    if code is not None and INDICATORS[code].kind == RATE:
        return f"{v * 100:.1f}%"
    return str(v)


def to_csv(result: Assessment) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(headers(result))
    codes: list[str | None] = [None, None, *result.columns, None, None]
    for row in table(result):
        w.writerow(
            [
                _text(c, v) if c else ("" if v is None else v)
                for c, v in zip(codes, row, strict=True)
            ]
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(result: Assessment) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = result.period.key
    head = headers(result)
    ws.append([f"{result.period.label}部门考核排名"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(head))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append(head)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for row in table(result):
        ws.append(["—" if v is None else v for v in row])
    for i, code in enumerate(result.columns, start=3):
        if INDICATORS[code].kind == RATE:
            for (cell,) in ws.iter_rows(min_row=3, min_col=i, max_col=i):
                if isinstance(cell.value, float | int):
                    cell.number_format = "0.0%"
    ws.column_dimensions["B"].width = 18
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
