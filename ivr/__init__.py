"""The IVR: one menu (config/ivr.yaml) served to Asterisk over FastAGI and to Twilio as TwiML.

Front door for other packages (lazy: `import ivr` loads neither FastAPI nor the AGI server):
    load_menu(settings) -> Menu                 the validated menu model
    load_business_hours(settings) -> BusinessHours   is_open(now) / next_opening(now)
    is_open(now), next_opening(now)             shortcuts on the configured calendar
    IvrEngine(menu, hours)                      the pure dialogue state machine both fronts use
    AgiServer(settings)                         the FastAGI listener (start / serve_forever / close)
    build_twilio_router(settings, db=engine)    FastAPI router with the TwiML webhooks
    SimulatedAsterisk, DEFAULT_AGI_ENV          res_agi's side of a call, for the demo
    cli_app                                     the `callcenter agi` commands
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgiServer": ("ivr.agi", "AgiServer"),
    "DialogState": ("ivr.engine", "DialogState"),
    "IvrEngine": ("ivr.engine", "IvrEngine"),
    "Turn": ("ivr.engine", "Turn"),
    "Menu": ("ivr.menu", "Menu"),
    "MenuOption": ("ivr.menu", "MenuOption"),
    "load_menu": ("ivr.menu", "load_menu"),
    "build_twilio_router": ("ivr.twiml", "build_router"),
    "SimulatedAsterisk": ("ivr.agi_sim", "SimulatedAsterisk"),
    "DEFAULT_AGI_ENV": ("ivr.agi_sim", "DEFAULT_ENV"),
    "cli_app": ("ivr.cli", "app"),
    "BusinessHours": ("ticketing", "BusinessHours"),
    "is_open": ("ticketing", "is_open"),
    "is_working_time": ("ticketing", "is_working_time"),
    "load_business_hours": ("ticketing", "load_business_hours"),
    "next_opening": ("ticketing", "next_opening"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)
