"""What Asterisk tells us about the files it writes: voicemail msgNNNN.txt and MixMonitor names.

The dialplan names MixMonitor files `dxe-<yyyymmdd-hhmmss Asia/Shanghai>-<callerid>-<uniqueid>.wav`
(MONITOR_FILENAME in extensions.conf); app_voicemail writes msgNNNN.wav beside msgNNNN.txt, an INI
file with callerid, origtime (epoch), duration and msg_id.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

_MONITOR_RE = re.compile(
    r"^dxe-(?P<date>\d{8})-(?P<time>\d{6})-(?P<caller>[^-]*)-(?P<uniqueid>\d+\.\d+)\.(?:wav|WAV)$"
)
_CALLERID_RE = re.compile(r'^\s*(?:"(?P<name>[^"]*)"\s*)?<(?P<num>[^>]*)>\s*$')


@dataclass
class PbxFile:
    """Metadata recovered from the PBX side; every field may be missing."""

    call_id: str | None = None
    caller_number: str | None = None
    caller_name: str | None = None
    made_at: datetime | None = None  # naive UTC
    duration_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def parse_monitor_name(path: str | Path, tz: str = "Asia/Shanghai") -> PbxFile:
    m = _MONITOR_RE.match(Path(path).name)
    if not m:
        return PbxFile()
    local = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo(tz))
    return PbxFile(
        call_id=m["uniqueid"],
        caller_number=m["caller"] or None,
        made_at=local.astimezone(UTC).replace(tzinfo=None),
    )


def parse_voicemail_txt(path: str | Path) -> PbxFile:
    """Read app_voicemail's msgNNNN.txt (UTF-8; Chinese caller names are common)."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read_string(Path(path).read_text(encoding="utf-8", errors="replace"))
    if not cp.has_section("message"):
        return PbxFile()
    msg = dict(cp["message"])
    out = PbxFile(extra={k: v for k, v in msg.items() if v})
    cm = _CALLERID_RE.match(msg.get("callerid", ""))
    if cm:
        out.caller_name = (cm["name"] or "").strip() or None
        out.caller_number = (cm["num"] or "").strip() or None
    elif msg.get("callerid"):
        out.caller_number = msg["callerid"].strip()
    if msg.get("origtime", "").isdigit():
        out.made_at = datetime.fromtimestamp(int(msg["origtime"]), UTC).replace(tzinfo=None)
    if msg.get("duration", "").isdigit():
        out.duration_s = float(msg["duration"])
    # The call's Uniqueid is not in the file; msg_id is unique per mailbox and stable.
    out.call_id = msg.get("msg_id") or None
    return out
