"""The public side of the knowledge base (no login): search and read public articles, the
"您是不是要找…" fragment the portal's submit form fetches, and deflection.

Deflection: a suggested article opened (logged as an open of a public article, with the question
that suggested it) and the visit ended with the citizen saying so (问题已解决) instead of
submitting: a KbQueryLog row of kind "deflected" with the article and the question. Only published,
unexpired, public articles are ever shown (ticketing's search does the visibility rules; the
article page checks them again). Rate-limited in the public reads' own bucket
(ratelimit.public_read_limit), apart from submissions.

CSRF for the one public form (问题已解决): a double-submit token — a random cookie set with the
article page, echoed in the form; nothing to steal, since there is no session.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from agent_console.ratelimit import public_read_limit
from agent_console.web.core import PageNotFound, page_row_id, render
from agent_console.web.kb import KIND_LABELS, _log_search, log_open_of
from agent_console.web.portal_access import csrf_for, csrf_ok, set_csrf_cookie
from agent_console.web.tickets import departments
from config.database import session_scope
from ticketing import (
    ArticleStatus,
    KbArticle,
    KbQueryLog,
    local_today,
    search_articles,
    utcnow,
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(public_read_limit)])
SUGGEST = 3
# the route names open to everyone (tests/web walks the page routes: these have no page row)
OPEN_ROUTES = frozenset(
    {"web.portal_kb", "web.portal_kb_suggest", "web.portal_kb_article", "web.portal_kb_resolved"}
)


def _q(request: Request) -> str:
    return " ".join((request.query_params.get("q") or "").split())[:200]


def _hits(request: Request, q: str, limit: int) -> tuple[list[Any], dict[str, str]]:
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        hits = search_articles(s, state.settings, q, public=True, limit=limit) if q else []
        depts = departments(s)
    if q:
        _log_search(request, q, hits, public=True)
    return hits, depts


def _public(request: Request, raw: str) -> tuple[KbArticle, dict[str, str]]:
    article_id = page_row_id(raw, "未找到该文章")
    today = local_today(request.app.state.settings)
    with session_scope(request.app.state.engine, read_only=True) as s:
        a = s.get(KbArticle, article_id)
        depts = departments(s)
    if (
        a is None
        or not a.is_public
        or a.status != ArticleStatus.published
        or (a.expires_on is not None and a.expires_on < today)
    ):
        raise PageNotFound("未找到该文章，或文章已失效")
    return a, depts


def _no_user(request: Request) -> None:
    request.state.user = None  # public pages: no nav, no staff CSRF token


@router.get("/portal/kb", name="web.portal_kb")
def portal_kb(request: Request) -> Response:
    """Search the public articles."""
    _no_user(request)
    q = _q(request)
    hits, depts = _hits(request, q, 10)
    return render(
        request,
        "portal/kb_search.html",
        {"q": q, "hits": hits, "depts": depts, "kinds": KIND_LABELS},
    )


@router.get("/portal/kb/suggest", name="web.portal_kb_suggest")
def portal_kb_suggest(request: Request) -> Response:
    """htmx fragment for the portal's submit form: "您是不是要找…" with the best public matches."""
    _no_user(request)
    q = _q(request)
    hits, _ = _hits(request, q, SUGGEST) if len(q) >= 2 else ([], {})
    return render(request, "portal/_kb_suggest.html", {"q": q, "hits": hits})


@router.get("/portal/kb/{article_id}", name="web.portal_kb_article")
def portal_kb_article(article_id: str, request: Request) -> Response:
    _no_user(request)
    a, depts = _public(request, article_id)
    log_open_of(request, a.id or 0, public=True)
    token, fresh = csrf_for(request)
    resp = render(
        request,
        "portal/kb_article.html",
        {
            "a": a,
            "depts": depts,
            "kinds": KIND_LABELS,
            "q": _q(request),
            "suggested": request.query_params.get("from") == "suggest",
            "token": token,
        },
    )
    if fresh:
        set_csrf_cookie(request, resp, token)
    return resp


@router.post("/portal/kb/{article_id}/resolved", name="web.portal_kb_resolved")
async def portal_kb_resolved(article_id: str, request: Request) -> Response:
    """问题已解决: the visit ends without a submission — a deflection, recorded with its question."""
    _no_user(request)
    form = await request.form()
    sent = str(form.get("token") or "")
    if not csrf_ok(request, sent):
        return HTMLResponse("页面已过期，请刷新后重试", status_code=403)
    a, _ = _public(request, article_id)
    q = " ".join(str(form.get("q") or "").split())[:200] or None
    with session_scope(request.app.state.engine) as s:
        s.add(
            KbQueryLog(
                kind="deflected",
                audience="public",
                article_id=a.id,
                query=q,
                result_count=1,
                at=utcnow(),
            )
        )
    return render(request, "portal/kb_resolved.html", {"a": a})
