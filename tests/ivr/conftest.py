"""IVR test fixtures: the default menu + calendar."""

from __future__ import annotations

import pytest

from config.settings import Settings
from ivr.engine import IvrEngine
from ivr.menu import load_menu
from ticketing.hours import load_business_hours


@pytest.fixture
def ivr_engine() -> IvrEngine:
    s = Settings()
    return IvrEngine(load_menu(s), load_business_hours(s))
