"""§13 warnings kept current on a schedule: the scheduler's entry points.

The levels, clocks and the incremental scan live in ticketing.sla_levels / sla_clocks / sla_scan;
this module keeps the names the scheduler and the front door use. `scan_warnings` runs one
incremental round (only rows whose level can have changed) and the §15 follow-up round
(reminders, 默认满意). Each level change is one "warning" event (from, to, step, reasons); the
list filter `warning=`, the boards and the monthly assessment read the stored level, so it must
not wait for someone to open the ticket. A resolved or closed ticket keeps the level it reached.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from config.loader import load_yaml
from config.settings import Settings
from ticketing.models import utcnow
from ticketing.sla_levels import SEVERITY
from ticketing.sla_scan import ScanResult, scan_round

__all__ = ["SEVERITY", "ScanResult", "scan_warnings", "warning_scan_interval"]


def warning_scan_interval(settings: Settings) -> int:
    sla = load_yaml(settings, "sla.yaml") or {}
    cfg = sla.get("escalation") or sla.get("warnings") or {}
    return max(10, int(cfg.get("scan_interval_s", 60)))


def scan_warnings(
    session: Session, settings: Settings, *, now: datetime | None = None, batch: int = 1000
) -> ScanResult:
    """One incremental round of the §13 scan plus the §15 follow-up round."""
    from ticketing.followup import followup_round

    now = now or utcnow()
    result = scan_round(session, settings, now=now, batch=batch)
    result.followup = followup_round(session, settings, now)
    return result
