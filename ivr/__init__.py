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

from typing import TYPE_CHECKING

from config.lazy import lazy_exports

if TYPE_CHECKING:  # the names, typed; at run time read by lazy_exports (config/lazy.py)
    from ivr.agi import AgiServer
    from ivr.agi_sim import DEFAULT_ENV as DEFAULT_AGI_ENV
    from ivr.agi_sim import SimulatedAsterisk
    from ivr.cli import app as cli_app
    from ivr.engine import DialogState, IvrEngine, Turn
    from ivr.menu import Menu, MenuOption, load_menu
    from ivr.twiml import build_router as build_twilio_router
    from ticketing import (
        BusinessHours,
        is_open,
        is_working_time,
        load_business_hours,
        next_opening,
    )

# lazy: `import ivr` loads neither FastAPI nor the AGI server
if not TYPE_CHECKING:  # a checker sees the imports above, and no __getattr__ to hide typos
    __all__, __getattr__ = lazy_exports(__name__, __file__)
