"""Knowledge pages for staff (知识库): list and search, article view with its version history,
create and edit with the review flow (draft → reviewed → published → expired), the gaps report.

Every page is a `web.kb*` row of ROLE_MATRIX; every change is also checked against the API route
doing the same thing (knowledge.create / update / transition) and then by the store itself
(ticketing.knowledge.store.may_edit: only the owning department's handlers and admins), so a
handler of another department gets the store's refusal whichever door it knocks on.
"""

from __future__ import annotations

from datetime import date
from math import ceil
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, func, select

from agent_console.web.core import (
    PageNotFound,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
)
from agent_console.web.tickets import departments
from config.database import session_scope
from ticketing import (
    KIND_WORDS,
    SIZE_LABELS,
    STATUS_LABELS,
    ArticleIn,
    Editor,
    KbArticle,
    NotFound,
    Role,
    TicketingError,
    User,
    create_article,
    day_bounds,
    get_article,
    is_digits,
    local_today,
    may_edit,
    no_hit_articles,
    search_articles,
    transition,
    unanswered_questions,
    update_article,
    versions,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 30
KIND_LABELS = {"guide": "办事指南", "policy": "政策", "faq": "常见问答", "notice": "通知"}
FLOW_BUTTONS = {  # status → the review-flow steps offered on the article page
    "draft": [("review", "审核通过")],
    "reviewed": [("publish", "发布"), ("withdraw", "退回草稿")],
    "published": [("withdraw", "撤回修改"), ("expire", "设为失效")],
    "expired": [],
}
LIST_FIELDS = ("categories", "keywords", "regions", "audiences", "tags")
TEXT_FIELDS = ("title", "summary", "body", "kind", "department_code", "issuer", "doc_number")
DATE_FIELDS = ("effective_from", "expires_on")
FIELD_LABELS = {"title": "标题", "summary": "简要答复", "body": "正文", "kind": "类型",
                "department_code": "所属部门", "keywords": "关键词", "expires_on": "失效日期"}  # fmt: skip


def kb_labels() -> dict[str, Any]:
    return {
        "kinds": KIND_LABELS,
        "statuses": dict(STATUS_LABELS),
        "flow": FLOW_BUTTONS,
        "sizes": SIZE_LABELS,
    }


def _int(value: str | None, default: int, high: int = 100_000) -> int:
    try:
        return max(1, min(int(value or default), high))
    except ValueError:
        return default


@router.get("/kb", name="web.kb")
def kb_list(request: Request, user: User = Depends(page_user("web.kb"))) -> Response:
    """Search (published articles, ranked, with the passage) or browse every article."""
    qp = request.query_params
    q = (qp.get("q") or "").strip()[:200]
    status = qp.get("status") or ""
    dept = qp.get("department") or ""
    kind = qp.get("kind") or ""
    page = _int(qp.get("page"), 1)
    state = request.app.state
    hits: list[Any] = []
    items: list[KbArticle] = []
    total = 0
    with session_scope(state.engine, read_only=True) as s:
        depts = departments(s)
        if q:
            from ticketing import SearchFilter

            hits = search_articles(
                s,
                state.settings,
                q,
                public=False,
                filters=SearchFilter(
                    kind=kind if kind in KIND_LABELS else None, department=dept or None
                ),
                limit=20,
            )
        else:
            stmt = select(KbArticle)
            count = select(func.count()).select_from(KbArticle)
            for column, value, allowed in (
                (KbArticle.status, status, STATUS_LABELS),
                (KbArticle.department_code, dept, depts),
                (KbArticle.kind, kind, KIND_LABELS),
            ):
                if value and value in allowed:
                    stmt, count = stmt.where(column == value), count.where(column == value)
            total = int(s.exec(count).one())
            items = list(
                s.exec(
                    stmt.order_by(col(KbArticle.updated_at).desc(), col(KbArticle.id).desc())
                    .offset((page - 1) * PAGE_SIZE)
                    .limit(PAGE_SIZE)
                )
            )
    if q:
        _log_search(request, q, hits)
    return render(
        request,
        "kb_list.html",
        {
            "q": q,
            "hits": hits,
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, ceil(total / PAGE_SIZE)),
            "f": {"status": status, "department": dept, "kind": kind},
            "depts": depts,
            "kb": kb_labels(),
            "can_create": user.role in (Role.admin, Role.handler),
            "today": local_today(state.settings),
        },
    )


def _log_search(request: Request, q: str, hits: list[Any], *, public: bool = False) -> None:
    """A search's log row (gaps report, hit rate) in a transaction of its own: never fails a page."""
    from ticketing import log_search

    try:
        with session_scope(request.app.state.engine) as s:
            log_search(s, q, hits, public=public)
    except Exception:  # the log is a figure, not the page's work
        pass


def log_open_of(request: Request, article_id: int, *, public: bool) -> None:
    from ticketing import log_open

    try:
        with session_scope(request.app.state.engine) as s:
            log_open(s, article_id, public=public)
    except Exception:  # as _log_search
        pass


def _article_id(raw: str) -> int:
    return page_row_id(raw, "未找到知识库文章")


@router.get("/kb/gaps", name="web.kb_gaps")
def kb_gaps(request: Request, user: User = Depends(page_user("web.kb_gaps"))) -> Response:
    """The gaps to fill: published articles nobody found, questions that found nothing (30 days)."""
    state = request.app.state
    until = local_today(state.settings)
    since = date.fromordinal(until.toordinal() - 29)
    t0, t1 = day_bounds(state.settings, since, until)
    dept = user.department_code if user.role == Role.handler else None
    with session_scope(state.engine, read_only=True) as s:
        idle = no_hit_articles(s, t0, t1, department=dept)
        asked = unanswered_questions(s, t0, t1, limit=50)
        depts = departments(s)
    return render(
        request,
        "kb_gaps.html",
        {
            "idle": idle,
            "asked": asked,
            "since": since,
            "until": until,
            "depts": depts,
            "kb": kb_labels(),
        },
    )


# ---------------------------------------------------------------- create and edit
def _form_values(a: KbArticle | None) -> dict[str, Any]:
    if a is None:
        return {"kind": "guide", "is_public": True}
    out: dict[str, Any] = {f: getattr(a, f) or "" for f in TEXT_FIELDS}
    out.update({f: "、".join(getattr(a, f) or []) for f in LIST_FIELDS})
    out.update({f: (getattr(a, f).isoformat() if getattr(a, f) else "") for f in DATE_FIELDS})
    out["is_public"] = a.is_public
    out["version"] = a.version
    return out


def _words(raw: str) -> list[str]:
    for sep in ("，", ",", "；", ";", "\n", " "):
        raw = raw.replace(sep, "、")
    return [w.strip() for w in raw.split("、") if w.strip()]


def _parse_form(form: Any) -> tuple[dict[str, Any], ArticleIn | None, str | None]:
    """The edit form as typed (to show again) and as an ArticleIn, or the first error."""
    typed: dict[str, Any] = {f: str(form.get(f) or "").strip() for f in TEXT_FIELDS}
    typed.update({f: str(form.get(f) or "").strip() for f in LIST_FIELDS + DATE_FIELDS})
    typed["is_public"] = form.get("is_public") == "1"
    typed["version"] = str(form.get("version") or "")
    typed["note"] = str(form.get("note") or "").strip()[:500]
    data: dict[str, Any] = {f: typed[f] for f in TEXT_FIELDS}
    data["issuer"] = data["issuer"] or None
    data["doc_number"] = data["doc_number"] or None
    data.update({f: _words(typed[f]) for f in LIST_FIELDS})
    for f in DATE_FIELDS:
        if typed[f]:
            try:
                data[f] = date.fromisoformat(typed[f])
            except ValueError:
                return typed, None, "日期格式应为 年-月-日"
    data["is_public"] = typed["is_public"]
    if not data["title"]:
        return typed, None, "请填写标题"
    try:
        return typed, ArticleIn.model_validate(data), None
    except ValidationError as e:  # the store's wording (ticketing.knowledge.store.validate)
        first = e.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "article"
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        return typed, None, f"字段 {FIELD_LABELS.get(field, field)} 无效：{msg}"


def _edit_page(
    request: Request,
    user: User,
    form: dict[str, Any],
    article: KbArticle | None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    with session_scope(request.app.state.engine, read_only=True) as s:
        depts = departments(s)
    if user.role == Role.handler:  # a handler writes for its own department only
        depts = {k: v for k, v in depts.items() if k == user.department_code}
    return render(
        request,
        "kb_edit.html",
        {
            "form": form,
            "a": article,
            "depts": depts,
            "kb": kb_labels(),
            "error": error,
            "kinds": {k: v for k, v in KIND_WORDS.items() if k in KIND_LABELS},
        },
        status=status,
    )


@router.get("/kb/new", name="web.kb_new")
def kb_new(request: Request, user: User = Depends(page_user("web.kb"))) -> Response:
    require_role(user, "knowledge.create")
    form = _form_values(None)
    form["department_code"] = user.department_code or ""
    return _edit_page(request, user, form, None)


@router.post("/kb/new", name="web.kb_create")
async def kb_create(request: Request, user: User = Depends(page_user("web.kb"))) -> Response:
    require_role(user, "knowledge.create")
    typed, data, error = _parse_form(await request.form())
    status = 422
    if data is not None:
        state = request.app.state
        try:
            with session_scope(state.engine) as s:
                a = create_article(s, state.settings, data, Editor.of(user), note=typed["note"])
                aid = a.id
        except TicketingError as e:
            error, status = e.message, e.status
        else:
            return redirect(f"/kb/{aid}?done=created", request)
    return _edit_page(request, user, typed, None, error, status=_status(status))


@router.get("/kb/{article_id}/edit", name="web.kb_edit")
def kb_edit(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    require_role(user, "knowledge.update")
    aid = _article_id(article_id)
    with session_scope(request.app.state.engine, read_only=True) as s:
        try:
            a = get_article(s, aid)
        except NotFound:
            raise PageNotFound("未找到知识库文章") from None
    if not may_edit(Editor.of(user), a.department_code):
        return render(
            request,
            "error.html",
            {"title": "无权修改", "message": "只有文章所属部门的承办人或管理员可以修改"},
            status=403,
        )
    return _edit_page(request, user, _form_values(a), a)


@router.post("/kb/{article_id}/edit", name="web.kb_update")
async def kb_update(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    require_role(user, "knowledge.update")
    aid = _article_id(article_id)
    typed, data, error = _parse_form(await request.form())
    state = request.app.state
    status = 422
    if data is not None:
        expected = int(typed["version"]) if is_digits(typed["version"]) else None
        try:
            with session_scope(state.engine) as s:
                update_article(
                    s,
                    state.settings,
                    aid,
                    data,
                    Editor.of(user),
                    expected_version=expected,
                    note=typed["note"] or None,
                )
        except NotFound:
            raise PageNotFound("未找到知识库文章") from None
        except TicketingError as e:
            error, status = e.message, e.status
        else:
            return redirect(f"/kb/{aid}?done=edited", request)
    with session_scope(state.engine, read_only=True) as s:
        a = s.get(KbArticle, aid)
    if a is None:
        raise PageNotFound("未找到知识库文章")
    return _edit_page(request, user, typed, a, error, status=_status(status))


def _status(code: Any) -> int:
    return code if isinstance(code, int) and 400 <= code < 500 else 422


@router.post("/kb/{article_id}/flow", name="web.kb_flow")
async def kb_flow(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    """One review-flow step (审核 / 发布 / 撤回 / 失效) by the owning department or an admin."""
    require_role(user, "knowledge.transition")
    aid = _article_id(article_id)
    form = await request.form()
    action = str(form.get("action") or "")
    note = str(form.get("note") or "").strip()[:500] or None
    state = request.app.state
    error = None
    status = 422
    try:
        with session_scope(state.engine) as s:
            transition(s, aid, action, Editor.of(user), note=note, settings=state.settings)
    except NotFound:
        raise PageNotFound("未找到知识库文章") from None
    except TicketingError as e:
        error, status = e.message, e.status
    if error is None:
        return redirect(f"/kb/{aid}?done={action}", request)
    with session_scope(state.engine, read_only=True) as s:
        a = get_article(s, aid)
        history = list(reversed(versions(s, aid)))
        depts = departments(s)
    ctx = _article_ctx(request, user, a, history, depts)
    ctx["flow_error"] = error
    return render(request, "kb_article.html", ctx, status=status)


# registered last: /kb/new and /kb/gaps come first
@router.get("/kb/{article_id}", name="web.kb_article")
def kb_article(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    aid = _article_id(article_id)
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        try:
            a = get_article(s, aid)
        except NotFound:
            raise PageNotFound("未找到知识库文章") from None
        history = list(reversed(versions(s, aid)))
        depts = departments(s)
    log_open_of(request, aid, public=False)
    return render(request, "kb_article.html", _article_ctx(request, user, a, history, depts))


def _article_ctx(
    request: Request, user: User, a: KbArticle, history: list[Any], depts: dict[str, str]
) -> dict[str, Any]:
    today = local_today(request.app.state.settings)
    return {
        "a": a,
        "history": history,
        "depts": depts,
        "kb": kb_labels(),
        "can_edit": may_edit(Editor.of(user), a.department_code),
        "done": request.query_params.get("done") or "",
        "expired_by_date": a.expires_on is not None and a.expires_on < today,
        "today": today,
    }


def first_contact_card(session: Any, settings: Any, days: int = 30) -> dict[str, Any]:
    """The leader view's 首问解答 figures over the last `days` local days (ticketing's one
    definition, first_contact_figures) plus the portal's deflections (问题已解决)."""
    from ticketing import KbQueryLog, first_contact_figures

    until = local_today(settings)
    since = date.fromordinal(until.toordinal() - (days - 1))
    t0, t1 = day_bounds(settings, since, until)
    figures = first_contact_figures(session, t0, t1)
    figures["deflections"] = int(
        session.exec(
            select(func.count())
            .select_from(KbQueryLog)
            .where(KbQueryLog.kind == "deflected", KbQueryLog.at >= t0, KbQueryLog.at < t1)
        ).one()
    )
    figures.update(since=since, until=until, days=days)
    return figures
