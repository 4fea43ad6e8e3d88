"""Helpers of the e2e tests (a plain module: conftest modules cannot be imported by name when
the whole suite is collected)."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def shot(page, name: str) -> None:
    """A screenshot of the page as the user sees it (1366x768), for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
