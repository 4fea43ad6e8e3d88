"""Proactive policy push (政策直达, issue #12 §20–21): a policy to the enterprises it fits, by SMS.

Flow. A request (a policy published — `request_on_publish`, staff pressing 推送 —
`request_policy_push`, a new or changed profile — `request_enterprise_push`) writes a
PolicyPushRun in the requesting transaction and, once that commits, enqueues the RQ job
`ticketing.jobs.run_policy_push`. The job (`run_push`):

1. records every (policy, enterprise) pair the matcher finds as a `pending` PolicyPush row with
   one INSERT … SELECT … ON CONFLICT DO NOTHING: the unique (policy, enterprise) constraint is
   what makes a policy reach an enterprise at most once, whatever runs repeat or race;
2. sends the pending rows in batches of enterprises: each batch, in ONE transaction, claims the
   rows of its enterprises with a conditional UPDATE (pending → sent/skipped … RETURNING, so two
   jobs never claim the same row) and queues ONE SMS per enterprise in the outbox
   (ticketing.notify) in that same transaction: the policy's own text when one policy, a digest
   ("为您匹配到N项惠企政策", policy_push.yaml `digest_sms`) when several — a new enterprise, or
   an import, is not sent a burst of messages. A crash rolls the whole batch back (rows
   pending again, no SMS queued); the next run — RQ's retry, or the scheduler's
   `requeue_unfinished` for a run left unfinished — picks them up: at least once, never twice.

Enterprises that opted out are never pushed (left out by the match, and skipped again at claim
time); one without a mainland mobile (ticketing.phones.is_mainland_mobile) is logged `skipped`.
The SMS carries a short link to /portal/p/{token}: the policy's public page, where every open is
logged (`record_open`), or for a digest the list of its policies, each opening its page (its
open logged per policy); the enterprise can opt out there (`opt_out`). A token is single-purpose
(one SMS) and stored as a SHA-256 digest only, on the first push of its message; the pushes of
one message share its outbox row (`message_pushes`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, literal, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.after_commit import after_commit
from config.database import session_scope
from config.loader import load_yaml
from config.settings import Settings
from ticketing.errors import Conflict, NotFound
from ticketing.knowledge.models import (
    KbArticle,
    PolicyPush,
    PolicyPushOpen,
    PolicyPushRun,
    TicketPolicy,
)
from ticketing.models import Enterprise, Ticket, utcnow
from ticketing.phones import is_mainland_mobile
from ticketing.policy_match import fit_clause, in_force, matching_policies

log = structlog.get_logger("ticketing.policy_push")

_INFO_RUNS = "ticketing.policy_push.runs"
PUSH_PATH = "/portal/p/"
LOST_AFTER = timedelta(minutes=10)
STATUS_LABELS = {"pending": "待发送", "sent": "已推送", "skipped": "未发送"}
SKIP_LABELS = {"opted_out": "企业已退订", "no_mobile": "无大陆手机号"}


def _cfg(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "policy_push.yaml")


def today(settings: Settings) -> Any:
    from ticketing.knowledge.search import local_today

    return local_today(settings)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- requests
def _new_run(
    session: Session,
    settings: Settings,
    actor: str,
    *,
    article_id: int | None = None,
    enterprise_id: int | None = None,
) -> PolicyPushRun:
    run = PolicyPushRun(article_id=article_id, enterprise_id=enterprise_id, requested_by=actor[:64])
    session.add(run)
    session.flush()
    after_commit(session, _INFO_RUNS, [(settings, run.id)], _enqueue_all)
    return run


def request_policy_push(
    session: Session, settings: Settings, article_id: int, actor: str
) -> PolicyPushRun:
    """Push this policy to every enterprise it fits that was not told yet (staff's 推送)."""
    a = session.get(KbArticle, article_id)
    if a is None:
        raise NotFound(f"未找到知识库文章：{article_id}", field="article_id")
    if not in_force(a, today(settings)):
        raise Conflict("只有已发布、公开且在有效期内的政策才能推送", code="not_in_force")
    return _new_run(session, settings, actor, article_id=article_id)


def request_on_publish(session: Session, settings: Settings, a: KbArticle, actor: str) -> None:
    """The knowledge store's publish step: a policy now in force goes out (push_on_publish)."""
    if _cfg(settings).get("push_on_publish", True) and in_force(a, today(settings)):
        _new_run(session, settings, actor, article_id=a.id)


def request_enterprise_push(
    session: Session, settings: Settings, enterprise_id: int, actor: str
) -> PolicyPushRun:
    """Tell this (new or changed) enterprise the policies that fit it and it was not told yet."""
    return _new_run(session, settings, actor, enterprise_id=enterprise_id)


def request_push_of_all_policies(session: Session, settings: Settings, actor: str) -> PolicyPushRun:
    """Every in-force policy to every enterprise it fits and was not told yet (after an import
    of profiles): one run, so an enterprise gets one digest SMS, not one per policy."""
    return _new_run(session, settings, actor)


def _enqueue_all(items: list[tuple[Settings, int]]) -> None:
    for settings, run_id in items:
        try:
            enqueue(settings, run_id)
        except Exception:  # committed already; the scheduler's requeue_unfinished retries
            log.exception("policy_push_enqueue_failed", run_id=run_id)


def enqueue(settings: Settings, run_id: int) -> None:
    from rq import Retry

    from config.queues import get_queue
    from ticketing.notify import _snapshot

    get_queue(settings, "notify").enqueue_call(
        "ticketing.jobs.run_policy_push",
        args=(run_id, _snapshot(settings)),
        retry=Retry(max=3, interval=[30, 300, 1800]),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"policy push run {run_id}",
    )


def requeue_unfinished(settings: Settings, engine: Engine, *, older_than: timedelta) -> int:
    """The scheduler's safety net: runs requested long ago and never finished are queued again
    (Redis down at commit, a worker killed mid-run). Running a run twice is harmless."""
    cutoff = utcnow() - older_than
    with session_scope(engine, read_only=True) as s:
        ids = list(
            s.exec(
                select(PolicyPushRun.id).where(
                    col(PolicyPushRun.finished_at).is_(None),
                    col(PolicyPushRun.requested_at) <= cutoff,
                )
            )
        )
    for rid in ids:
        enqueue(settings, rid or 0)
    return len(ids)


# ---------------------------------------------------------------- the job's work
@dataclass
class RunResult:
    run_id: int
    matched: int = 0
    sent: int = 0
    skipped: int = 0
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "matched": self.matched,
            "sent": self.sent,
            "skipped": self.skipped,
            "finished": self.finished,
        }


_INSERT = (
    "INSERT INTO policy_push (article_id, enterprise_id, run_id, status, created_at, open_count) "
    "SELECT :aid, e.id, :rid, 'pending', :now, 0 FROM enterprise e "
    "WHERE {where} AND e.push_opt_out = :false ON CONFLICT DO NOTHING"
)


def record_matches(session: Session, run_id: int, a: KbArticle, enterprise_id: int | None) -> int:
    """Step 1: a pending push row for every enterprise the policy fits (all, or the one given)
    and that has none yet. Returns the rows added."""
    params: dict[str, Any] = {"aid": a.id, "rid": run_id, "now": utcnow(), "false": False}
    where = fit_clause(a, session.get_bind().dialect.name, params)
    if enterprise_id is not None:
        where += " AND e.id = :eid"
        params["eid"] = enterprise_id
    res = session.execute(text(_INSERT.format(where=where)), params)
    return int(getattr(res, "rowcount", 0) or 0)


def _sms(settings: Settings, articles: list[KbArticle], ent_name: str, token: str) -> str:
    """The one SMS of one message: a policy's own text, or the digest of several
    (policy_push.yaml `sms` / `digest_sms`)."""
    cfg = _cfg(settings)
    base = settings.public_base_url.rstrip("/")
    link = f"{base}{PUSH_PATH}{token}"
    a = articles[0]
    deadline = ""
    if len(articles) == 1 and a.apply_until is not None:
        deadline = str(cfg.get("deadline") or "").format(date=a.apply_until.strftime("%Y-%m-%d"))
    return str(cfg["sms"] if len(articles) == 1 else cfg["digest_sms"]).format(
        name=(ent_name or "贵单位")[:30],
        title=a.title[:60],
        count=len(articles),
        deadline=deadline,
        link=link,
        optout=f"{link}/optout",
    )


def _pending_in(article_ids: list[int], enterprise_id: int | None) -> list[Any]:
    """A run's scope: the pending pushes of its policies (of its enterprise when it has one)."""
    scope: list[Any] = [col(PolicyPush.article_id).in_(article_ids), PolicyPush.status == "pending"]
    if enterprise_id is not None:
        scope.append(PolicyPush.enterprise_id == enterprise_id)
    return scope


def send_batch(
    session: Session,
    settings: Settings,
    article_ids: list[int],
    *,
    limit: int,
    enterprise_id: int | None = None,
    on_queued: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """Step 2, one batch in the caller's transaction: claim the pending pushes of these policies
    for up to `limit` enterprises and queue ONE SMS per enterprise — the policy's own when one,
    a digest ("为您匹配到N项惠企政策") when several, so a new enterprise is not sent a burst.
    The pushes of one message share its outbox row; the first holds the link's token digest.
    Returns (claimed, sent, skipped) in pushes; 0 claimed = nothing left.
    `on_queued(push_id)` is called after each SMS is queued (tests use it to crash mid-batch)."""
    from ticketing.notify import send_sms

    if not article_ids:
        return 0, 0, 0
    pt = PolicyPush.__table__.c  # type: ignore[attr-defined]
    scope = _pending_in(article_ids, enterprise_id)
    ents = (
        select(PolicyPush.enterprise_id)
        .where(*scope)
        .distinct()
        .order_by(col(PolicyPush.enterprise_id))
        .limit(limit)
    )
    q = select(PolicyPush.id).where(*scope, col(PolicyPush.enterprise_id).in_(ents))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = [i for i in session.exec(q) if i is not None]
    if not ids:
        return 0, 0, 0
    claimed = [
        int(r[0])
        for r in session.execute(
            PolicyPush.__table__.update()  # type: ignore[attr-defined]
            .where(pt.id.in_(ids), pt.status == "pending")
            .values(status="claimed")
            .returning(pt.id)
        )
    ]
    if not claimed:
        return 0, 0, 0
    rows = session.exec(
        select(PolicyPush, Enterprise, KbArticle)
        .join(Enterprise, col(Enterprise.id) == col(PolicyPush.enterprise_id))
        .join(KbArticle, col(KbArticle.id) == col(PolicyPush.article_id))
        .where(col(PolicyPush.id).in_(claimed))
        .order_by(col(PolicyPush.enterprise_id), col(PolicyPush.id))
    ).all()
    groups: dict[int, list[tuple[PolicyPush, Enterprise, KbArticle]]] = {}
    for row in rows:
        groups.setdefault(row[1].id or 0, []).append(row)
    now = utcnow()
    sent = skipped = 0
    for group in groups.values():
        ent = group[0][1]
        pushes = [p for p, _, _ in group]
        if ent.push_opt_out or not is_mainland_mobile(ent.push_mobile):
            for push in pushes:
                push.status = "skipped"
                push.skip_reason = "opted_out" if ent.push_opt_out else "no_mobile"
                session.add(push)
            skipped += len(pushes)
            continue
        token = secrets.token_urlsafe(9)
        body = _sms(settings, [a for _, _, a in group], ent.name, token)
        msg = send_sms(session, settings, ent.push_mobile or "", body, kind="policy_push")
        for i, push in enumerate(pushes):
            push.status, push.sent_at, push.outbox_id = "sent", now, msg.id
            push.token_digest = digest(token) if i == 0 else None
            session.add(push)
        sent += len(pushes)
        if on_queued is not None:
            on_queued(pushes[0].id or 0)
    session.flush()
    return len(claimed), sent, skipped


def _pending(session: Session, article_ids: list[int], enterprise_id: int | None) -> int:
    if not article_ids:
        return 0
    q = select(func.count()).select_from(PolicyPush)
    return int(session.exec(q.where(*_pending_in(article_ids, enterprise_id))).one())


def _run_policies(session: Session, run: PolicyPushRun, day: Any) -> list[KbArticle]:
    """What a run pushes: its policy (publish, 推送), the policies fitting its enterprise (a new
    or changed profile), or every in-force policy (neither: an import of profiles)."""
    from ticketing.policy_match import in_force_policies

    if run.article_id is not None:
        a = session.get(KbArticle, run.article_id)
        return [a] if a is not None and in_force(a, day) else []
    if run.enterprise_id is not None:
        return matching_policies(session, run.enterprise_id, day)
    return in_force_policies(session, day)


def run_push(
    engine: Engine,
    settings: Settings,
    run_id: int,
    *,
    batch_size: int | None = None,
    on_queued: Callable[[int], None] | None = None,
) -> RunResult:
    """The whole run (the RQ job's work): record the matches, then send them batch by batch,
    each batch its own transaction; mark the run finished. Safe to repeat or run concurrently."""
    size = int(batch_size or _cfg(settings).get("batch_size") or 500)
    result = RunResult(run_id)
    with session_scope(engine) as s:
        run = s.get(PolicyPushRun, run_id)
        if run is None:
            raise NotFound(f"未找到推送任务：{run_id}", field="run_id")
        if run.finished_at is not None:
            result.finished = True
            return result
        ent_id = run.enterprise_id
        policies = _run_policies(s, run, today(settings))
        article_ids = [p.id or 0 for p in policies]
        for p in policies:
            result.matched += record_matches(s, run_id, p, ent_id)
    while True:
        with session_scope(engine) as s:
            claimed, sent, skipped = send_batch(
                s, settings, article_ids, limit=size, enterprise_id=ent_id, on_queued=on_queued
            )
        result.sent += sent
        result.skipped += skipped
        if claimed == 0:
            break
    with session_scope(engine) as s:
        # rows another run held when this one looked stay pending if that run dies: then this
        # run stays unfinished too, for the scheduler's requeue_unfinished
        result.finished = _pending(s, article_ids, ent_id) == 0
        run = s.get(PolicyPushRun, run_id)
        if run is not None:
            run.matched += result.matched
            run.sent += result.sent
            run.skipped += result.skipped
            run.finished_at = utcnow() if result.finished else None
            s.add(run)
    log.info("policy_push_run", **result.as_dict())
    return result


# ---------------------------------------------------------------- the enterprise's side
def push_by_token(session: Session, token: str) -> PolicyPush | None:
    if not token or len(token) > 64:
        return None
    return session.exec(select(PolicyPush).where(PolicyPush.token_digest == digest(token))).first()


def message_pushes(session: Session, push: PolicyPush) -> list[PolicyPush]:
    """The pushes one SMS carried (the link's push and those sharing its outbox row), in order:
    one for a policy's own SMS, several for a digest."""
    if push.outbox_id is None:
        return [push]
    return list(
        session.exec(
            select(PolicyPush)
            .where(
                PolicyPush.enterprise_id == push.enterprise_id,
                PolicyPush.outbox_id == push.outbox_id,
            )
            .order_by(col(PolicyPush.id))
        )
    )


def record_open(session: Session, push: PolicyPush) -> None:
    """Log one open of a pushed link (every open a row; the push keeps the first and a count)."""
    now = utcnow()
    session.add(PolicyPushOpen(push_id=push.id or 0, at=now))
    pt = PolicyPush.__table__.c  # type: ignore[attr-defined]
    session.execute(
        PolicyPush.__table__.update()  # type: ignore[attr-defined]
        .where(pt.id == push.id)
        .values(
            open_count=pt.open_count + 1,
            first_opened_at=func.coalesce(
                pt.first_opened_at, literal(now, type_=pt.first_opened_at.type)
            ),
        )
    )


def opt_out(session: Session, enterprise_id: int) -> Enterprise:
    """The enterprise stops receiving pushes (from its link, or recorded by staff)."""
    ent = session.get(Enterprise, enterprise_id)
    if ent is None:
        raise NotFound("未找到企业档案", field="enterprise_id")
    if not ent.push_opt_out:
        ent.push_opt_out, ent.push_opt_out_at = True, utcnow()
        session.add(ent)
        pt = PolicyPush.__table__.c  # type: ignore[attr-defined]
        session.execute(
            PolicyPush.__table__.update()  # type: ignore[attr-defined]
            .where(pt.enterprise_id == enterprise_id, pt.status == "pending")
            .values(status="skipped", skip_reason="opted_out")
        )
    return ent


# ---------------------------------------------------------------- staff views
@dataclass(frozen=True)
class PushFigures:
    matched: int
    sent: int
    skipped: int
    pending: int
    opened: int
    runs: int
    last_run_at: Any


def policy_figures(session: Session, article_id: int) -> PushFigures:
    """The push log of one policy, counted (the KB article page shows it)."""
    rows = session.execute(
        text(
            "SELECT status, count(*), count(first_opened_at) FROM policy_push "
            "WHERE article_id = :a GROUP BY status"
        ),
        {"a": article_id},
    ).all()
    by = {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
    runs = session.exec(
        select(PolicyPushRun)
        .where(PolicyPushRun.article_id == article_id)
        .order_by(col(PolicyPushRun.id).desc())
    ).all()
    return PushFigures(
        matched=sum(n for n, _ in by.values()),
        sent=by.get("sent", (0, 0))[0],
        skipped=by.get("skipped", (0, 0))[0],
        pending=by.get("pending", (0, 0))[0] + by.get("claimed", (0, 0))[0],
        opened=sum(o for _, o in by.values()),
        runs=len(runs),
        last_run_at=runs[0].requested_at if runs else None,
    )


def enterprise_pushes(session: Session, enterprise_id: int) -> list[tuple[PolicyPush, KbArticle]]:
    """What this enterprise was pushed, newest first."""
    rows = session.exec(
        select(PolicyPush, KbArticle)
        .join(KbArticle, col(KbArticle.id) == col(PolicyPush.article_id))
        .where(PolicyPush.enterprise_id == enterprise_id)
        .order_by(col(PolicyPush.id).desc())
    ).all()
    return [(p, a) for p, a in rows]


# ---------------------------------------------------------------- ticket ↔ policy
def link_ticket_policy(session: Session, ticket_id: int, article_id: int, actor: str) -> bool:
    """Link a ticket to the policy it is about (once); False when already linked."""
    a = session.get(KbArticle, article_id)
    if a is None or a.kind != "policy":
        raise NotFound(f"未找到政策：{article_id}", field="article_id")
    if session.get(Ticket, ticket_id) is None:
        raise NotFound("未找到工单", field="ticket_id")
    have = session.exec(
        select(TicketPolicy.id).where(
            TicketPolicy.ticket_id == ticket_id, TicketPolicy.article_id == article_id
        )
    ).first()
    if have is not None:
        return False
    session.add(TicketPolicy(ticket_id=ticket_id, article_id=article_id, linked_by=actor[:64]))
    session.flush()
    return True


def ticket_policies(session: Session, ticket_id: int) -> list[KbArticle]:
    return list(
        session.exec(
            select(KbArticle)
            .join(TicketPolicy, col(TicketPolicy.article_id) == col(KbArticle.id))
            .where(TicketPolicy.ticket_id == ticket_id)
            .order_by(col(TicketPolicy.id))
        )
    )


def policy_tickets(session: Session, article_id: int, limit: int = 50) -> list[Ticket]:
    return list(
        session.exec(
            select(Ticket)
            .join(TicketPolicy, col(TicketPolicy.ticket_id) == col(Ticket.id))
            .where(TicketPolicy.article_id == article_id)
            .order_by(col(Ticket.id).desc())
            .limit(limit)
        )
    )
