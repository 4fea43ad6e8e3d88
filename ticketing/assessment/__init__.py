"""Monthly department assessment (§16–17): indicators, scores, ranking, roll-ups, traceable
figures, appeals (申诉/免责) and exports. The one front door of the package:

    parse_period(settings, "2027-01" | "2027-H1" | "2027") -> Period   (month, 体检 half, year)
    assess(session, settings, period) -> Assessment   ranked DepartmentResult rows, city figures
    indicator_rows(session, settings, period, department, code) -> [TracedRow]   the drill-down
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
from ticketing.assessment.export import headers as report_headers
from ticketing.assessment.export import table as report_table
from ticketing.assessment.export import to_csv, to_xlsx
from ticketing.assessment.indicators import COUNT, HOURS, INDICATORS, RATE, Indicator
from ticketing.assessment.models import AppealStatus, AssessmentAppeal
from ticketing.assessment.periods import (
    Period,
    current_month_key,
    month_period,
    parse_period,
    previous_month_key,
)
from ticketing.assessment.scoring import (
    Assessment,
    DepartmentResult,
    Figure,
    assess,
    city_average,
    score_config,
)
from ticketing.assessment.tracing import TIMES, TracedRow, indicator_rows

__all__ = [
    "APPEAL_STATUS_LABELS",
    "COUNT",
    "HOURS",
    "INDICATORS",
    "RATE",
    "TIMES",
    "AppealStatus",
    "Assessment",
    "AssessmentAppeal",
    "DepartmentResult",
    "Figure",
    "Indicator",
    "Period",
    "TracedRow",
    "assess",
    "city_average",
    "current_month_key",
    "decide_appeal",
    "file_appeal",
    "get_appeal",
    "indicator_rows",
    "list_appeals",
    "month_period",
    "parse_period",
    "previous_month_key",
    "report_headers",
    "report_table",
    "score_config",
    "to_csv",
    "to_xlsx",
]
