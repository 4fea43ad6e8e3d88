"""Settings and policy files: the bottom layer every other package imports."""

from config.database import make_engine, readonly, session_scope
from config.loader import ConfigError, load_yaml
from config.settings import Settings, get_settings

__all__ = [
    "ConfigError",
    "Settings",
    "get_settings",
    "load_yaml",
    "make_engine",
    "readonly",
    "session_scope",
]
