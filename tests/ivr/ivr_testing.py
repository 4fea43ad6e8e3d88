"""Fixed instants in and out of business hours (Asia/Shanghai) shared by the IVR tests."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")
OPEN = datetime(2026, 11, 25, 10, 0, tzinfo=SH)  # Wednesday 10:00
CLOSED = datetime(2026, 11, 25, 20, 0, tzinfo=SH)  # Wednesday 20:00

_SHARED = Path(__file__).resolve().parents[3] / "shared"
if not _SHARED.exists():  # same fallback as tests/conftest.py
    _SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
FIXTURES = _SHARED / "fixtures"
