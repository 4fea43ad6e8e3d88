"""The policy matcher (issue #12 §20–21): a policy's targets against enterprise profiles, in SQL.

A policy (a KbArticle of kind 政策) fits an enterprise when, on every dimension the policy names,
the profile is among its targets; an empty target list sets no restriction on that dimension:

- industries: GB/T 4754 code PREFIX — target "C" fits C1311, "C13" fits C13 and C1311 but not
  C1 or C14; a target of digits only ("13") is read as its section's code ("C13"); a target
  that is no code at all ("C1") fits nothing;
- size_bands: the profile's derived band (ticketing.profiles.size_band) is one of them;
- regions: the profile's town/district is one of them;
- tags: the profile has at least one of the tags;
- audiences: the kind of registrant the credit code says (91 企业, 92 个体工商户, 93 农民专业合作社)
  is one of them; a policy for 个人 only fits no enterprise.

A profile without the value a restricted dimension needs (no industry code, no band) does not
fit. Only published, public, in-force policies are matched (effective_from ≤ today ≤ expires_on,
open-ended when unset). `fit_clause` is the one statement of the rule; both directions use it: a
policy → the enterprises it fits (`matching_enterprise_ids`), an enterprise → the policies that
fit it (`matching_policies`, one UNION ALL over the in-force policies).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from ticketing.errors import InvalidInput
from ticketing.knowledge.models import ArticleKind, ArticleStatus, KbArticle

# The audiences (knowledge.yaml `audiences`) a file of 一企一档 can belong to, told apart by its
# unified social credit code (GB 32100): registered by market regulation (9) as 企业 (1),
# 个体工商户 (2) or 农民专业合作社 (3) — the code's first two characters.
AUDIENCE_USCC: dict[str, str] = {"企业": "91", "个体工商户": "92", "农民专业合作社": "93"}


def target_code(raw: str) -> str | None:
    """A policy's industry target in canonical form, or None for what is no GB/T 4754 code
    ("C1": no such level): such a target fits nothing (better no push than a wrong one)."""
    from ticketing.profiles import canonical_industry

    try:
        return canonical_industry(raw)
    except InvalidInput:
        return None


def in_force(a: KbArticle, today: date) -> bool:
    """Published, public, a policy, and today within its effective dates."""
    return (
        a.kind == ArticleKind.policy
        and a.status == ArticleStatus.published
        and a.is_public
        and (a.effective_from is None or a.effective_from <= today)
        and (a.expires_on is None or a.expires_on >= today)
    )


def in_force_policies(session: Session, today: date) -> list[KbArticle]:
    q = select(KbArticle).where(
        KbArticle.kind == ArticleKind.policy.value,
        KbArticle.status == ArticleStatus.published.value,
        col(KbArticle.is_public).is_(True),
        (col(KbArticle.effective_from).is_(None)) | (col(KbArticle.effective_from) <= today),
        (col(KbArticle.expires_on).is_(None)) | (col(KbArticle.expires_on) >= today),
    )
    return list(session.exec(q.order_by(col(KbArticle.id))))


def _in(name: str, values: list[str], params: dict[str, Any]) -> str:
    keys = []
    for i, v in enumerate(values):
        params[f"{name}{i}"] = v
        keys.append(f":{name}{i}")
    return ", ".join(keys)


def fit_clause(a: KbArticle, dialect: str, params: dict[str, Any], key: str = "p") -> str:
    """The SQL condition (over alias `e`, the enterprise table) for "policy `a` fits e".
    Bind values go into `params` under names starting with `key`."""
    parts: list[str] = []
    if a.audiences:
        heads = sorted({AUDIENCE_USCC[x] for x in a.audiences if x in AUDIENCE_USCC})
        if not heads:
            return "1 = 0"
        parts.append(f"substr(e.uscc, 1, 2) IN ({_in(key + 'a', heads, params)})")
    codes = [c for c in dict.fromkeys(target_code(c) for c in a.industries or []) if c]
    if a.industries and not codes:
        return "1 = 0"
    if codes:
        ors = []
        for i, c in enumerate(codes):
            params[f"{key}i{i}"], params[f"{key}il{i}"] = c, len(c)
            ors.append(f"substr(e.industry_code, 1, :{key}il{i}) = :{key}i{i}")
        parts.append("(" + " OR ".join(ors) + ")")
    if a.size_bands:
        parts.append(f"e.size_band IN ({_in(key + 's', list(a.size_bands), params)})")
    if a.regions:
        parts.append(f"e.region IN ({_in(key + 'r', list(a.regions), params)})")
    if a.tags:
        keys = _in(key + "t", list(a.tags), params)
        if dialect == "postgresql":
            parts.append(
                f"EXISTS (SELECT 1 FROM json_array_elements_text(e.tags) AS tg(v) "
                f"WHERE tg.v IN ({keys}))"
            )
        else:
            parts.append(
                f"EXISTS (SELECT 1 FROM json_each(e.tags) AS tg WHERE tg.value IN ({keys}))"
            )
    return " AND ".join(parts) or "1 = 1"


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def matching_enterprise_ids(
    session: Session, a: KbArticle, today: date, *, pushable_only: bool = False
) -> list[int]:
    """The enterprises policy `a` fits (ids, ascending); none when it is not in force.
    `pushable_only` leaves out those that opted out."""
    if not in_force(a, today):
        return []
    params: dict[str, Any] = {}
    where = fit_clause(a, _dialect(session), params)
    if pushable_only:
        where += " AND e.push_opt_out = :false"
        params["false"] = False
    rows = session.execute(
        text(f"SELECT e.id FROM enterprise e WHERE {where} ORDER BY e.id"), params
    )
    return [int(r[0]) for r in rows]


def count_matches(session: Session, a: KbArticle, today: date) -> int:
    if not in_force(a, today):
        return 0
    params: dict[str, Any] = {}
    where = fit_clause(a, _dialect(session), params)
    return int(
        session.execute(
            text(f"SELECT count(*) FROM enterprise e WHERE {where}"), params
        ).scalar_one()
    )


def matching_policies(session: Session, enterprise_id: int, today: date) -> list[KbArticle]:
    """The in-force policies that fit this enterprise, in one query."""
    policies = in_force_policies(session, today)
    if not policies:
        return []
    dialect = _dialect(session)
    params: dict[str, Any] = {"eid": enterprise_id}
    selects = []
    for n, a in enumerate(policies):
        params[f"a{n}"] = a.id
        clause = fit_clause(a, dialect, params, key=f"q{n}_")
        selects.append(f"SELECT :a{n} AS aid FROM enterprise e WHERE e.id = :eid AND {clause}")
    hit = {int(r[0]) for r in session.execute(text(" UNION ALL ".join(selects)), params)}
    return [a for a in policies if a.id in hit]
