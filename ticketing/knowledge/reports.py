"""The knowledge base's upkeep and its gap reports.

- expire_and_remind (daily, the scheduler's "knowledge" job): articles past their expiry date are
  marked expired (search already hides them by date), and the owning department is told by SMS
  through the notifier, once per expiry date, when an article will expire within
  knowledge.yaml's expiry_reminder_days.
- no_hit_articles: published articles no search put in its top 3 and nobody opened in a period.
- unanswered_questions: searches that found nothing, grouped by question, most frequent first.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.knowledge.models import ArticleStatus, KbArticle, KbQueryLog
from ticketing.knowledge.search import local_today
from ticketing.knowledge.store import SYSTEM, transition
from ticketing.models import Department

log = structlog.get_logger("ticketing.knowledge")


def expire_and_remind(session: Session, settings: Settings) -> dict[str, int]:
    """Mark what has expired; remind owning departments of what soon will. Idempotent."""
    from ticketing.notify import send_sms

    cfg = load_yaml(settings, "knowledge.yaml")
    days = int(cfg.get("expiry_reminder_days", 30))
    template = str(cfg.get("expiry_reminder_sms") or "")
    today = local_today(settings)
    live = (ArticleStatus.published, ArticleStatus.reviewed, ArticleStatus.draft)
    expired = 0
    for a in session.exec(
        select(KbArticle).where(col(KbArticle.status).in_(live), col(KbArticle.expires_on) < today)
    ):
        transition(session, a.id or 0, "expire", SYSTEM, note="已过失效日期")  # loaded: id set
        expired += 1
    reminded = failed = 0
    soon = session.exec(
        select(KbArticle).where(
            col(KbArticle.status).in_(live),
            col(KbArticle.expires_on) >= today,
            col(KbArticle.expires_on) <= today + timedelta(days=days),
        )
    ).all()
    heads = {d.code: d for d in session.exec(select(Department))}
    for a in soon:
        if a.expires_on is None or a.expiry_reminded_on == a.expires_on:
            continue  # expires_on is never None here (filtered above): the check narrows it
        dept = heads.get(a.department_code)
        if dept is not None and dept.head_phone and template:
            body = template.format_map(
                {"title": a.title, "id": a.id, "expires_on": a.expires_on.isoformat()}
            )
            try:
                send_sms(session, settings, dept.head_phone, body, kind="kb_expiry")
            except InvalidInput as e:  # a department's bad number must not stop the others
                log.warning("kb_expiry_sms_refused", department=a.department_code, error=e.message)
                failed += 1
        a.expiry_reminded_on = a.expires_on
        session.add(a)
        reminded += 1
    session.flush()
    return {"expired": expired, "reminded": reminded, "sms_refused": failed}


def run_knowledge_upkeep(snapshot: dict[str, Any] | None = None) -> dict[str, int]:
    """The scheduler's daily job (RQ): expire_and_remind in its own transaction."""
    from config.database import make_engine, session_scope
    from ticketing.jobs import _settings

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            return expire_and_remind(s, settings)
    finally:
        engine.dispose()


def no_hit_articles(
    session: Session, since: datetime, until: datetime, *, department: str | None = None
) -> list[KbArticle]:
    """Published articles that no search ranked in its top 3 and nobody opened in [since, until)."""
    hit: set[int] = set()
    rows = session.exec(
        select(KbQueryLog.kind, KbQueryLog.top_ids, KbQueryLog.article_id).where(
            KbQueryLog.at >= since, KbQueryLog.at < until
        )
    )
    for kind, top, article_id in rows:
        if kind == "open" and article_id is not None:
            hit.add(article_id)
        else:
            hit.update(int(i) for i in top or ())
    q = select(KbArticle).where(KbArticle.status == ArticleStatus.published)
    if department:
        q = q.where(KbArticle.department_code == department)
    return [a for a in session.exec(q.order_by(col(KbArticle.id))) if a.id not in hit]


def unanswered_questions(
    session: Session, since: datetime, until: datetime, *, limit: int = 50
) -> list[tuple[str, int]]:
    """Questions searched in [since, until) that found no article: (question, times), most first."""
    counts: Counter[str] = Counter(
        q
        for q in session.exec(
            select(KbQueryLog.query).where(
                KbQueryLog.kind == "search",
                KbQueryLog.result_count == 0,
                KbQueryLog.at >= since,
                KbQueryLog.at < until,
            )
        )
        if q
    )
    return counts.most_common(limit)
