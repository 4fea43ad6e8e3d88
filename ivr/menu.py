"""The one IVR menu model, loaded from config/ivr.yaml and validated once.

Both fronts (FastAGI and TwiML) read the same Menu, so a prompt, an option or a retry limit changes
in one file for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.loader import ConfigError, load_yaml
from config.settings import Settings, get_settings

CATEGORIES = ("enterprise", "government", "complaint")  # ticketing.models.Category values
REQUIRED_PROMPTS = (
    "welcome",
    "invalid",
    "no_input",
    "transfer",
    "to_operator",
    "goodbye",
    "closed",
    "busy",
    "recorded",
)
VALID_KEYS = frozenset("0123456789*#")


@dataclass(frozen=True)
class PromptDef:
    name: str
    file: str  # Asterisk sound name, e.g. dxe/welcome
    text: str  # Chinese text; may contain {label} / {callback}


@dataclass(frozen=True)
class MenuOption:
    key: str
    code: str  # enterprise | government | complaint | policy | operator
    label: str  # 企业服务 …
    category: str | None  # ticket category, None = let the classifier decide
    queue: str


@dataclass(frozen=True)
class Menu:
    language: str
    timeout_seconds: int
    max_tries: int
    on_exhausted: str  # operator | hangup
    options: dict[str, MenuOption]
    operator_key: str
    prompts: dict[str, PromptDef]
    voicemail_max_seconds: int
    voicemail_mailbox: str
    agi: dict[str, Any]
    twilio: dict[str, Any]

    @property
    def operator(self) -> MenuOption:
        return self.options[self.operator_key]

    def queues(self) -> dict[str, str | None]:
        """queue name -> category (None for the general queue); the bridge maps queues with it."""
        out: dict[str, str | None] = {}
        for opt in self.options.values():
            out.setdefault(opt.queue, opt.category)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Menu:
        def fail(msg: str) -> ConfigError:
            return ConfigError(f"ivr.yaml: {msg}")

        m = data.get("menu")
        if not isinstance(m, dict):
            raise fail("missing 'menu' mapping")
        options: dict[str, MenuOption] = {}
        for i, o in enumerate(m.get("options") or []):
            if not isinstance(o, dict):
                raise fail(f"menu.options[{i}]: expected a mapping")
            key = str(o.get("key", ""))
            if len(key) != 1 or key not in VALID_KEYS:
                raise fail(f"menu.options[{i}]: key must be one of 0-9 * #, got {key!r}")
            if key in options:
                raise fail(f"menu.options[{i}]: duplicate key {key!r}")
            category = o.get("category")
            if category is not None and category not in CATEGORIES:
                raise fail(f"menu.options[{i}]: unknown category {category!r}")
            for req in ("code", "label", "queue"):
                if not o.get(req):
                    raise fail(f"menu.options[{i}]: '{req}' is required")
            options[key] = MenuOption(
                key=key,
                code=str(o["code"]),
                label=str(o["label"]),
                category=category,
                queue=str(o["queue"]),
            )
        if not options:
            raise fail("menu.options is empty")
        operator_key = str(m.get("operator_key", "0"))
        if operator_key not in options:
            raise fail(f"menu.operator_key {operator_key!r} is not an option")
        on_exhausted = str(m.get("on_exhausted", "operator"))
        if on_exhausted not in ("operator", "hangup"):
            raise fail("menu.on_exhausted must be 'operator' or 'hangup'")
        try:
            timeout = int(m.get("timeout_seconds", 8))
            tries = int(m.get("max_tries", 3))
        except (TypeError, ValueError) as e:
            raise fail(f"menu timeouts: {e}") from e
        if not 1 <= timeout <= 60 or not 1 <= tries <= 9:
            raise fail("menu.timeout_seconds must be 1-60 and max_tries 1-9")

        prompts: dict[str, PromptDef] = {}
        for name, p in (data.get("prompts") or {}).items():
            if not isinstance(p, dict) or not p.get("file") or not p.get("text"):
                raise fail(f"prompts.{name}: needs 'file' and 'text'")
            prompts[name] = PromptDef(name=name, file=str(p["file"]), text=str(p["text"]))
        missing = [n for n in REQUIRED_PROMPTS if n not in prompts]
        if missing:
            raise fail(f"prompts missing: {', '.join(missing)}")

        vm = data.get("voicemail") or {}
        return cls(
            language=str(data.get("language", "zh-CN")),
            timeout_seconds=timeout,
            max_tries=tries,
            on_exhausted=on_exhausted,
            options=options,
            operator_key=operator_key,
            prompts=prompts,
            voicemail_max_seconds=int(vm.get("max_seconds", 180)),
            voicemail_mailbox=str(vm.get("mailbox", "12345@dianxiaoer")),
            agi=dict(data.get("agi") or {}),
            twilio=dict(data.get("twilio") or {}),
        )


def load_menu(settings: Settings | None = None) -> Menu:
    return Menu.from_dict(load_yaml(settings or get_settings(), "ivr.yaml"))
