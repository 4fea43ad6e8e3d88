"""Read the YAML policy files (departments, categories, routing, SLA, notices, IVR, hours)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from config.settings import DEFAULTS_DIR, Settings


class ConfigError(ValueError):
    """A config file is missing or malformed; the message names the file and the problem."""


@lru_cache(maxsize=64)
def _read(path: str, mtime: int) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_yaml(settings: Settings, name: str) -> dict[str, Any]:
    """Parsed YAML (cached until the file changes on disk).

    The policy files are read on every intake (SLA, routing, thresholds, hand-off URLs), so this
    costs one os.stat of a prepared path: the file in config_dir, else the bundled default
    (Settings.config_file's rule)."""
    for path in _candidates(settings.config_dir, name):
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            continue
        return _read(path, mtime)
    raise ConfigError(f"config file not found: {settings.config_file(name)}")


@lru_cache(maxsize=256)
def _candidates(config_dir: Path, name: str) -> tuple[str, ...]:
    return (str(config_dir / name), str(DEFAULTS_DIR / name))
