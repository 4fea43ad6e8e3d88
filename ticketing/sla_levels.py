"""§13 warning levels: one pure function from a clock's facts and `now` to its level.

A clock is one step of one matter: a sub-order's accept step (签收, due accept_due_at), its finish
step (办结, due its deadline) or the ticket itself (due its committed deadline). `evaluate` returns
the level, the rules that hold and `next_at`, the earliest instant at which a higher level could
start to hold (the scan's index: a matter is read again only then, or when it moves).

Rules come from sla.yaml `levels` (see the comments there); nothing about thresholds is in code.
Severity: none < blue < yellow < red < overdue. A level never goes down while the step lasts:
the caller passes the level already reached (`reached`) and gets at least that back; a state change
("the matter moves on") starts the step afresh with `reached="none"`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Any

from config.loader import ConfigError

ORDER = ("none", "blue", "yellow", "red", "overdue")
SEVERITY = {name: i for i, name in enumerate(ORDER)}
RULE_LEVELS = ("blue", "yellow", "red")
STEPS = ("accept", "finish", "ticket")
_US = timedelta(microseconds=1)
_KEYS = {
    "urgencies",
    "steps",
    "used_fraction",
    "stalled_working_hours",
    "remaining_hours",
    "cross_department",
    "beyond_power",
}
LEVEL_LABELS = {
    "none": "正常",
    "blue": "蓝色预警",
    "yellow": "黄色预警",
    "red": "红色预警",
    "overdue": "已超期",
}
STEP_LABELS = {"accept": "签收", "finish": "办结", "ticket": "工单办结"}


def higher(a: str, b: str) -> str:
    return a if SEVERITY.get(a, 0) >= SEVERITY.get(b, 0) else b


@dataclass(frozen=True)
class Rule:
    level: str
    urgencies: frozenset[str] | None = None
    steps: frozenset[str] | None = None
    used_fraction: tuple[int, int] | None = None  # an exact fraction: (numerator, denominator)
    stalled_hours: float | None = None
    remaining_hours: float | None = None
    cross_department: bool | None = None
    beyond_power: bool | None = None

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.__dict__.items() if v is not None and k != "level"]
        return f"{self.level}:" + ",".join(parts)


@dataclass(frozen=True)
class Clock:
    """What the rules look at, for one step of one matter (datetimes naive UTC)."""

    urgency: str
    step: str  # accept | finish | ticket
    start: datetime  # when this step's committed time began
    due: datetime | None  # when it runs out
    moved_at: datetime  # the last step taken (for "stalled")
    cross_department: bool = False
    beyond_power: bool = False
    reached: str = "none"  # the level already reached on this step


@dataclass(frozen=True)
class Verdict:
    level: str
    reasons: tuple[str, ...]
    next_at: datetime | None  # None: nothing more can change on this step


StallAt = Callable[[datetime, float], datetime]  # (moved_at, working hours) -> instant


def rules_from(cfg: dict[str, Any]) -> tuple[Rule, ...]:
    """The `levels` section of sla.yaml, checked (a bad key is a ConfigError naming it)."""
    return _parse(_freeze(cfg.get("levels") or {}))


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    return v


@lru_cache(maxsize=16)
def _parse(frozen: tuple[Any, ...]) -> tuple[Rule, ...]:
    out: list[Rule] = []
    for level, rules in frozen:
        if level not in RULE_LEVELS:
            raise ConfigError(f"sla.yaml levels: unknown level {level!r} (blue, yellow, red)")
        for raw in rules:
            spec = dict(raw)
            bad = set(spec) - _KEYS
            if bad:
                raise ConfigError(f"sla.yaml levels.{level}: unknown condition(s) {sorted(bad)}")
            if not spec:
                raise ConfigError(f"sla.yaml levels.{level}: a rule needs at least one condition")
            out.append(
                Rule(
                    level=level,
                    urgencies=frozenset(map(str, spec["urgencies"]))
                    if "urgencies" in spec
                    else None,
                    steps=frozenset(map(str, spec["steps"])) if "steps" in spec else None,
                    used_fraction=_fraction(spec, level),
                    stalled_hours=_num(spec, "stalled_working_hours", level),
                    remaining_hours=_num(spec, "remaining_hours", level),
                    cross_department=_flag(spec, "cross_department"),
                    beyond_power=_flag(spec, "beyond_power"),
                )
            )
    return tuple(out)


def _num(spec: dict[str, Any], key: str, level: str) -> float | None:
    if key not in spec:
        return None
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(f"sla.yaml levels.{level}.{key}: expected a non-negative number")
    return float(v)


def _fraction(spec: dict[str, Any], level: str) -> tuple[int, int] | None:
    """used_fraction as an exact fraction: "2/3" or a decimal such as 0.8."""
    if "used_fraction" not in spec:
        return None
    raw = spec["used_fraction"]
    try:
        f = Fraction(str(raw)) if not isinstance(raw, bool) else None
    except (ValueError, ZeroDivisionError):
        f = None
    if f is None or not 0 <= f <= 1:
        raise ConfigError(
            f'sla.yaml levels.{level}.used_fraction: expected a fraction 0..1 such as "2/3" or 0.8'
        )
    return f.numerator, f.denominator


def _flag(spec: dict[str, Any], key: str) -> bool | None:
    return bool(spec[key]) if key in spec else None


def boundaries(
    rules: tuple[Rule, ...], clock: Clock, stall_at: StallAt
) -> dict[str, datetime | None]:
    """The instant from which each level holds on this clock (None: never on this step), computed
    once when the step starts: blue, yellow, red (the earliest of their rules) and overdue (the
    due instant). The level at any `now` is then a comparison (`level_from`), in Python or SQL."""
    out: dict[str, datetime | None] = {lvl: None for lvl in RULE_LEVELS}
    for rule in rules:
        at = _holds_from(rule, clock, stall_at)
        if at is not None:
            cur = out[rule.level]
            out[rule.level] = at if cur is None or at < cur else cur
    out["overdue"] = clock.due
    return out


def level_from(
    bounds: dict[str, datetime | None], reached: str, now: datetime
) -> tuple[str, datetime | None]:
    """The level at `now` from a clock's boundaries (never below `reached`) and the next instant
    a higher level starts (None: nothing more can change on this step). The one comparison the
    SQL full scan (ticketing.sla_scan) mirrors."""
    due = bounds.get("overdue")
    if due is not None and now >= due:
        return "overdue", None
    level = reached if reached in SEVERITY else "none"
    for lvl in RULE_LEVELS:
        at = bounds.get(lvl)
        if at is not None and at <= now:
            level = higher(lvl, level)
    upcoming = [
        at
        for lvl, at in bounds.items()
        if at is not None and at > now and SEVERITY[lvl] > SEVERITY[level]
    ]
    return level, min(upcoming) if upcoming else None


def evaluate(rules: tuple[Rule, ...], clock: Clock, now: datetime, stall_at: StallAt) -> Verdict:
    """The clock's level at `now` (never below `clock.reached`) and when to look again."""
    due = clock.due
    if due is not None and now >= due:
        return Verdict("overdue", ("overdue",), None)
    bounds: dict[str, datetime | None] = {lvl: None for lvl in RULE_LEVELS}
    reasons: list[str] = []
    for rule in rules:
        at = _holds_from(rule, clock, stall_at)
        if at is None:
            continue
        if at <= now:
            reasons.append(rule.describe())
        cur = bounds[rule.level]
        bounds[rule.level] = at if cur is None or at < cur else cur
    bounds["overdue"] = due
    level, next_at = level_from(bounds, clock.reached, now)
    return Verdict(level, tuple(reasons), next_at)


def _holds_from(rule: Rule, clock: Clock, stall_at: StallAt) -> datetime | None:
    """The instant from which `rule` holds on this clock (None: never, on this step)."""
    if rule.urgencies is not None and clock.urgency not in rule.urgencies:
        return None
    if rule.steps is not None and clock.step not in rule.steps:
        return None
    if rule.cross_department is not None and rule.cross_department != clock.cross_department:
        return None
    if rule.beyond_power is not None and rule.beyond_power != clock.beyond_power:
        return None
    times = [clock.start]
    if rule.used_fraction is not None or rule.remaining_hours is not None:
        if clock.due is None:
            return None
        if rule.used_fraction is not None:
            # exact, rounded up to the microsecond: "2/3 used" holds from the first instant at
            # which 2/3 of the committed time has passed, not a microsecond earlier
            num, den = rule.used_fraction
            total_us = (clock.due - clock.start) // _US
            times.append(clock.start + timedelta(microseconds=-(-total_us * num // den)))
        if rule.remaining_hours is not None:
            times.append(clock.due - timedelta(hours=rule.remaining_hours))
    if rule.stalled_hours is not None:
        times.append(stall_at(clock.moved_at, rule.stalled_hours))
    return max(times)
