"""Keyword routing rules for standardised high-frequency matters (§10), read from routing.yaml.

A rule beats the classifier: when the text contains any of its keywords the ticket goes straight to
the rule's departments (in parallel). First matching rule wins, so keep rules narrow.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlmodel import Session

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.admin_settings import ROUTING, read_setting, stored_setting, write_setting
from ticketing.errors import InvalidInput


@dataclass(frozen=True)
class RoutingRule:
    name: str
    keywords: tuple[str, ...]
    departments: tuple[str, ...]
    hits: tuple[str, ...] = field(default=())  # keywords found in the text (set by match_rule)
    # the keywords as _norm folds them, once per rule (match_rule runs on every intake)
    folded: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", tuple(_norm(k) for k in self.keywords))


def _norm(text: str) -> str:
    """Full-width/half-width and case folded, so "ＥＩＡ" and "eia" match alike."""
    return unicodedata.normalize("NFKC", text).casefold()


def rules_data(settings: Settings) -> dict:
    """The rules the administrator stored (admin_setting "routing"), else routing.yaml's."""
    stored = read_setting(settings, ROUTING)
    return stored if isinstance(stored, dict) else load_yaml(settings, "routing.yaml")


def load_rules(settings: Settings) -> list[RoutingRule]:
    """All rules in order; a malformed rule is a ConfigError naming it (never silently skipped)."""
    data = rules_data(settings)
    held = _parsed.get(id(data))
    if held is not None and held[0] is data:  # the same parse of the same file: the same rules
        return list(held[1])
    rules = _parse(data)
    _parsed.clear()  # one file per deployment; a changed file replaces the old parse
    _parsed[id(data)] = (data, tuple(rules))
    return rules


# Per-process memo of the parsed rules, keyed by the loader's cached dict (which is replaced when
# the file changes, or by the stored setting's, replaced when its version changes): intake
# matches the rules on every ticket.
_parsed: dict[int, tuple[dict, tuple[RoutingRule, ...]]] = {}


def _parse(data: dict) -> list[RoutingRule]:
    raw = data.get("rules") or []
    if not isinstance(raw, list):
        raise ConfigError("routing.yaml: 'rules' must be a list")
    rules: list[RoutingRule] = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise ConfigError(f"routing.yaml: rule #{i + 1} must be a mapping")
        name = str(r.get("name") or f"rule-{i + 1}")
        kws = r.get("keywords")
        depts = r.get("departments")
        if not isinstance(kws, list) or not kws or not all(isinstance(k, str) and k for k in kws):
            raise ConfigError(f"routing.yaml: rule {name!r} needs a non-empty list of keywords")
        if not isinstance(depts, list) or not depts or not all(isinstance(d, str) for d in depts):
            raise ConfigError(f"routing.yaml: rule {name!r} needs a non-empty list of departments")
        rules.append(RoutingRule(name=name, keywords=tuple(kws), departments=tuple(depts)))
    return rules


def match_rule(settings: Settings, text: str) -> RoutingRule | None:
    """The first rule with a keyword in `text`, with every keyword of that rule that was hit."""
    t = _norm(text or "")
    if not t:
        return None
    for rule in load_rules(settings):
        hits = tuple(k for k, f in zip(rule.keywords, rule.folded, strict=True) if f in t)
        if hits:
            return RoutingRule(rule.name, rule.keywords, rule.departments, hits)
    return None


MAX_KEYWORDS = 60


def split_keywords(text: str) -> list[str]:
    """Keywords typed one per line or separated by commas / 、 / spaces; duplicates dropped."""
    out: list[str] = []
    for word in re.split(r"[\s,，、;；]+", text or ""):
        word = word.strip()
        if word and word not in out:
            if len(word) > 30:
                raise InvalidInput(f"关键词过长（最多30个字）：{word}", field="keywords")
            out.append(word)
    if len(out) > MAX_KEYWORDS:
        raise InvalidInput(f"每个部门最多{MAX_KEYWORDS}个关键词", field="keywords")
    return out


def department_keywords(settings: Settings) -> tuple[dict[str, list[str]], list[RoutingRule]]:
    """(code -> keywords of the rules routing to that department alone, the joint rules that
    name several departments): how the administrator's department page shows routing."""
    own: dict[str, list[str]] = {}
    joint: list[RoutingRule] = []
    for rule in load_rules(settings):
        if len(rule.departments) == 1:
            words = own.setdefault(rule.departments[0], [])
            words.extend(k for k in rule.keywords if k not in words)
        else:
            joint.append(rule)
    return own, joint


def set_department_keywords(
    session: Session, settings: Settings, code: str, keywords: list[str], by: str | None = None
) -> None:
    """Replace the single-department rules of `code` by one rule with `keywords` (none: no
    rule), in the first such rule's place; the first edit copies routing.yaml into the store."""
    data = stored_setting(session, ROUTING)
    if not isinstance(data, dict):
        data = {"rules": list(load_yaml(settings, "routing.yaml").get("rules") or [])}
    current: list[str] = []
    for r in data.get("rules") or []:
        if list(r.get("departments") or []) == [code]:
            current.extend(str(k) for k in r.get("keywords") or [] if str(k) not in current)
    if current == keywords:
        return  # unchanged: routing.yaml stays the source until someone edits keywords
    rules: list[dict] = []
    placed = False
    new = {"name": f"dept-{code}", "keywords": keywords, "departments": [code]}
    for r in data.get("rules") or []:
        if list(r.get("departments") or []) == [code]:
            if not placed and keywords:
                rules.append(new)
            placed = True
            continue
        rules.append(dict(r))
    if not placed and keywords:
        rules.append(new)
    _parse({"rules": rules})  # a malformed result is refused before it is stored
    write_setting(session, ROUTING, {"rules": rules}, by)


@dataclass(frozen=True)
class ConductMatch:
    """A conduct complaint (作风投诉): the keywords found and the office that takes it."""

    office: str
    hits: tuple[str, ...]


def match_conduct(settings: Settings, text: str) -> ConductMatch | None:
    """The conduct keywords (routing.yaml `conduct`) found in `text`, or None."""
    t = _norm(text or "")
    cfg = load_yaml(settings, "routing.yaml").get("conduct")
    if not t or not cfg:
        return None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("office"), str):
        raise ConfigError("routing.yaml: 'conduct' needs an office (a department code)")
    kws = cfg.get("keywords") or []
    if not isinstance(kws, list) or not all(isinstance(k, str) and k for k in kws):
        raise ConfigError("routing.yaml: conduct keywords must be a list of words")
    hits = tuple(k for k in kws if _norm(k) in t)
    return ConductMatch(cfg["office"], hits) if hits else None
