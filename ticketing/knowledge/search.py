"""Search the knowledge base with a Chinese question.

Two stages, the same on SQLite and PostgreSQL:
1. Candidates from the database's own full-text index over the jieba-segmented columns: the
   question's most telling words (at most CANDIDATE_GROUPS, with their telling synonyms) in an OR
   query; the index ranks its matches (SQLite FTS5 bm25 with title/keywords weighted over body)
   and its best CANDIDATES × RANKED_FACTOR rows are checked for the visibility rules and scalar
   filters; the best CANDIDATES go on. PostgreSQL ranks a bounded set instead, since ts_rank
   reads every matching row's whole tsvector (a common word matches thousands of 50,000
   articles: 300+ ms): the head stage ranks every match of the OR query on kb_tsv_head (title and
   keywords only: few rows, small vectors), the body stage ranks on kb_tsv the matches of the
   two most telling groups both present (body_query), at most BODY_CAP of them (in the index's
   order, i.e. the table's, when more match). Migration 0018_kb_pages adds kb_tsv_head. (Measured with
   bench/knowledge.py at 50,000 articles: joining every match to its article, or asking for every
   word, cost more than the ranking itself.)
2. Ranked here: each question word (weighted by how telling it is, segment.word_weight) scores by
   where the article has it or a synonym — title, keywords, body — and the list filters (region,
   audience) apply. The snippet is the body's sentence with most of the question's words.

Visibility: only published articles that have not expired (status and expiry date both checked,
so an article past its date is never suggested even before the daily job marks it expired);
the public sees public articles only.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import text
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing.knowledge import segment
from ticketing.knowledge.models import ArticleStatus, KbArticle, KbQueryLog
from ticketing.models import utcnow

CANDIDATES = 30
# The candidate query asks the index for the question's telling words only (and their synonyms):
# words common in general Chinese (需要, 公司, 政策 …) match a large part of a big store, and the
# database ranks every row that matches. They still count in the ranking of the candidates.
CANDIDATE_MIN_WEIGHT = 7.0
CANDIDATE_GROUPS = 4
RANKED_FACTOR = 3  # rows ranked by the index per candidate kept (drafts, expired, filters)
# PostgreSQL (see `candidates`): the body stage requires this many groups, and ranks at most
# BODY_CAP of its matches
BODY_GROUPS = 2
BODY_CAP = 1000
MAX_QUERY_CHARS = 200
FIELD_SCORE = {"title": 3.0, "keywords": 2.5, "body": 1.0}
_SENTENCE = re.compile(r"(?<=[。；！？!?;\n])")
SNIPPET_CHARS = 90


@dataclass(frozen=True)
class SearchFilter:
    kind: str | None = None
    department: str | None = None
    region: str | None = None  # an article limited to other regions is left out
    audience: str | None = None


@dataclass
class Hit:
    article: KbArticle
    score: float
    snippet: str  # HTML-escaped text with <mark> around the question's words


def local_today(settings: Settings) -> date:
    from ticketing.sla import to_local

    return to_local(settings, utcnow()).date()


def visible_clause(alias: str, public: bool) -> str:
    """The SQL condition for what may be suggested (published, not past its expiry date)."""
    cond = (
        f"{alias}.status = '{ArticleStatus.published.value}' "
        f"AND ({alias}.expires_on IS NULL OR {alias}.expires_on >= :today)"
    )
    return cond + (f" AND {alias}.is_public = :true" if public else "")


def published_articles(
    session: Session, settings: Settings, kinds: tuple[str, ...], *, limit: int = 200
) -> list[KbArticle]:
    """The articles of these kinds the public may read now (visible_clause's rule), most recently
    published first: the portal's 政策与办事指南 page."""
    conn = session.connection()
    today = local_today(settings)
    params: dict = {
        "today": today if conn.dialect.name == "postgresql" else today.isoformat(),
        "true": True,
        "k": limit,
    }
    names = []
    for i, kind in enumerate(kinds):
        params[f"kind{i}"] = kind
        names.append(f":kind{i}")
    ids = [
        row[0]
        for row in conn.execute(
            text(
                f"SELECT a.id FROM kb_article a WHERE {visible_clause('a', True)} "
                f"AND a.kind IN ({', '.join(names) or 'NULL'}) "
                "ORDER BY a.published_at DESC, a.id DESC LIMIT :k"
            ),
            params,
        )
    ]
    if not ids:
        return []
    rows = {a.id: a for a in session.exec(select(KbArticle).where(col(KbArticle.id).in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def _filters_sql(f: SearchFilter, params: dict) -> str:
    sql = ""
    if f.kind:
        sql += " AND a.kind = :kind"
        params["kind"] = f.kind
    if f.department:
        sql += " AND a.department_code = :dept"
        params["dept"] = f.department
    return sql


def candidate_groups(groups: list[segment.QueryGroup]) -> list[segment.QueryGroup]:
    """The groups the candidate query uses: the telling ones (all are, if none is)."""
    strong = [g for g in groups if g.weight >= CANDIDATE_MIN_WEIGHT]
    return (strong or groups[:3])[:CANDIDATE_GROUPS]


def fts_query(dialect: str, groups: list[segment.QueryGroup]) -> str:
    words = list(
        dict.fromkeys(
            w
            for g in candidate_groups(groups)
            for w in g.alternatives
            if w == g.word or segment.word_weight(w) >= CANDIDATE_MIN_WEIGHT
        )
    )
    if dialect == "postgresql":
        return " | ".join(f"'{w}'" for w in words)
    return " OR ".join(f'"{w}"' for w in words)


def _group_words(g: segment.QueryGroup) -> list[str]:
    return [
        w for w in g.alternatives if w == g.word or segment.word_weight(w) >= CANDIDATE_MIN_WEIGHT
    ]


def body_query(groups: list[segment.QueryGroup]) -> str:
    """PostgreSQL's body-stage query: the two most telling distinct groups, both required (each
    group's word or a synonym). Far fewer rows match than the OR of every word, so fewer are
    ranked; an article with the words in its title or keywords is found by the head stage."""
    parts: list[str] = []
    for g in candidate_groups(groups):
        words = _group_words(g)
        part = "(" + " | ".join(f"'{w}'" for w in words) + ")"
        if words and part not in parts:
            parts.append(part)
        if len(parts) == BODY_GROUPS:
            break
    return " & ".join(parts)


def candidates(
    session: Session,
    settings: Settings,
    groups: list[segment.QueryGroup],
    *,
    public: bool,
    filters: SearchFilter,
    limit: int = CANDIDATES,
) -> list[int]:
    """Ids of the best `limit` visible articles by the database's own full-text rank."""
    if not groups:
        return []
    conn = session.connection()
    dialect = conn.dialect.name
    today = local_today(settings)
    params: dict = {
        "q": fts_query(dialect, groups),
        "k": limit,
        "today": today if dialect == "postgresql" else today.isoformat(),
        "true": True,
    }
    where = visible_clause("a", public) + _filters_sql(filters, params)
    # the index's best RANKED rows first, the visibility and filters checked on those only:
    # joining every matching row to its article cost more than the ranking itself
    params["k2"] = limit * RANKED_FACTOR
    if dialect == "postgresql":
        params.update(qb=body_query(groups) or params["q"], cap=BODY_CAP)
        sql = (
            "WITH head AS (SELECT id, ts_rank(kb_tsv_head, query) AS r "
            "FROM kb_article, to_tsquery('simple', :q) query WHERE kb_tsv_head @@ query "
            "ORDER BY r DESC LIMIT :k2), "
            "body AS (SELECT id, ts_rank(tsv, query) AS r FROM (SELECT id, kb_tsv AS tsv "
            "FROM kb_article, to_tsquery('simple', :qb) query WHERE kb_tsv @@ query LIMIT :cap) b, "
            "to_tsquery('simple', :qb) query ORDER BY r DESC LIMIT :k2) "
            "SELECT a.id FROM (SELECT id, max(r) AS r FROM "
            "(SELECT id, r FROM head UNION ALL SELECT id, r FROM body) u GROUP BY id) f "
            f"JOIN kb_article a ON a.id = f.id WHERE {where} ORDER BY f.r DESC, a.id LIMIT :k"
        )
    else:
        sql = (
            "SELECT a.id FROM (SELECT rowid AS id, bm25(kb_article_fts, 4.0, 3.0, 1.0) AS r "
            "FROM kb_article_fts WHERE kb_article_fts MATCH :q ORDER BY r LIMIT :k2) f "
            f"JOIN kb_article a ON a.id = f.id WHERE {where} ORDER BY f.r, a.id LIMIT :k"
        )
    return [row[0] for row in conn.execute(text(sql), params)]


def _score(groups: list[segment.QueryGroup], a: KbArticle) -> float:
    fields = {
        "title": set(a.search_title.split()),
        "keywords": set(a.search_keywords.split()),
        "body": set(a.search_body.split()),
    }
    total = 0.0
    for g in groups:
        best = 0.0
        for name, words in fields.items():
            if any(w in words for w in g.alternatives):
                best = max(best, FIELD_SCORE[name])
        total += g.weight * best
    return total


def _applies(a: KbArticle, f: SearchFilter) -> bool:
    if f.region and a.regions and f.region not in a.regions:
        return False
    return not (f.audience and a.audiences and f.audience not in a.audiences)


def snippet(groups: list[segment.QueryGroup], a: KbArticle) -> str:
    """The body sentence holding most of the question's words, the words marked."""
    words = sorted({w for g in groups for w in g.alternatives}, key=len, reverse=True)
    sentences = [s.strip() for s in _SENTENCE.split(a.body_text or "") if s.strip()]
    best, best_score = (a.summary or (sentences[0] if sentences else "")), 0.0
    for s in sentences:
        score = sum(g.weight for g in groups if any(w in s for w in g.alternatives))
        if score > best_score:
            best, best_score = s, score
    if len(best) > SNIPPET_CHARS:
        first = min((best.find(w) for w in words if w in best), default=0)
        start = max(0, min(first - 20, len(best) - SNIPPET_CHARS))
        best = ("…" if start else "") + best[start : start + SNIPPET_CHARS] + "…"
    if not words:
        return html.escape(best)
    pattern = re.compile("|".join(re.escape(w) for w in words))
    out, pos = [], 0
    for m in pattern.finditer(best):
        out.append(html.escape(best[pos : m.start()]))
        out.append(f"<mark>{html.escape(m.group())}</mark>")
        pos = m.end()
    out.append(html.escape(best[pos:]))
    return "".join(out)


def search(
    session: Session,
    settings: Settings,
    question: str,
    *,
    public: bool,
    filters: SearchFilter | None = None,
    limit: int = 10,
) -> list[Hit]:
    """The articles that answer `question`, best first, each with its matching passage."""
    filters = filters or SearchFilter()
    groups = segment.query_groups(settings, (question or "")[:MAX_QUERY_CHARS])
    need = CANDIDATES if not (filters.region or filters.audience) else CANDIDATES * 4
    ids = candidates(session, settings, groups, public=public, filters=filters, limit=need)
    if not ids:
        return []
    rank = {i: n for n, i in enumerate(ids)}
    rows = session.exec(select(KbArticle).where(col(KbArticle.id).in_(ids))).all()
    # rows loaded by id: ids set
    scored = [(_score(groups, a), -rank[a.id or 0], a) for a in rows if _applies(a, filters)]
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [Hit(a, round(s, 3), snippet(groups, a)) for s, _, a in scored[:limit]]


def log_search(session: Session, question: str, hits: list[Hit], *, public: bool) -> KbQueryLog:
    """Record a search (the unanswered-questions and no-hit-articles reports read these)."""
    row = KbQueryLog(
        kind="search",
        audience="public" if public else "staff",
        query=" ".join((question or "").split())[:200],
        result_count=len(hits),
        top_ids=[h.article.id or 0 for h in hits[:3]],  # stored articles: ids set
        at=utcnow(),
    )
    session.add(row)
    return row


def log_open(session: Session, article_id: int, *, public: bool) -> None:
    session.add(
        KbQueryLog(
            kind="open",
            audience="public" if public else "staff",
            article_id=article_id,
            at=utcnow(),
        )
    )


def day_bounds(settings: Settings, since: date, until: date) -> tuple[datetime, datetime]:
    """[start of `since`, end of `until`] in local days, as naive UTC bounds."""
    from ticketing.sla import to_local, to_utc_naive

    tz = to_local(settings, utcnow()).tzinfo
    start = datetime.combine(since, time.min, tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz)
    return to_utc_naive(start), to_utc_naive(end)
