"""高频事项分析 (plan §19): the front door of the hotspot analysis.

    hotspot_report(session, settings, HotspotQuery) -> HotspotReport   the month's top categories,
        departments and keywords with their trends, the rising topics, department × category
    hotspot_tickets(session, settings, HotspotQuery, keyword=, department=) -> (total, [Ticket])
    index_pending / index_all / run_hotspot_index (the scheduler's job) / index_transcript (the
        ASR job): each ticket's keywords, stored once (ticket_keyword)
    this_month, shift_month, month_bounds: Asia/Shanghai months (settings.timezone)

Re-exported by `ticketing`; other packages import from there.
"""

from ticketing.hotspots.index import (
    index_all,
    index_pending,
    index_transcript,
    run_hotspot_index,
    text_keywords,
    ticket_keywords,
    unindexed_count,
)
from ticketing.hotspots.report import (
    MONTH_PATTERN,
    HotspotQuery,
    HotspotReport,
    MonthFigures,
    RisingRule,
    Topic,
    compute_month,
    hotspot_report,
    hotspot_tickets,
    month_bounds,
    refresh_cache,
    rise_score,
    save_months,
    shift_month,
    this_month,
)

__all__ = [
    "MONTH_PATTERN",
    "HotspotQuery",
    "HotspotReport",
    "MonthFigures",
    "RisingRule",
    "Topic",
    "compute_month",
    "hotspot_report",
    "hotspot_tickets",
    "index_all",
    "index_pending",
    "index_transcript",
    "month_bounds",
    "refresh_cache",
    "rise_score",
    "run_hotspot_index",
    "save_months",
    "shift_month",
    "text_keywords",
    "this_month",
    "ticket_keywords",
    "unindexed_count",
]
