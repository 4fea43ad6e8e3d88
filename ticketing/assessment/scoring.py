"""The monthly figures per department, their score out of config/defaults/assessment.yaml's
total, the bands and the ranking. Figures come from grouped SQL (one query per base row set,
ticketing.assessment.indicators); accepted appeals take their (department, ticket) out of the
indicator they name before anything is summed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text, tuple_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.assessment.indicators import COUNT, HOURS, INDICATORS, RATE, SOURCES, base_for
from ticketing.assessment.models import AppealStatus, AssessmentAppeal
from ticketing.assessment.periods import Period, as_of
from ticketing.models import Department, utcnow


@dataclass
class Figure:
    """One indicator of one department (or the city): num/den for a rate, den for a count, the
    sum of seconds over den rows for an average."""

    kind: str
    num: int = 0
    den: int = 0
    seconds: float = 0.0

    @property
    def value(self) -> float | None:
        if self.kind == RATE:
            return self.num / self.den if self.den else None
        if self.kind == HOURS:
            return self.seconds / self.den / 3600.0 if self.den else None
        return float(self.den)

    def add(self, other: Figure) -> None:
        self.num += other.num
        self.den += other.den
        self.seconds += other.seconds


@dataclass
class DepartmentResult:
    code: str
    name: str
    figures: dict[str, Figure]
    points: dict[str, float] = field(default_factory=dict)
    score: float | None = None  # None: nothing to assess in the period (no matter at all)
    band: str = ""
    rank: int | None = None  # None: not ranked (nothing to assess)

    @property
    def assessed(self) -> bool:
        return self.score is not None


@dataclass
class Assessment:
    period: Period
    rows: list[DepartmentResult]  # ranked, best first
    city: dict[str, Figure]  # every department together (the city average of rates)
    columns: list[str]
    appeals_applied: int
    computed_at: datetime | None = None  # when the figures were read (数据截至)
    cached: bool = False  # read from the month cache
    to_keep: MonthFigures | None = None  # a closed month computed now: for cache.keep

    def row(self, code: str) -> DepartmentResult | None:
        return next((r for r in self.rows if r.code == code), None)


@dataclass(frozen=True)
class ScoreConfig:
    total: float
    rates: dict[str, float]
    deduction_weight: float
    per_item: dict[str, float]
    empty_rate_points: float
    bands: list[tuple[float, str]]
    lookback_days: int
    columns: list[str]


def score_config(settings: Settings) -> ScoreConfig:
    """assessment.yaml, checked: known indicators, weights adding up to the total."""
    cfg = load_yaml(settings, "assessment.yaml")
    rates = {str(k): float(v) for k, v in (cfg.get("rates") or {}).items()}
    ded = cfg.get("deductions") or {}
    per_item = {str(k): float(v) for k, v in (ded.get("per_item") or {}).items()}
    columns = [str(c) for c in cfg.get("columns") or list(INDICATORS)]
    for code in [*rates, *per_item, *columns]:
        if code not in INDICATORS:
            raise ConfigError(f"assessment.yaml: unknown indicator {code!r}")
    for code in rates:
        if INDICATORS[code].kind != RATE:
            raise ConfigError(f"assessment.yaml rates: {code!r} is not a rate")
    total = float(cfg.get("total", 100))
    weight = float(ded.get("weight", 0))
    if abs(sum(rates.values()) + weight - total) > 1e-9:
        raise ConfigError(
            f"assessment.yaml: the weights add up to {sum(rates.values()) + weight}, not {total}"
        )
    bands = sorted(
        ((float(b["min"]), str(b["label"])) for b in cfg.get("bands") or []), reverse=True
    )
    return ScoreConfig(
        total=total,
        rates=rates,
        deduction_weight=weight,
        per_item=per_item,
        empty_rate_points=float(cfg.get("empty_rate_points", 1.0)),
        bands=bands,
        lookback_days=int(cfg.get("lookback_days", 730)),
        columns=columns,
    )


def accepted_appeals(session: Session, period: Period) -> dict[str, list[tuple[str, int]]]:
    """indicator → [(department, ticket id)] taken out by accepted appeals of the period's months."""
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for a in session.execute(
        select(AssessmentAppeal).where(
            col(AssessmentAppeal.month).in_(period.months),
            col(AssessmentAppeal.status) == AppealStatus.accepted.value,
        )
    ).scalars():
        out[a.indicator].append((a.department_code, a.ticket_id))
    return out


def tune(session: Session) -> None:
    """PostgreSQL, for this transaction: no JIT (the grouped queries carry a few dozen CASE
    expressions, which JIT spends seconds compiling for a query that runs in well under one),
    and room to group in memory."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def appealed(b: Any, pairs: list[tuple[str, int]]) -> ColumnElement[bool] | None:
    return tuple_(b.c.dept, b.c.ticket_id).in_(pairs) if pairs else None


def figures(
    session: Session,
    settings: Settings,
    period: Period,
    *,
    department: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, dict[str, Figure]], int]:
    """department → indicator → Figure, from one grouped query per base row set (one
    department's rows only, read through its own filter, when `department` is given); a running
    period as of `now` (periods.as_of; default: the clock)."""
    period = as_of(period, now or utcnow())
    cfg = score_config(settings)
    dialect = session.get_bind().dialect.name
    tune(session)
    appeals = accepted_appeals(session, period)
    out: dict[str, dict[str, Figure]] = defaultdict(dict)
    for source in SOURCES:
        inds = [i for i in INDICATORS.values() if i.source == source]
        b = base_for(source, period, dialect, cfg.lookback_days, department)
        cols: list[Any] = [b.c.dept]
        for ind in inds:
            parts = ind.parts(b, period, dialect)
            rows = parts.rows
            excluded = appealed(b, appeals.get(ind.appeal_under, []))
            if excluded is not None:
                rows = rows & ~excluded
            cols.append(func.sum(case((rows, 1), else_=0)).label(f"{ind.code}__den"))
            if parts.hit is not None:
                cols.append(
                    func.sum(case((rows & parts.hit, 1), else_=0)).label(f"{ind.code}__num")
                )
            if parts.measure is not None:
                cols.append(
                    func.sum(case((rows, parts.measure), else_=0.0)).label(f"{ind.code}__sec")
                )
        q = select(*cols).group_by(b.c.dept)
        for r in session.execute(q).mappings():
            for ind in inds:
                out[r["dept"]][ind.code] = Figure(
                    ind.kind,
                    num=int(r.get(f"{ind.code}__num") or 0),
                    den=int(r[f"{ind.code}__den"] or 0),
                    seconds=float(r.get(f"{ind.code}__sec") or 0.0),
                )
    return out, sum(len(v) for v in appeals.values())


def _blank() -> dict[str, Figure]:
    return {code: Figure(ind.kind) for code, ind in INDICATORS.items()}


def score_row(cfg: ScoreConfig, figs: dict[str, Figure]) -> tuple[dict[str, float], float, str]:
    """(points per scored indicator, the total, the band) of one department's figures."""
    points: dict[str, float] = {}
    for code, weight in cfg.rates.items():
        v = figs[code].value
        if v is None:
            points[code] = weight * cfg.empty_rate_points
        elif INDICATORS[code].better == "lower":
            points[code] = weight * (1.0 - v)
        else:
            points[code] = weight * v
    if cfg.deduction_weight:
        taken = sum(figs[c].den * per for c, per in cfg.per_item.items())
        points["deductions"] = max(0.0, cfg.deduction_weight - taken)
    score = round(sum(points.values()), 2)
    band = next((label for lo, label in cfg.bands if score >= lo - 1e-9), "")
    return {k: round(v, 2) for k, v in points.items()}, score, band


NOT_ASSESSED = "无办件"


@dataclass
class MonthFigures:
    """A period's figures (department → indicator → Figure) and the accepted appeals applied,
    with when they were read: from the month cache (`cached`), or computed now. A closed month
    computed now carries the cache generation it read first (`generation`, None: no row), so the
    caller can keep it (ticketing.assessment.cache.keep)."""

    month: str
    figures: dict[str, dict[str, Figure]]
    appeals: int
    computed_at: datetime
    cached: bool = False
    closed: bool = False  # a closed month: what the cache may keep
    generation: int | None = None
    slowest: dict[str, list[int]] | None = None  # kept: department → its slowest sub-orders


def live(
    session: Session, settings: Settings, period: Period, now: datetime | None = None
) -> MonthFigures:
    """The period's figures computed now (every department; a running period as of `now`)."""
    at = utcnow()
    figs, n = figures(session, settings, period, now=now or at)
    return MonthFigures(period.key, figs, n, at)


def departments(session: Session) -> dict[str, Department]:
    return {d.code: d for d in session.execute(select(Department)).scalars()}


def ranked(
    settings: Settings, period: Period, mf: MonthFigures, depts: dict[str, Department]
) -> Assessment:
    """The assessment built from a period's figures: every active department (and any other
    one with figures), its points, score and band, ranked (equal scores share a rank: 1, 2, 2,
    4). A department with no row in any indicator (no matter dispatched, decided, rated or
    warned in the period) is not scored nor ranked: it is listed last as 无办件 (full points for
    nothing would put it first)."""
    cfg = score_config(settings)
    figs = mf.figures
    codes = [c for c, d in depts.items() if d.active] + [c for c in figs if c not in depts]
    codes += [c for c in figs if c in depts and not depts[c].active]
    rows: list[DepartmentResult] = []
    city = _blank()
    for code in dict.fromkeys(codes):
        f = {**_blank(), **figs.get(code, {})}
        for k, v in f.items():
            city[k].add(v)
        name = depts[code].name if code in depts else code
        rows.append(_row(cfg, code, name, f))
    rows.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.code))
    scored = [r for r in rows if r.score is not None]
    for i, r in enumerate(scored):
        r.rank = scored[i - 1].rank if i and scored[i - 1].score == r.score else i + 1
    return Assessment(
        period,
        rows,
        city,
        cfg.columns,
        mf.appeals,
        computed_at=mf.computed_at,
        cached=mf.cached,
        to_keep=mf if mf.closed and not mf.cached else None,
    )


def _row(cfg: ScoreConfig, code: str, name: str, f: dict[str, Figure]) -> DepartmentResult:
    if not any(x.den for x in f.values()):
        return DepartmentResult(code, name, f, {}, None, NOT_ASSESSED)
    points, score, band = score_row(cfg, f)
    return DepartmentResult(code, name, f, points, score, band)


def period_figures(
    session: Session, settings: Settings, period: Period, now: datetime | None = None
) -> MonthFigures:
    """A closed month's figures from the cache (computed now on a miss, for the caller to
    keep); any other period's computed now."""
    from ticketing.assessment import cache  # the cache builds on this module's figures

    now = now or utcnow()
    if cache.is_closed(period, now):
        return cache.month_figures(session, settings, period)
    return live(session, settings, period, now)


def assess(
    session: Session, settings: Settings, period: Period, *, now: datetime | None = None
) -> Assessment:
    """The period's assessment (see `ranked`). A closed month's figures come from the month
    cache (ticketing.assessment.cache); the running month, and half-years and years, are
    computed now. `now` decides which months are closed (default: the clock). A closed month
    computed because it was not cached comes back as `to_keep`: a caller with a write
    transaction stores it (cache.keep), so the next view reads it."""
    return ranked(
        settings, period, period_figures(session, settings, period, now), departments(session)
    )


def department_row(
    session: Session,
    settings: Settings,
    period: Period,
    code: str,
    *,
    now: datetime | None = None,
) -> tuple[DepartmentResult, datetime] | None:
    """One department's figures, points, score and band (not its rank: that needs every
    department), and when they were read: from the month cache for a closed month that is
    cached, else from that department's rows only. None: no such department and no figures."""
    from ticketing.assessment import cache

    now = now or utcnow()
    got = cache.cached_month(session, settings, period) if cache.is_closed(period, now) else None
    if got is not None:
        figs, at = got.figures.get(code, {}), got.computed_at
    else:
        at = utcnow()
        figs = figures(session, settings, period, department=code, now=now)[0].get(code, {})
    dept = session.execute(
        select(Department).where(col(Department.code) == code)
    ).scalar_one_or_none()
    if dept is None and not figs:
        return None
    name = dept.name if dept is not None else code
    return _row(score_config(settings), code, name, {**_blank(), **figs}), at


def city_average(result: Assessment) -> dict[str, float | None]:
    """The city's figure per indicator: pooled rates and averages; counts per department."""
    n = sum(1 for r in result.rows if r.assessed) or 1
    out: dict[str, float | None] = {}
    for code, f in result.city.items():
        out[code] = f.den / n if f.kind == COUNT else f.value
    return out
