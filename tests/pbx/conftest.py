"""The live-PBX suite: skipped, with the reason, where no runnable Asterisk is available."""

from __future__ import annotations

import pytest

from tests.pbx.harness import asterisk_home, unusable_reason

_REASON: list[str | None] = []


def live_reason() -> str | None:
    if not _REASON:
        _REASON.append(unusable_reason(asterisk_home()))
    return _REASON[0]


def pytest_collection_modifyitems(config, items):
    mine = [i for i in items if "tests/pbx/" in str(i.fspath).replace("\\", "/")]
    if not mine:
        return
    reason = live_reason()
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=f"live PBX: {reason}"))
