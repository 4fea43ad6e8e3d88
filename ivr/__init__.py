"""The IVR: one menu (config/ivr.yaml) served to Asterisk over FastAGI and to Twilio as TwiML.

Front door for other packages:
    load_menu(settings) -> Menu                 the validated menu model
    load_business_hours(settings) -> BusinessHours   is_open(now) / next_opening(now)
    is_open(now), next_opening(now)             shortcuts on the configured calendar
    IvrEngine(menu, hours)                      the pure dialogue state machine both fronts use
    AgiServer(settings)                         the FastAGI listener (start / serve_forever / close)
    build_twilio_router(settings, db=engine)    FastAPI router with the TwiML webhooks
"""

from ivr.agi import AgiServer
from ivr.engine import DialogState, IvrEngine, Turn
from ivr.menu import Menu, MenuOption, load_menu
from ivr.twiml import build_router as build_twilio_router
from ticketing import BusinessHours, is_open, is_working_time, load_business_hours, next_opening

__all__ = [
    "AgiServer",
    "BusinessHours",
    "DialogState",
    "IvrEngine",
    "Menu",
    "MenuOption",
    "Turn",
    "build_twilio_router",
    "is_open",
    "is_working_time",
    "load_business_hours",
    "load_menu",
    "next_opening",
]
