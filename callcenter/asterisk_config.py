"""The deployment's Asterisk files, written from the project's settings (`callcenter asterisk
write-config`): AMI user/secret/port, the FastAGI address, the fallback business hours, the CDR
backend the bridge reads back, the voicemail PIN. Why: every value the PBX and the project share is
typed once (in the project's settings), never again in a .conf file by hand.

The shipped files in config/asterisk are the templates; only the lines named below are rewritten,
everything else (comments included) is copied as is. cdr_custom.conf is checked, not filled: it must
write the columns callcenter/ami/reconcile.py reads (check_cdr_template).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from callcenter.ami.reconcile import COLUMNS as CDR_COLUMNS
from config.settings import AsteriskServer, Settings

TEMPLATES = Path(__file__).resolve().parents[1] / "config" / "asterisk"
FILES = (
    "extensions.conf",
    "manager.conf",
    "queues.conf",
    "voicemail.conf",
    "cdr.conf",
    "cdr_custom.conf",
)
CDR_FILE = "dxe.csv"  # cdr_custom.conf section [dxe.csv]: <astlogdir>/cdr-custom/dxe.csv
CDR_TIMES = ("start", "answer", "end")  # reconcile reads them as numbers: epoch seconds (int64)
# the CDR's own fields as res_cdrel_custom names them (res/cdrel_custom/registry.c); any other
# column is a variable the dialplan set with Set(CDR(name)=...)
# fmt: off
CDR_BUILTIN = frozenset({
    "clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "start",
    "answer", "end", "duration", "billsec", "disposition", "amaflags", "accountcode",
    "peeraccount", "flags", "uniqueid", "linkedid", "tenantid", "peertenantid", "userfield",
    "sequence",
})
# fmt: on


class AsteriskConfigError(ValueError):
    """A setting the PBX files need is missing or unusable; the message names the setting."""


@dataclass(frozen=True)
class Written:
    path: Path
    changed: tuple[str, ...]


def _server(settings: Settings, name: str | None) -> tuple[int, AsteriskServer]:
    for i, s in enumerate(settings.asterisk):
        if name is None or s.name == name:
            return i, s
    raise AsteriskConfigError(f"no Asterisk named {name!r} in CALLCENTER_ASTERISK")


def fallback_hours(settings: Settings) -> str:
    """DXE_FALLBACK_HOURS (used only while the AGI is unreachable): first opening → last closing."""
    path = settings.config_dir / "business_hours.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        periods = data.get("periods") or []
        return f"{periods[0][0]}-{periods[-1][1]}"
    except (OSError, IndexError, TypeError, yaml.YAMLError):
        return "08:30-17:30"


def cdr_fields(text: str) -> dict[str, dict[str, str]]:
    """cdr_custom.conf as Asterisk 22.10's res_cdrel_custom reads it: section → its `key = value`
    lines (`;` starts a comment). The `fields` of section CDR_FILE are the CSV's columns."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and "]" in line:
            current = sections.setdefault(line[1 : line.index("]")].strip(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), value.lstrip(">").strip())
    return sections


def cdr_columns(text: str) -> list[tuple[str, set[str]]]:
    """(column name, its qualifiers) in the order cdr_custom.conf's [dxe.csv] writes them:
    `start(int64^quote)` → ("start", {"int64", "quote"}). Names and qualifiers are case-blind."""
    fields = cdr_fields(text).get(CDR_FILE, {}).get("fields", "")
    out = []
    for spec in (f.strip() for f in fields.split(",") if f.strip()):
        name, _, qual = spec.partition("(")
        quals = {q.strip().lower() for q in qual.rstrip(")").split("^") if q.strip()}
        out.append((name.strip().lower(), quals))
    return out


def check_cdr_template(text: str) -> None:
    """Raise AsteriskConfigError unless cdr_custom.conf writes what callcenter/ami/reconcile.py
    reads: the columns of reconcile.COLUMNS in that order, times as epoch seconds, CDR variables
    marked uservar (22.10 drops the whole file for an unknown field name) and no legacy
    [mappings] (22.10 turned its "${CDR(x)}" fields into unknown names: no file at all)."""
    sections = cdr_fields(text)
    if "mappings" in sections:
        raise AsteriskConfigError(
            "cdr_custom.conf: legacy [mappings] section; Asterisk 22.10 needs the advanced "
            f"[{CDR_FILE}] section with `fields = ...` (see the shipped file)"
        )
    cols = cdr_columns(text)
    names = tuple(n for n, _ in cols)
    if names != CDR_COLUMNS:
        raise AsteriskConfigError(
            f"cdr_custom.conf [{CDR_FILE}] fields {list(names)} differ from the columns "
            f"reconcile reads {list(CDR_COLUMNS)}"
        )
    for name, quals in cols:
        if name in CDR_TIMES and "int64" not in quals:
            raise AsteriskConfigError(
                f"cdr_custom.conf: write {name}(int64) (epoch seconds: reconcile reads numbers)"
            )
        if name not in CDR_BUILTIN and "uservar" not in quals:
            raise AsteriskConfigError(
                f"cdr_custom.conf: {name} is a CDR variable the dialplan sets: {name}(uservar)"
            )


def _sub(text: str, pattern: str, repl: str, what: str, changed: list[str]) -> str:
    new, n = re.subn(pattern, lambda _m: repl, text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise AsteriskConfigError(f"template line for {what} not found ({pattern!r})")
    changed.append(what)
    return new


def render(
    settings: Settings, server: str | None = None, *, templates: Path = TEMPLATES
) -> dict[str, tuple[str, list[str]]]:
    """file name → (text, names of the values filled in). Raises AsteriskConfigError."""
    idx, srv = _server(settings, server)
    secret = srv.secret.get_secret_value()
    if not secret or secret.startswith("REPLACE-ME"):
        raise AsteriskConfigError(
            f"AMI secret of {srv.name} is not set: fill CALLCENTER_ASTERISK__{idx}__SECRET "
            "(e.g. `openssl rand -hex 24`)"
        )
    pin = srv.voicemail_pin.get_secret_value()
    if not pin.isdigit():
        raise AsteriskConfigError(
            f"voicemail PIN of {srv.name} is not set (or not digits): fill "
            f"CALLCENTER_ASTERISK__{idx}__VOICEMAIL_PIN"
        )
    agi_host = settings.agi_host if settings.agi_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    out: dict[str, tuple[str, list[str]]] = {}
    for name in FILES:
        text = (templates / name).read_text(encoding="utf-8")
        changed: list[str] = []
        if name == "extensions.conf":
            text = _sub(
                text,
                r"^DXE_AGI = .*$",
                f"DXE_AGI = agi://{agi_host}:{settings.agi_port}/ivr",
                "DXE_AGI",
                changed,
            )
            text = _sub(
                text,
                r"^DXE_FALLBACK_HOURS = .*$",
                f"DXE_FALLBACK_HOURS = {fallback_hours(settings)}",
                "DXE_FALLBACK_HOURS",
                changed,
            )
        elif name == "manager.conf":
            text = _sub(text, r"^port = \d+", f"port = {srv.port}", "AMI port", changed)
            text = _sub(text, r"^\[callcenter\]", f"[{srv.username}]", "AMI user", changed)
            text = _sub(text, r"^secret = .*$", f"secret = {secret}", "AMI secret", changed)
        elif name == "cdr_custom.conf":
            check_cdr_template(text)
        elif name == "voicemail.conf":
            text = _sub(text, r"^12345 => [^,]*,", f"12345 => {pin},", "voicemail PIN", changed)
        out[name] = (text, changed)
    return out


def write_config(settings: Settings, out_dir: Path, server: str | None = None) -> list[Written]:
    """Write the rendered files into out_dir (created; secrets inside: mode 0600)."""
    files = render(settings, server)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (text, changed) in files.items():
        p = out_dir / name
        p.write_text(text, encoding="utf-8")
        if name in ("manager.conf", "voicemail.conf"):
            p.chmod(0o600)
        written.append(Written(p, tuple(changed)))
    return written


def cdr_csv_path(server: AsteriskServer) -> Path | None:
    """Where this PBX's CDR CSV is readable here (None: no CDR reconcile for this PBX)."""
    if server.cdr_dir is None:
        return None
    return Path(server.cdr_dir) / CDR_FILE
