"""IVR test fixtures: the default menu + calendar."""

from __future__ import annotations

import pytest

from config.settings import Settings
from ivr.engine import IvrEngine
from ivr.hours import load_business_hours
from ivr.menu import load_menu


@pytest.fixture
def ivr_engine() -> IvrEngine:
    s = Settings()
    return IvrEngine(load_menu(s), load_business_hours(s))
