"""Knowledge-base benchmark: the labelled questions' top-3 hit rate, and search latency at 50,000
articles beside a bare full-text query of the same words in the same run.

    .venv/bin/python bench/knowledge.py [--articles 50000] [--queries 400]
                                        [--database-url postgresql+psycopg://…/db]

Without --database-url a fresh SQLite file in a temporary directory. The store gets the starter
content (ticketing/data/knowledge.yaml), the hit rate is measured on tests/ticketing/data/
kb_questions.tsv, then filler articles are added up to --articles: recombined sentences of the
starter content's sentences and words of general Chinese (see `fill`), published and public,
so they compete with the real answers. Latency: the labelled questions, cycled, through
ticketing.search_articles (segmentation, synonyms, the database's candidates, ranking,
snippets); the baseline runs the same OR query of the same words straight on the full-text index
(SQLite FTS5 bm25 / PostgreSQL ts_rank), top 10. The hit rate is measured again at full size.
Ends with ONE JSON line of figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from callcenter.schema import upgrade
from config.database import make_engine, session_scope
from config.settings import Settings
from ticketing import KbArticle, search_articles, seed_knowledge, sync_departments
from ticketing.knowledge import segment
from ticketing.knowledge.search import candidates, fts_query

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "ticketing" / "data" / "kb_questions.tsv"


def labelled() -> list[tuple[str, set[str]]]:
    out = []
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            q, keys = line.split("\t")
            out.append((q, set(keys.split(","))))
    return out


def hit_rate(engine: Any, settings: Settings, questions: list[tuple[str, set[str]]]) -> float:
    hits = 0
    with session_scope(engine, read_only=True) as s:
        for q, want in questions:
            got = {
                h.article.seed_key for h in search_articles(s, settings, q, public=True, limit=3)
            }
            hits += bool(want & got)
    return hits / len(questions)


def general_words(n: int = 60_000) -> tuple[list[str], list[float]]:
    """The `n` most frequent words of jieba's dictionary (general Chinese) and their counts."""
    import jieba

    tk = jieba.Tokenizer()
    tk.initialize()
    ranked = sorted(
        ((w, f) for w, f in tk.FREQ.items() if f > 0 and len(w) > 1), key=lambda x: -x[1]
    )
    words = ranked[:n]
    return [w for w, _ in words], [float(f) for _, f in words]


def fill(engine: Any, settings: Settings, target: int, seed: int = 7) -> float:
    """Filler articles up to `target`; returns the seconds it took.

    A filler article is a title of two starter sentences' words, and a body of one starter
    sentence (so filler competes with the real answers on their own words) and 80 words drawn
    from jieba's dictionary by their frequency in general Chinese (so words are spread over the
    50,000 articles as in real text, rather than the same 83 topics repeated). Segmented once per
    sentence, not per article."""
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        rows = s.exec(KbArticle.__table__.select()).mappings().all()  # type: ignore[attr-defined]
    have = len(rows)
    sentences: list[tuple[str, str]] = []
    for r in rows:
        for sent in r["body_text"].split("\n"):
            if sent.strip():
                sentences.append((sent, segment.index_text(settings, sent)))
    vocab, weights = general_words()
    cum = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    base = dict(rows[0])
    base.pop("id")
    batch: list[dict[str, Any]] = []
    table = KbArticle.__table__  # type: ignore[attr-defined]
    for n in range(have, target):
        sent, sent_words = rng.choice(sentences)
        words = rng.choices(vocab, cum_weights=cum, k=80)
        title_words = rng.choices(vocab, cum_weights=cum, k=4)
        body_text = sent + "\n" + "".join(words)
        batch.append(
            {
                **base,
                "seed_key": None,
                "title": "".join(title_words) + f"（{n}）",
                "search_title": " ".join(title_words),
                "body": f"<p>{sent}</p><p>{''.join(words)}</p>",
                "body_text": body_text,
                "search_body": sent_words + " " + " ".join(words),
                "search_keywords": "",
                "keywords": [],
                "department_code": rng.choice(rows)["department_code"],
                "kind": rng.choice(["guide", "policy", "faq", "notice"]),
            }
        )
        if len(batch) == 2000:
            with session_scope(engine) as s:
                s.connection().execute(table.insert(), batch)
            batch = []
    if batch:
        with session_scope(engine) as s:
            s.connection().execute(table.insert(), batch)
    return time.perf_counter() - t0


def bare_query(dialect: str) -> str:
    if dialect == "postgresql":
        return (
            "SELECT id FROM kb_article, to_tsquery('simple', :q) query WHERE kb_tsv @@ query "
            "ORDER BY ts_rank(kb_tsv, query) DESC LIMIT 10"
        )
    return "SELECT rowid FROM kb_article_fts WHERE kb_article_fts MATCH :q ORDER BY rank LIMIT 10"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-kb-")
    url = args.database_url or f"sqlite:///{tmp.name}/kb.db"
    settings = Settings(data_dir=Path(tmp.name) / "var", database_url=url)
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        sync_departments(s, settings)
        s.flush()
        seeded = seed_knowledge(s, settings)
    questions = labelled()
    rate_starter = hit_rate(engine, settings, questions)
    print(
        f"starter articles {seeded}, labelled questions {len(questions)}, top-3 {rate_starter:.3f}"
    )

    fill_s = fill(engine, settings, args.articles)
    with session_scope(engine, read_only=True) as s:
        total = s.exec(text("SELECT count(*) FROM kb_article")).one()[0]  # type: ignore[call-overload]
    print(f"filled to {total} articles in {fill_s:.1f} s")

    dialect = engine.dialect.name
    sql = text(bare_query(dialect))
    ours: list[float] = []
    bare: list[float] = []
    with session_scope(engine, read_only=True) as s:
        for q, _ in questions[:20]:  # warm caches (both paths)
            search_articles(s, settings, q, public=True, limit=5)
        for i in range(args.queries):
            q = questions[i % len(questions)][0]
            t0 = time.perf_counter()
            search_articles(s, settings, q, public=True, limit=5)
            ours.append((time.perf_counter() - t0) * 1000)
            groups = segment.query_groups(settings, q)
            if not groups:
                continue
            params = {"q": fts_query(dialect, groups)}
            t0 = time.perf_counter()
            s.connection().execute(sql, params).fetchall()
            bare.append((time.perf_counter() - t0) * 1000)
        sample = segment.query_groups(settings, questions[0][0])
        n_candidates = len(candidates(s, settings, sample, public=True, filters=_no_filter()))
    rate_full = hit_rate(engine, settings, questions)
    figures = {
        "bench": "knowledge",
        "database": dialect,
        "articles": int(total),
        "labelled_questions": len(questions),
        "top3_hit_rate": round(rate_starter, 4),
        "top3_hit_rate_at_full_size": round(rate_full, 4),
        "queries": len(ours),
        "search_p50_ms": round(statistics.median(ours), 2),
        "search_p95_ms": round(pct(ours, 95), 2),
        "search_max_ms": round(max(ours), 2),
        "bare_fts_p50_ms": round(statistics.median(bare), 2),
        "bare_fts_p95_ms": round(pct(bare, 95), 2),
        "candidates_per_query": n_candidates,
        "fill_seconds": round(fill_s, 1),
    }
    engine.dispose()
    if args.database_url is None:
        tmp.cleanup()
    print(json.dumps(figures, ensure_ascii=False))


def _no_filter() -> Any:
    from ticketing import SearchFilter

    return SearchFilter()


if __name__ == "__main__":
    main()
