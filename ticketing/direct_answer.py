"""直接答复: a consultation answered at first contact from the knowledge base, closed at intake.

An agent (or a dispatcher, on a consultation waiting for dispatch) records the answer given: the
knowledge-base articles used and a short note. The matter is a ticket like any other — numbered,
in the caller's and the enterprise's history — but it is not dispatched: no sub-order, no
department deadline (deadline_at None), dispatch_mode "direct", status resolved, waiting for
the caller's rating. When notices.yaml has `direct_answer_sms`, that short answer SMS (with the
rating link) replaces the 受理告知 SMS; its Notice row (kind "direct_answer") carries the token the
public rating uses.

The rating (ticketing.evaluation.evaluate) closes it (满意/基本满意), or, 不满意, reopens it with a
fresh committed deadline as any ticket — and then it is dispatched at once by the same rule
auto-dispatch uses (a routing rule, or the classifier's department above the threshold); when
neither names a department it waits for a dispatcher. Departments are charged only from that
dispatch on: a matter closed by 直接答复 has no sub-order, so no department indicator counts it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput, TicketingError
from ticketing.knowledge.models import ArticleKind, ArticleStatus, DirectAnswer, KbArticle
from ticketing.lifecycle import TICKET_LABELS, live_suborders, lock_ticket, transition_ticket
from ticketing.models import SATISFIED_RATINGS, Ticket, TicketStatus, utcnow
from ticketing.schemas import TicketIn

DIRECT = "direct"  # Ticket.dispatch_mode of a matter answered at first contact
MAX_NOTE = 500
MAX_ARTICLES = 5


def _check_answer(
    session: Session, article_ids: list[int] | None, note: str | None
) -> tuple[list[KbArticle], str]:
    text = " ".join((note or "").split())
    ids = list(dict.fromkeys(int(i) for i in (article_ids or [])))
    if not ids and not text:
        raise InvalidInput("请选择答复所用的知识库文章或填写答复要点", field="article_ids")
    if len(ids) > MAX_ARTICLES:
        raise InvalidInput(f"最多引用 {MAX_ARTICLES} 篇文章", field="article_ids")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"答复要点不能超过 {MAX_NOTE} 个字", field="note", max_length=MAX_NOTE)
    found = {a.id: a for a in session.exec(select(KbArticle).where(col(KbArticle.id).in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"未找到知识库文章：{missing}", field="article_ids", missing=missing)
    stale = [i for i in ids if found[i].status != ArticleStatus.published]
    if stale:
        raise InvalidInput(
            f"文章未发布或已失效，不能用于答复：{stale}", field="article_ids", unpublished=stale
        )
    return [found[i] for i in ids], text


def answer_at_intake(
    session: Session,
    settings: Settings,
    data: TicketIn | dict[str, Any],
    *,
    article_ids: list[int] | None,
    note: str | None,
    actor: str,
) -> Ticket:
    """A new matter answered on the spot: one numbered ticket, resolved at intake, not dispatched.

    A hotline intake whose call already has a ticket answers that ticket (it must still be
    waiting for dispatch)."""
    from ticketing.intake import prepare
    from ticketing.intake_write import existing_call_ticket, insert_ticket
    from ticketing.numbering import next_number

    draft = prepare(data, actor=actor)
    if draft.departments:
        raise InvalidInput("直接答复的事项不派单，请不要指定部门", field="departments")
    articles, text = _check_answer(session, article_ids, note)
    existing = existing_call_ticket(session, draft)
    if existing is not None:
        return answer_waiting(
            session,
            settings,
            existing,
            article_ids=[a.id or 0 for a in articles],  # loaded articles: ids set
            note=text,
            actor=actor,
        )
    now = utcnow()
    number = next_number(session, settings, now)
    ticket = insert_ticket(
        session, settings, draft, number=number, now=now, committed_deadline=False
    )
    _close(session, settings, ticket, articles, text, actor, notify_acceptance=draft.send_notice)
    return ticket


def answer_waiting(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    *,
    article_ids: list[int] | None,
    note: str | None,
    actor: str,
) -> Ticket:
    """A consultation waiting for dispatch, answered directly from the knowledge base."""
    articles, text = _check_answer(session, article_ids, note)
    ticket = lock_ticket(session, ticket.id)
    if ticket.status != TicketStatus.pending_dispatch or live_suborders(session, ticket):
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”"
            f"({ticket.status})，只有待派单的工单可以直接答复",
            code="illegal_transition",
            current=ticket.status,
        )
    _close(session, settings, ticket, articles, text, actor, notify_acceptance=True)
    return ticket


def _close(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    articles: list[KbArticle],
    note: str,
    actor: str,
    *,
    notify_acceptance: bool,
) -> None:
    ids = [a.id or 0 for a in articles]  # loaded articles: ids set
    previous_deadline = ticket.deadline_at
    ticket.dispatch_mode = DIRECT
    ticket.deadline_at = None
    ticket.sla_basis = None
    # ticket.id or 0: a stored ticket, id set
    session.add(
        DirectAnswer(ticket_id=ticket.id or 0, article_ids=ids, note=note, answered_by=actor[:64])
    )
    transition_ticket(
        session,
        ticket,
        TicketStatus.resolved,
        actor=actor,
        action="direct_answered",
        articles=ids,
        titles=[a.title for a in articles],
        note=note,
        previous_deadline=previous_deadline,
    )
    session.flush()
    link_answered_policies(session, ticket, articles, actor)
    _notify(session, settings, ticket, articles, note, notify_acceptance=notify_acceptance)


def link_answered_policies(
    session: Session, ticket: Ticket, articles: list[KbArticle], actor: str
) -> None:
    """A matter answered from a policy article is a ticket about that policy (issue #12)."""
    from ticketing.policy_push import link_ticket_policy

    for a in articles:
        if a.kind == ArticleKind.policy:
            link_ticket_policy(session, ticket.id or 0, a.id or 0, actor)


def _notify(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    articles: list[KbArticle],
    note: str,
    *,
    notify_acceptance: bool,
) -> None:
    """The short answer SMS with the rating link (notices.yaml direct_answer_sms) or, when that is
    not configured, the usual acceptance notice."""
    from ticketing.notices import (
        create_acceptance_notice,
        rating_notice,
    )
    from ticketing.notify import send_sms
    from ticketing.phones import is_mainland_mobile

    cfg = load_yaml(settings, "notices.yaml")
    template = str(cfg.get("direct_answer_sms") or "")
    if not template:
        if notify_acceptance:
            create_acceptance_notice(session, settings, ticket)
        return
    # like the acceptance notice (ticketing.notices): the rating token is single-purpose and
    # stored as a digest, and staff see the SMS with its link redacted, so nobody but the caller
    # can rate the answer in the caller's name
    answer = note or "；".join(a.summary or a.title for a in articles)
    values = {
        "number": ticket.number,
        "answer": answer[:200],
        "articles": "、".join(f"《{a.title}》" for a in articles) or "—",
        "hotline": str(cfg.get("hotline", "")),
    }
    notice, body = rating_notice(
        session, settings, ticket, template, "direct_answer_sms", values, "direct_answer"
    )
    outbox_id = None
    phone = ticket.submitter_phone
    if phone is not None and is_mainland_mobile(phone):  # SMS to the public: mainland mobiles only
        outbox_id = send_sms(
            session,
            settings,
            phone,
            body,
            ticket_id=ticket.id,
            kind="direct_answer",
        ).id
    events.record(
        session,
        ticket.id,
        "system",
        "notice_created",
        notice_id=notice.id,
        kind="direct_answer",
        sms_outbox_id=outbox_id,
    )


def after_evaluation(session: Session, settings: Settings, ticket: Ticket, overall: str) -> None:
    """Called by evaluation for a directly answered ticket: keep the rating on the answer; on
    不满意 (the ticket has just been reopened) dispatch it by the auto-dispatch rule."""
    from ticketing import dispatch as dispatching

    da = session.exec(select(DirectAnswer).where(DirectAnswer.ticket_id == ticket.id)).first()
    if da is None:
        return
    da.outcome = str(overall)
    session.add(da)
    if ticket.status != TicketStatus.reopened:
        return
    codes, basis = _departments_for(session, settings, ticket)
    if not codes:
        events.record(
            session,
            ticket.id,
            "system",
            "manual_dispatch_required",
            reason="直接答复不满意，未能自动确定承办部门",
            direct_answer_id=da.id,
        )
        return
    try:
        with session.begin_nested():
            dispatching.dispatch_locked(
                session,
                settings,
                ticket,
                codes,
                actor="system",
                mode="auto",
                basis={**basis, "after": "direct_answer_unsatisfied"},
            )
    except TicketingError as e:
        events.record(
            session,
            ticket.id,
            "system",
            "manual_dispatch_required",
            reason=f"直接答复不满意，自动派单失败：{e.message}",
            direct_answer_id=da.id,
        )
        return
    da.dispatched_at = utcnow()
    session.add(da)


def _departments_for(
    session: Session, settings: Settings, ticket: Ticket
) -> tuple[list[str], dict[str, Any]]:
    """auto-dispatch's choice for this ticket (ticketing.dispatch_rule.decide, the one rule: a
    routing rule, else a confident classification), from the stored suggestion."""
    from functools import partial
    from types import SimpleNamespace

    from ticketing.dispatch import departments_by_code
    from ticketing.dispatch_rule import decide

    stored = SimpleNamespace(
        category=ticket.category,
        urgency=ticket.urgency,
        department=ticket.suggested_department,
        confidence=ticket.classifier_confidence,
        details={},
    )
    decision = decide(
        settings, ticket.title, ticket.content, stored, partial(departments_by_code, session)
    )
    return decision.codes, decision.basis


def first_contact_figures(session: Session, since: Any, until: Any) -> dict[str, Any]:
    """The first-contact figures of tickets created (and searches made) in [since, until):

    - 直接解答率 direct_answer_rate = consultations closed at first contact (answered directly and
      not turned into a dispatch after 不满意) / all consultations, where a consultation is a ticket
      of category 投诉咨询 (policy enquiries route there) or any directly answered ticket;
    - knowledge_hit_rate = searches that found at least one article / all searches (staff and
      public);
    - direct_answer_satisfaction = rated direct answers rated 满意 or 基本满意 / rated ones;
    - top_unanswered: the questions searched most that found nothing.
    """
    from sqlalchemy import or_

    from ticketing.knowledge.models import KbQueryLog
    from ticketing.knowledge.reports import unanswered_questions
    from ticketing.models import Category

    in_period = (Ticket.created_at >= since, Ticket.created_at < until)
    direct_rows = session.exec(
        select(DirectAnswer.outcome, DirectAnswer.dispatched_at)
        .join(Ticket, col(Ticket.id) == col(DirectAnswer.ticket_id))
        .where(*in_period)
    ).all()
    direct_ids = select(DirectAnswer.ticket_id)
    consultations = session.exec(
        select(func.count())
        .select_from(Ticket)
        .where(
            *in_period,
            or_(col(Ticket.category) == Category.complaint.value, col(Ticket.id).in_(direct_ids)),
        )
    ).one()
    dispatched = sum(1 for _, d in direct_rows if d is not None)
    closed_first = len(direct_rows) - dispatched
    rated = [o for o, _ in direct_rows if o]
    satisfied = sum(1 for o in rated if o in SATISFIED_RATINGS)
    searches, with_hits = session.exec(
        select(
            func.count(),
            func.coalesce(func.sum(case((col(KbQueryLog.result_count) > 0, 1), else_=0)), 0),
        ).where(KbQueryLog.kind == "search", KbQueryLog.at >= since, KbQueryLog.at < until)
    ).one()

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "consultations": int(consultations),
        "direct_answers": len(direct_rows),
        "direct_answers_dispatched": dispatched,
        "direct_answer_rate": ratio(closed_first, int(consultations)),
        "searches": int(searches),
        "searches_with_hits": int(with_hits),
        "knowledge_hit_rate": ratio(int(with_hits), int(searches)),
        "direct_answers_rated": len(rated),
        "direct_answers_satisfied": satisfied,
        "direct_answer_satisfaction": ratio(satisfied, len(rated)),
        "top_unanswered": [
            {"question": q, "count": n}
            for q, n in unanswered_questions(session, since, until, limit=10)
        ],
    }
