"""Monthly department assessment (§16–17): indicators, scores, ranking, roll-ups, traceable
figures, appeals (申诉/免责) and exports. The one front door of the package:

    parse_period(settings, "2027-01" | "2027-H1" | "2027") -> Period   (month, 体检 half, year)
    assess(session, settings, period, now=) -> Assessment   ranked rows, city figures; a closed
        month read from the month cache (cache.py), its `to_keep` stored by keep_months
    department_row(session, settings, period, code) -> (DepartmentResult, computed at) | None
    department_portrait(session, settings, period, code) -> Portrait   the department page: trend, slowest
    indicator_rows(session, settings, period, department, code, limit=, offset=) -> [TracedRow]
        the drill-down, one department's rows, paged
    keep_months / request_recompute / invalidate_month / recompute_month / warm_up   the cache
    file_appeal / decide_appeal / list_appeals / get_appeal   申诉/免责
    to_csv(result) / to_xlsx(result) -> bytes   the report layout
    INDICATORS   code -> Indicator (label, kind, its definition as `doc`)
    score_config(settings)   config/defaults/assessment.yaml, checked
"""

from __future__ import annotations

from ticketing.assessment.appeals import (
    STATUS_LABELS as APPEAL_STATUS_LABELS,
)
from ticketing.assessment.appeals import (
    decide_appeal,
    file_appeal,
    get_appeal,
    list_appeals,
)
from ticketing.assessment.cache import CLOSE_GRACE, is_closed, request_recompute, warm_up
from ticketing.assessment.cache import invalidate as invalidate_month
from ticketing.assessment.cache import keep as keep_months
from ticketing.assessment.cache import recompute as recompute_month
from ticketing.assessment.export import headers as report_headers
from ticketing.assessment.export import table as report_table
from ticketing.assessment.export import to_csv, to_xlsx
from ticketing.assessment.indicators import COUNT, HOURS, INDICATORS, RATE, Indicator
from ticketing.assessment.models import AppealStatus, AssessmentAppeal, AssessmentMonthCache
from ticketing.assessment.periods import (
    Period,
    current_month_key,
    month_period,
    parse_period,
    previous_month_key,
    published_month,
)
from ticketing.assessment.portrait import Portrait, department_portrait
from ticketing.assessment.scoring import (
    Assessment,
    DepartmentResult,
    Figure,
    MonthFigures,
    assess,
    city_average,
    department_row,
    score_config,
)
from ticketing.assessment.tracing import TIMES, TracedRow, indicator_rows

__all__ = [
    "APPEAL_STATUS_LABELS",
    "CLOSE_GRACE",
    "COUNT",
    "HOURS",
    "INDICATORS",
    "RATE",
    "TIMES",
    "AppealStatus",
    "Assessment",
    "AssessmentAppeal",
    "AssessmentMonthCache",
    "DepartmentResult",
    "Figure",
    "Indicator",
    "MonthFigures",
    "Period",
    "Portrait",
    "TracedRow",
    "assess",
    "city_average",
    "current_month_key",
    "decide_appeal",
    "department_portrait",
    "department_row",
    "file_appeal",
    "get_appeal",
    "indicator_rows",
    "invalidate_month",
    "is_closed",
    "keep_months",
    "list_appeals",
    "month_period",
    "parse_period",
    "previous_month_key",
    "published_month",
    "recompute_month",
    "report_headers",
    "report_table",
    "request_recompute",
    "score_config",
    "to_csv",
    "to_xlsx",
    "warm_up",
]
