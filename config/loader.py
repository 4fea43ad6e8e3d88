"""Read the YAML policy files (departments, categories, routing, SLA, notices, IVR, hours)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings


class ConfigError(ValueError):
    """A config file is missing or malformed; the message names the file and the problem."""


@lru_cache(maxsize=64)
def _read(path: str, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_yaml(settings: Settings, name: str) -> dict[str, Any]:
    """Parsed YAML (cached until the file changes on disk)."""
    path = settings.config_file(name)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    return _read(str(path), path.stat().st_mtime)
