"""config/asterisk/manager.conf grants exactly what the bridge sends: every AMI action the code
uses is allowed by the shipped `write =` classes, and no class is granted that no action needs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from callcenter.bridge import RESYNC_ACTIONS

ROOT = Path(__file__).resolve().parents[2]
# Asterisk 22's privilege classes per action (`manager show command <Action>`, "Privilege:");
# an empty set means the action needs no class. Asterisk allows an action when the user holds
# ANY of its classes.
ASTERISK_CLASSES: dict[str, set[str]] = {
    "Login": set(),
    "Logoff": set(),
    "Ping": set(),
    "QueueStatus": set(),
    "QueueSummary": set(),
    "Getvar": {"call", "reporting"},
    "Setvar": {"call"},
    "Status": {"system", "call", "reporting"},
    "Hangup": {"system", "call"},
    "Redirect": {"call"},
    "BlindTransfer": {"call"},
    "Originate": {"originate"},
    "CoreShowChannels": {"system", "reporting"},
    "QueueAdd": {"agent"},
    "QueueRemove": {"agent"},
    "QueuePause": {"agent"},
    "QueuePenalty": {"agent"},
}


def actions_sent() -> set[str]:
    """Every `{"Action": "X", ...}` literal in the bridge's code, plus the resync actions."""
    found = set(RESYNC_ACTIONS)
    for path in (ROOT / "callcenter").rglob("*.py"):
        if path.name == "replay.py":  # the simulated Asterisk answers actions; it sends none
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(k, ast.Constant)
                        and k.value == "Action"
                        and isinstance(v, ast.Constant)
                        and isinstance(v.value, str)
                    ):
                        found.add(v.value)
    return found


def granted() -> set[str]:
    text = (ROOT / "config" / "asterisk" / "manager.conf").read_text(encoding="utf-8")
    (line,) = re.findall(r"^write\s*=\s*(.+)$", text, re.M)
    return {c.strip() for c in line.split(";")[0].split(",") if c.strip()}


def test_the_code_sends_the_supervisor_and_console_actions():
    sent = actions_sent()
    assert {"Originate", "QueueAdd", "QueueRemove", "QueuePause", "Redirect"} <= sent
    assert set(RESYNC_ACTIONS) <= sent


def test_every_action_sent_is_allowed_and_every_class_granted_is_needed():
    sent, write = actions_sent(), granted()
    unknown = sent - set(ASTERISK_CLASSES)
    assert not unknown, f"add the Asterisk privilege classes of {sorted(unknown)} to this test"
    refused = sorted(a for a in sent if ASTERISK_CLASSES[a] and not ASTERISK_CLASSES[a] & write)
    assert not refused, f"manager.conf write= does not allow {refused}"
    for cls in write:
        needs = [a for a in sent if ASTERISK_CLASSES[a] and ASTERISK_CLASSES[a] & write == {cls}]
        assert needs, f"manager.conf grants write class {cls!r}, which no action sent needs"


def test_spy_dialplan_has_every_mode_the_bridge_originates():
    from callcenter.commands import SPY_CONTEXT, SPY_MODES

    text = (ROOT / "config" / "asterisk" / "extensions.conf").read_text(encoding="utf-8")
    section = text.split(f"[{SPY_CONTEXT}]", 1)[1].split("\n[", 1)[0]
    for mode, option in SPY_MODES.items():
        (opts,) = re.findall(rf"exten => {mode},1,ChanSpy\(\$\{{SPY_TARGET\}},(\w+)\)", section)
        assert option in opts
