"""`callcenter demo`'s inputs: the captured AMI traffic (fixtures), its scenarios, the keys its
callers pressed, and the PBX-side files laid out as a spool. No database, no terminal."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


class DemoError(Exception):
    """Bad options (unknown scenario, no fixtures); shown to the user, exit code 2."""


def find_fixtures(explicit: Path | None = None) -> Path:
    """--fixtures, else $CALLCENTER_SHARED_DIR/fixtures/ami, else ../shared/fixtures/ami beside
    the repository (the same lookup as the tests' conftest and `bridge simulate`)."""
    if explicit is not None:
        candidates = [explicit]
    else:
        candidates = []
        if os.environ.get("CALLCENTER_SHARED_DIR"):
            candidates.append(Path(os.environ["CALLCENTER_SHARED_DIR"]) / "fixtures" / "ami")
        candidates.append(Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ami")
        candidates.append(Path("../shared/fixtures/ami"))
    for c in candidates:
        if (c / "actions-status.jsonl").is_file():
            return c.resolve()
    raise DemoError(
        f"no AMI captures found in {', '.join(str(c) for c in candidates)} "
        "(use --fixtures DIR or CALLCENTER_SHARED_DIR)"
    )


def scenario_names(given: list[str], fixtures: Path) -> list[str]:
    """'answered' or 'scenario-answered' → 'scenario-answered'; unknown names are an error."""
    out = []
    for name in given:
        full = name if name.startswith("scenario-") else f"scenario-{name}"
        if not (fixtures / f"{full}.jsonl").is_file():
            known = sorted(
                p.name.removesuffix(".jsonl").removeprefix("scenario-")
                for p in fixtures.glob("scenario-*.jsonl")
                if not p.name.endswith(".agi.jsonl")
            )
            raise DemoError(f"unknown scenario {name!r}; known: {', '.join(known)}")
        out.append(full)
    return out


def captured_ivr_keys(fixtures: Path, scenario: str) -> list[str]:
    """The menu keys the captured caller pressed (DxeIvrChoice user events), in order."""
    path = fixtures / f"{scenario}.ami"
    if not path.exists():
        path = fixtures / f"{scenario}.conn1.ami"
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")  # keep the \r\n frame endings
    return re.findall(r"UserEvent: DxeIvrChoice\r\n(?:[^\r\n]+\r\n)*?Choice: (\d)", text)


def demo_spool(fixtures: Path, spool: Path, now: float) -> None:
    """The files Asterisk wrote for the captured calls (pbx-side/), laid out as a PBX spool, so
    the simulated calls pick up their recording and voicemail like real ones. The voicemail's
    origtime is set to now: the replayed call happens now, and the message is matched to its
    call by channel and time."""
    src = fixtures / "pbx-side"
    if not src.is_dir():
        return
    (spool / "monitor").mkdir(parents=True, exist_ok=True)
    for wav in (src / "monitor").glob("*.wav"):
        shutil.copyfile(wav, spool / "monitor" / wav.name)
    box = spool / "voicemail" / "dianxiaoer" / "12345" / "INBOX"
    box.mkdir(parents=True, exist_ok=True)
    for txt in (src / "voicemail").glob("msg*.txt"):
        body = re.sub(r"(?m)^origtime=\d+", f"origtime={int(now)}", txt.read_text("utf-8"))
        shutil.copyfile(txt.with_suffix(".wav"), box / txt.with_suffix(".wav").name)
        (box / txt.name).write_text(body, encoding="utf-8")
