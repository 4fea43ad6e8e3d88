"""Urgency signals (plan §13, 12345 practice) found by patterns in a ticket's text.

Why: the urgency model learns from a thousand hand-written tickets, and on text written by someone
else it missed more than half of the critical (紧要) matters: the words that make a matter critical
(a plant stopped, a leak, a crowd at the gate, a threat, an investor leaving, a post going viral)
take many forms the training set never shows. The signals name those forms once, in
ticketing/data/urgency_signals.yaml, and the classifier uses them twice: as features of the urgency
model and as a floor under its decision (ticketing/classifier.py). Patterns are data, not code, so
the city's operators can add a wording without touching the model code (the model retrains on the
next start, as it does when labelled.csv changes).

Detection is a handful of compiled regular expressions over a few hundred characters: tens of
microseconds per ticket, cheap next to the model.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SIGNALS_PATH = Path(__file__).resolve().parent / "data" / "urgency_signals.yaml"
# "resolved": the matter is over (repaired, paid, thanked for): a cap, not a lift (see resolved())
# "enquiry": the text asks how, why or whether (a procedure, a policy, a price): a cap on 较紧急
# when nothing pressing is found (see enquiry())
# "calm": the text says a post or matter draws little attention (热度一般, 跟帖不多): no 紧要
# from the model's words alone (see calm())
LEVELS = ("urgent", "critical", "resolved", "enquiry", "calm")

_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "几": 3,
    "数": 3,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
# a number of people, households, enterprises or places: "两百多号人", "300余名职工", "十几家企业",
# "八百户", "三个村"
_COUNT = re.compile(
    r"([0-9]+|[零一二两三四五六七八九十百千万几数]+)(?:多|余|来|几)?(?:名|个|位|号)?"
    r"(人|工人|员工|职工|农民工|工友|业主|村民|居民|群众|住户|学生|家长|游客|会员|孩子|儿童|户|家企业|家厂|家公司|村|小区|社区|乡镇|镇)"
)

_PLACES = frozenset({"村", "小区", "社区", "乡镇", "镇"})


def chinese_number(s: str) -> int:
    """Value of a number written in digits or Chinese numerals, "几"/"数" read as 3
    ("几十" 30, "十几" 13, "上百" is passed as "百" = 100). 0 when it is not a number."""
    if s.isdigit():
        return int(s)
    total = cur = 0
    for ch in s:
        if ch in _CN_DIGITS:
            cur = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            unit = _CN_UNITS[ch]
            if unit == 10000:
                total = (total + cur) * unit
            else:
                total += (cur or 1) * unit
            cur = 0
        else:
            return 0
    return total + cur


@dataclass(frozen=True)
class Signal:
    name: str
    level: str  # "urgent", "critical" or "resolved"
    strong: bool  # one is enough to lift a prediction to critical
    weak: bool  # a critical signal that backs only a higher P(紧要) on its own (see backing())
    lift: bool  # an urgent-level signal that alone lifts 一般 to 较紧急 (see lifting())
    cap: bool  # an urgent-level signal that keeps the model alone from 紧要 (see pending())
    patterns: re.Pattern[str]
    unless: re.Pattern[str] | None


def _fold(text: str) -> str:
    """NFKC and lower case; digits kept (counts matter here, unlike for the n-grams)."""
    return unicodedata.normalize("NFKC", text).lower()


class SignalSet:
    """The signals of one YAML file, in file order (the order of the feature columns)."""

    def __init__(self, spec: dict[str, Any], digest: str = "") -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("signals"), dict):
            raise ValueError("urgency signals: expected a mapping with a 'signals' mapping")
        self.digest = digest or "adhoc"
        self.people_threshold = int(spec.get("many_people_threshold", 50))
        self.households_threshold = int(spec.get("many_households_threshold", 30))
        signals: list[Signal] = []
        for name, body in spec["signals"].items():
            if not isinstance(body, dict):
                raise ValueError(f"urgency signal {name}: expected a mapping")
            level = body.get("level")
            if level not in LEVELS:
                raise ValueError(f"urgency signal {name}: level must be one of {LEVELS}")
            pats = body.get("patterns") or []
            if not isinstance(pats, list) or not all(isinstance(p, str) and p for p in pats):
                raise ValueError(f"urgency signal {name}: patterns must be a list of strings")
            if body.get("lift") and level != "urgent":
                raise ValueError(f"urgency signal {name}: only an urgent signal can lift")
            if body.get("cap") and level != "urgent":
                raise ValueError(f"urgency signal {name}: only an urgent signal can cap")
            if body.get("weak") and (level != "critical" or body.get("strong")):
                raise ValueError(
                    f"urgency signal {name}: only a critical, not strong signal is weak"
                )
            unless = body.get("unless") or []
            try:
                compiled = re.compile("|".join(f"(?:{p})" for p in pats)) if pats else None
                cancel = re.compile("|".join(f"(?:{p})" for p in unless)) if unless else None
            except re.error as e:
                raise ValueError(f"urgency signal {name}: bad pattern: {e}") from e
            if compiled is None and name != "many_affected":
                raise ValueError(f"urgency signal {name}: no patterns")
            signals.append(
                Signal(
                    str(name),
                    level,
                    bool(body.get("strong", False)),
                    bool(body.get("weak", False)),
                    bool(body.get("lift", False)),
                    bool(body.get("cap", False)),
                    compiled or re.compile(r"(?!x)x"),
                    cancel,
                )
            )
        self.signals = tuple(signals)
        self.names = tuple(s.name for s in signals)
        self.levels = {s.name: s.level for s in signals}
        self.strong = {s.name for s in signals if s.strong}
        self.weak = {s.name for s in signals if s.weak}
        self.lift = {s.name for s in signals if s.lift}
        self.cap = {s.name for s in signals if s.cap}

    def count_many(self, folded: str) -> bool:
        """True when the text counts enough people, households or enterprises."""
        for m in _COUNT.finditer(folded):
            num, what = m.group(1), m.group(2)
            n = chinese_number(num)
            if what == "户":
                if n >= self.households_threshold:
                    return True
            elif what.startswith("家") or what in _PLACES:
                # an enterprise, a village or an estate stands for many households
                if n * 10 >= self.households_threshold:
                    return True
            elif n >= self.people_threshold:
                return True
        return False  # "上百人" counts as "百人" (100), "好几百名" as "几百名" (300)

    def detect(self, text: str) -> list[str]:
        """Names of the signals present in a text (file order)."""
        folded = _fold(text)
        found: list[str] = []
        for s in self.signals:
            hit = s.patterns.search(folded) is not None
            if s.name == "many_affected" and not hit:
                hit = self.count_many(folded)
            if hit and s.unless is not None and s.unless.search(folded):
                hit = False
            if hit:
                found.append(s.name)
        return found

    def vectors(self, found: list[list[str]]) -> np.ndarray:
        """0/1 matrix (texts x signals) from detect()'s results."""
        out = np.zeros((len(found), len(self.names)))
        index = {n: i for i, n in enumerate(self.names)}
        for row, names in enumerate(found):
            for n in names:
                out[row, index[n]] = 1.0
        return out

    def critical(self, names: list[str]) -> list[str]:
        """The critical-level signals among names."""
        return [n for n in names if self.levels[n] == "critical"]

    def critical_floor(self, names: list[str]) -> bool:
        """The rule over the model: one strong critical signal, or two distinct critical ones."""
        crit = self.critical(names)
        return any(n in self.strong for n in crit) or len(crit) >= 2

    def backing(self, names: list[str], p_critical: float, weak_threshold: float) -> list[str]:
        """The critical signals among names that back the model's doubt (P(紧要) at or above the
        single-signal threshold): every critical signal, but a `weak` one (many people named,
        a pollution word: common in matters that are only 较紧急 or 一般) only from
        weak_threshold on."""
        return [
            n for n in self.critical(names) if n not in self.weak or p_critical >= weak_threshold
        ]

    def lifting(self, names: list[str]) -> list[str]:
        """The signals among names that lift 一般 to 较紧急 on their own (`lift: true`): narrow
        ones such as a deadline within days, where a model trained on hand-written tickets
        misses the many ways of saying it; broad urgent signals only name the matter."""
        return [n for n in names if n in self.lift]

    def raising(self, names: list[str]) -> list[str]:
        """The signals that make a matter more pressing (every level but "resolved")."""
        return [n for n in names if self.levels[n] in ("urgent", "critical")]

    def enquiry(self, names: list[str]) -> bool:
        """The rule over the model: a question (how, why, whether, what it costs) with no signal
        that makes it pressing is 一般, not 较紧急 (labelling guide: "a process exists and
        nothing is pressing"; labelled.csv: 277 of 289 such texts are 一般)."""
        return any(self.levels[n] == "enquiry" for n in names) and not self.raising(names)

    def calm(self, names: list[str]) -> bool:
        """The rule over the model: a text that says its matter draws little attention (a post
        with few replies) is not 紧要 on the model's word alone ("viral negative public opinion" is
        what the plan names, and a quiet post is its opposite); a critical signal overrides."""
        return any(self.levels[n] == "calm" for n in names) and not self.critical(names)

    def pending(self, names: list[str]) -> list[str]:
        """The rule over the model: a hazard that is not immediate (`cap: true`: an open
        manhole, work at height without a net, a blocked fire exit) is 较紧急 by the labelling
        guide, not 紧要 on the model's word alone; a critical signal in the text overrides."""
        return [] if self.critical(names) else [n for n in names if n in self.cap]

    def resolved(self, names: list[str]) -> bool:
        """The rule over the model: the text reports its matter as over (repaired, paid, thanked
        for, a past event asked about) and nothing new: urgency is 一般 whatever the words of the
        event (a follow-up call about a collapse that was cleared is not a collapse)."""
        return any(self.levels[n] == "resolved" for n in names)


def parse_signals(text: str, digest: str = "") -> SignalSet:
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"urgency signals: {e}") from e
    return SignalSet(spec, digest)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> SignalSet:
    raw = Path(path).read_bytes()
    return parse_signals(raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()[:16])


def load_signals(path: Path | None = None) -> SignalSet:
    """The signal set of a YAML file (default: the shipped one), cached until it changes."""
    p = path or SIGNALS_PATH
    st = p.stat()
    return _load(str(p), st.st_mtime_ns, st.st_size)
