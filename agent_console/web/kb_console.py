"""First contact from the knowledge base, in the agent console and at the dispatch desk.

Agent console (role rows web.console + the API rows of the same actions):
- /console/kb/suggest: the top articles for what the agent types (the search box, else the pop
  form's 诉求内容, else the call's transcript or its ticket's text), re-fetched by htmx as the
  agent types (debounced); the ticked articles stay ticked and listed.
- /kb/{id}/panel: one article opened in the panel (Alt+1…5 open the suggestions).
- /console/kb/sms: the article sent to the caller by SMS (ticketing.send_sms, the one notifier;
  mainland mobiles only, like every SMS to the public).
- /console/pop/{call_id}/direct-answer: 直接答复 — the call's matter recorded and closed at intake
  (ticketing.answer_at_intake: numbered, not dispatched, no department deadline).

Dispatch desk: /dispatch/{number}/answer, a waiting consultation answered directly
(ticketing.answer_waiting). Both record the articles used and a short note.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, select

from agent_console.access import visible_ticket
from agent_console.web.core import (
    PageNotFound,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
)
from agent_console.web.kb import KIND_LABELS, _log_search, log_open_of
from agent_console.web.tickets import departments
from callcenter.live import link_ticket
from config.database import parse_row_id, session_scope
from ticketing import (
    ArticleStatus,
    KbArticle,
    NotFound,
    Ticket,
    TicketEvent,
    TicketIn,
    TicketingError,
    TicketStatus,
    User,
    answer_at_intake,
    answer_waiting,
    is_mainland_mobile,
    local_today,
    normalise_phone,
    record_event,
    search_articles,
    send_sms,
)

router = APIRouter(include_in_schema=False)
log = structlog.get_logger("agent_console.web.kb_console")
SUGGEST = 5
SMS_CHARS = 300


def _ids(values: list[Any]) -> list[int]:
    out = []
    for v in values:
        n = parse_row_id(str(v))
        if n is not None:
            out.append(n)
    return list(dict.fromkeys(out))[:5]


def _call_text(request: Request, call_id: str) -> str:
    """What the call has said so far: the live call's transcript, else its ticket's transcript or
    content (a call filed, or transcribed after a voicemail)."""
    from agent_console.web.console import _linked_ticket, _live_call

    if not call_id or len(call_id) > 64:
        return ""
    try:
        call = _live_call(request, call_id)
    except Exception:  # Redis away: suggest from what is typed only
        return ""
    if call and call.get("transcript"):
        return str(call["transcript"])
    number = _linked_ticket(request, call_id, call) if call else None
    if not number:
        return ""
    with session_scope(request.app.state.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).first()
        return ticket_text(s, t) if t else ""


def ticket_text(session: Any, t: Ticket) -> str:
    """A ticket's question for the knowledge base: its latest transcript, else title + content."""
    ev = session.exec(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == t.id, TicketEvent.action == "transcript_attached")
        .order_by(col(TicketEvent.id).desc())
    ).first()
    if ev is not None and (ev.detail or {}).get("text"):
        return str(ev.detail["text"])
    return f"{t.title or ''} {t.content or ''}".strip()


def suggestions(request: Request, question: str, picked: list[int]) -> dict[str, Any]:
    """The hits for a question, with the already-ticked articles kept (first, still ticked)."""
    state = request.app.state
    question = " ".join(question.split())[:200]
    with session_scope(state.engine, read_only=True) as s:
        hits = (
            search_articles(s, state.settings, question, public=False, limit=SUGGEST)
            if (question)
            else []
        )
        shown = {h.article.id for h in hits}
        today = local_today(state.settings)
        kept = [
            a
            for a in s.exec(select(KbArticle).where(col(KbArticle.id).in_(picked)))
            if a.id not in shown
            and a.status == ArticleStatus.published
            and (a.expires_on is None or a.expires_on >= today)
        ]
        depts = departments(s)
    if question:
        _log_search(request, question, hits)
    return {
        "question": question,
        "hits": hits,
        "kept": kept,
        "picked": set(picked),
        "depts": depts,
        "kinds": KIND_LABELS,
    }


@router.get("/console/kb/suggest", name="web.console_kb_suggest")
def console_kb_suggest(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    require_role(user, "knowledge.search")
    qp = request.query_params
    question = (qp.get("q") or "").strip() or (qp.get("content") or "").strip()
    if not question:
        question = _call_text(request, qp.get("call_id") or "")
    ctx = suggestions(request, question, _ids(qp.getlist("article_ids")))
    ctx["call_id"] = qp.get("call_id") or ""
    return render(request, "_kb_hits.html", ctx)


def _published(s: Any, request: Request, raw: str) -> KbArticle:
    a = s.get(KbArticle, page_row_id(raw, "未找到知识库文章"))
    today = local_today(request.app.state.settings)
    if (
        a is None
        or a.status != ArticleStatus.published
        or (a.expires_on is not None and a.expires_on < today)
    ):
        raise PageNotFound("该文章不存在、未发布或已失效")
    return a


@router.get("/kb/{article_id}/panel", name="web.kb_panel")
def kb_panel(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    """One published article opened beside the suggestions (console and dispatch desk)."""
    require_role(user, "knowledge.get")
    with session_scope(request.app.state.engine, read_only=True) as s:
        a = _published(s, request, article_id)
        depts = departments(s)
    log_open_of(request, a.id or 0, public=False)
    return render(
        request,
        "_kb_view.html",
        {
            "a": a,
            "depts": depts,
            "kinds": KIND_LABELS,
            "call_id": request.query_params.get("call_id") or "",
        },
    )


def sms_text(request: Request, a: KbArticle) -> str:
    """The article as an SMS: title, short answer, and the public page when it is public."""
    base = request.app.state.settings.public_base_url.rstrip("/")
    tail = f" 详见 {base}/portal/kb/{a.id}" if a.is_public else ""
    answer = a.summary or a.body_text[:120]
    room = SMS_CHARS - len(tail) - len(a.title) - 12
    return f"【赤壁店小二】《{a.title}》：{answer[: max(room, 20)]}{tail}"


@router.post("/console/kb/sms", name="web.console_kb_sms")
async def console_kb_sms(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """Send an article to the caller of a live call (mainland mobiles only)."""
    from agent_console.web.console import _linked_ticket, _live_call

    require_role(user, "tickets.direct_answer")
    form = await request.form()
    call_id = str(form.get("call_id") or "")
    raw = str(form.get("article_id") or "")
    state = request.app.state
    call = await run_in_threadpool(_live_call, request, call_id) if call_id else None
    if call is None:
        return _sms_result(request, "通话已结束，无法取得来电号码", ok=False)
    try:
        phone = normalise_phone(str(call.get("caller") or ""))
    except TicketingError:
        phone = ""
    if not is_mainland_mobile(phone):
        return _sms_result(request, "来电号码不是大陆手机号，不能发送短信，请口头告知", ok=False)
    number = await run_in_threadpool(_linked_ticket, request, call_id, call)

    def write() -> None:
        with session_scope(state.engine) as s:
            a = _published(s, request, raw)
            t = s.exec(select(Ticket).where(Ticket.number == number)).first() if number else None
            msg = send_sms(s, state.settings, phone, sms_text(request, a),
                           ticket_id=t.id if t else None, kind="kb_article")  # fmt: skip
            if t is not None:
                record_event(s, t.id, user.username, "kb_article_sent", article_id=a.id,
                             title=a.title, sms_outbox_id=msg.id)  # fmt: skip

    try:
        await run_in_threadpool(write)
    except TicketingError as e:
        return _sms_result(request, e.message, ok=False)
    log.info("kb_article_sms", call_id=call_id, article=raw, user=user.username)
    return _sms_result(request, "已发送短信给来电人", ok=True)


def _sms_result(request: Request, message: str, *, ok: bool) -> Response:
    return render(
        request, "_kb_note.html", {"ok": ok, "message": message}, status=200 if ok else 422
    )


@router.post("/console/pop/{call_id}/direct-answer", name="web.console_direct_answer")
async def console_direct_answer(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """直接答复 at intake: the call's matter recorded with the articles used and a short note,
    closed as 直接答复 (numbered, in the caller's history, not dispatched); linked to the call."""
    from agent_console.web.console import pop_ctx

    require_role(user, "tickets.direct_answer")
    form = await request.form()
    keys = ("category", "urgency", "title", "content", "submitter_name", "enterprise_uscc",
            "enterprise_name")  # fmt: skip
    typed = {k: str(form.get(k) or "").strip() for k in keys}
    article_ids = _ids(form.getlist("article_ids"))
    note = " ".join(str(form.get("note") or "").split())[:500]
    ctx = await run_in_threadpool(pop_ctx, request, user, call_id)
    call = ctx["call"]
    data: dict[str, Any] = {k: v for k, v in typed.items() if v}
    data.setdefault("category", "complaint")  # 投诉咨询: a consultation answered on the spot
    data.setdefault("content", note or "（直接答复）")
    data.update(
        channel="hotline",
        submitter_phone=call.get("caller") or None,
        channel_data={"call_id": call_id, "ivr_path": call.get("ivr_path") or ""},
    )
    error = None
    number = ""
    try:
        ticket_in = TicketIn.model_validate(data)
    except ValidationError:
        error = "工单信息填写有误，请检查诉求内容与企业信息"
    else:
        state = request.app.state

        def write() -> str:
            with session_scope(state.engine) as s:
                t = answer_at_intake(s, state.settings, ticket_in, article_ids=article_ids,
                                     note=note, actor=user.username)  # fmt: skip
                return t.number

        try:
            number = await run_in_threadpool(write)
        except TicketingError as e:
            error = e.message
        else:
            await run_in_threadpool(link_ticket, state.redis, state.settings, call_id, number)
            log.info("console_direct_answer", call_id=call_id, number=number, user=user.username)
    if error is not None:
        ctx.update(form=typed, kb_error=error, kb_note=note, kb_picked=article_ids)
        return render(request, "_console_pop.html", ctx, status=422)
    ctx = await run_in_threadpool(pop_ctx, request, user, call_id)
    ctx["message"] = f"已直接答复并办结，工单 {number}（不派单，待来电人评价）"
    return render(request, "_console_pop.html", ctx)


# ---------------------------------------------------------------- the dispatch desk
def _waiting(s: Any, user: User, number: str) -> Ticket:
    try:
        return visible_ticket(s, user, number)
    except NotFound:
        raise PageNotFound(f"未找到工单：{number}") from None


@router.get("/dispatch/{number}/answer", name="web.dispatch_answer")
def dispatch_answer_page(
    number: str, request: Request, user: User = Depends(page_user("web.dispatch"))
) -> Response:
    require_role(user, "tickets.answer_waiting")
    with session_scope(request.app.state.engine, read_only=True) as s:
        t = _waiting(s, user, number)
        question = (request.query_params.get("q") or "").strip() or ticket_text(s, t)
    ctx = suggestions(request, question, [])
    ctx.update(t=t, q=request.query_params.get("q") or "", error=None, note="")
    return render(request, "kb_dispatch_answer.html", ctx)


@router.post("/dispatch/{number}/answer", name="web.dispatch_answer_submit")
async def dispatch_answer_submit(
    number: str, request: Request, user: User = Depends(page_user("web.dispatch"))
) -> Response:
    require_role(user, "tickets.answer_waiting")
    form = await request.form()
    article_ids = _ids(form.getlist("article_ids"))
    note = " ".join(str(form.get("note") or "").split())[:500]
    state = request.app.state
    error = None
    try:
        with session_scope(state.engine) as s:
            t = _waiting(s, user, number)
            answer_waiting(s, state.settings, t, article_ids=article_ids, note=note,
                           actor=user.username)  # fmt: skip
    except TicketingError as e:
        error = e.message
    if error is None:
        return redirect(f"/tickets/{number}?done=direct_answered", request)
    with session_scope(state.engine, read_only=True) as s:
        t = _waiting(s, user, number)
        question = ticket_text(s, t)
    ctx = suggestions(request, question, article_ids)
    ctx.update(t=t, q="", error=error, note=note)
    return render(request, "kb_dispatch_answer.html", ctx, status=422)


def is_waiting_consultation(t: Ticket) -> bool:
    """The desk offers 知识库答复 on what is still waiting for dispatch."""
    return t.status == TicketStatus.pending_dispatch
