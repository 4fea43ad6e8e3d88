"""The knowledge base (知识库) and 直接答复: thin routes over ticketing.knowledge and
ticketing.direct_answer, which hold every rule.

Staff (roles in agent_console.roles.ROLE_MATRIX): search and read every article (internal and
public); create, edit, review, publish — the store lets only the owning department's handlers and
admins do so; reports of the gaps (articles with no hits, questions with no article) and the
first-contact figures. Public (no login, rate-limited like the other /public routes): search and
read published, unexpired, public articles only.

Searches and opens are logged in a write transaction of their own (the GET's session is
read-only), so a failed log never fails the search.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, func, select

from agent_console.deps import RowId, SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.ratelimit import public_read_limit
from agent_console.schemas import Instant, TicketOut
from config.database import MAX_ROW_ID, session_scope
from config.logging import get_logger
from config.settings import Settings
from ticketing import (
    KIND_WORDS,
    ArticleIn,
    ArticleStatus,
    Editor,
    InvalidInput,
    KbArticle,
    NotFound,
    PermissionDenied,
    Role,
    SearchFilter,
    TicketIn,
    User,
    answer_at_intake,
    answer_waiting,
    create_article,
    day_bounds,
    first_contact_figures,
    get_article,
    get_ticket_by_number,
    local_today,
    log_open,
    log_search,
    may_edit,
    no_hit_articles,
    request_policy_push,
    search_articles,
    transition,
    unanswered_questions,
    update_article,
    versions,
)

log = get_logger("agent_console.knowledge")
router = APIRouter(tags=["knowledge"], route_class=TransactionRoute)
public_router = APIRouter(
    prefix="/public",
    tags=["public"],
    dependencies=[Depends(public_read_limit)],
    route_class=TransactionRoute,
)
MAX_LIMIT = 20
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)  # report periods


# ---------------------------------------------------------------- schemas
class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ArticleBrief(_Out):
    id: int
    title: str
    summary: str
    kind: str
    department_code: str
    status: str
    is_public: bool
    expires_on: date | None
    version: int


class SearchHitOut(ArticleBrief):
    score: float
    snippet: str  # HTML-escaped text; the question's words in <mark>


class SearchOut(BaseModel):
    query: str
    hits: list[SearchHitOut]


class ArticleOut(ArticleBrief):
    body: str  # sanitised HTML
    categories: list[str]
    keywords: list[str]
    issuer: str | None
    doc_number: str | None
    links: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    effective_from: date | None
    apply_from: date | None
    apply_until: date | None
    industries: list[str]
    size_bands: list[str]
    regions: list[str]
    audiences: list[str]
    tags: list[str]
    created_by: str
    created_at: Instant
    updated_by: str
    updated_at: Instant
    published_at: Instant | None


class PublicArticleOut(_Out):
    id: int
    title: str
    summary: str
    body: str
    kind: str
    department_code: str
    issuer: str | None
    doc_number: str | None
    links: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    effective_from: date | None
    expires_on: date | None
    apply_from: date | None
    apply_until: date | None
    audiences: list[str]
    updated_at: Instant


class PublicHitOut(_Out):
    id: int
    title: str
    summary: str
    kind: str
    department_code: str
    snippet: str


class PublicSearchOut(BaseModel):
    query: str
    hits: list[PublicHitOut]


class ArticlePage(BaseModel):
    total: int
    items: list[ArticleBrief]


class ArticleUpdateIn(ArticleIn):
    expected_version: int | None = Field(default=None, ge=1)
    note: str | None = Field(default=None, max_length=500)


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


class VersionOut(_Out):
    id: int
    version: int
    action: str
    status: str
    actor: str
    at: Instant
    note: str | None
    snapshot: dict[str, Any]


class GapsOut(BaseModel):
    since: date
    until: date
    no_hit_articles: list[ArticleBrief]
    unanswered_questions: list[dict[str, Any]]


class DirectAnswerIn(BaseModel):
    """The answer given: the knowledge-base articles used and a short note."""

    model_config = ConfigDict(extra="forbid")
    article_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        default_factory=list, max_length=5
    )
    note: str | None = Field(default=None, max_length=500)


class DirectIntakeIn(DirectAnswerIn):
    ticket: TicketIn


class FiguresOut(BaseModel):
    since: date
    until: date
    consultations: int
    direct_answers: int
    direct_answers_dispatched: int
    direct_answer_rate: float | None
    searches: int
    searches_with_hits: int
    knowledge_hit_rate: float | None
    direct_answers_rated: int
    direct_answers_satisfied: int
    direct_answer_satisfaction: float | None
    top_unanswered: list[dict[str, Any]]


# ---------------------------------------------------------------- helpers
def _period(settings: Settings, since: date | None, until: date | None) -> tuple[date, date]:
    """A period of local days, [since, until] inclusive; the last 30 days by default."""
    for d in (since, until):
        if d is not None and not (FIRST_DAY <= d <= LAST_DAY):
            raise InvalidInput(
                f"日期须在 {FIRST_DAY} 至 {LAST_DAY} 之间", field="since" if d is since else "until"
            )
    until = until or local_today(settings)
    since = since or until - timedelta(days=29)
    if since > until:
        raise InvalidInput("开始日期不能晚于结束日期", field="since")
    return since, until


def _log(request: Request, write: Any) -> None:
    """Write a search/open log row in its own short transaction; never fails the request."""
    try:
        with session_scope(request.app.state.engine) as s:
            write(s)
    except Exception as e:
        log.warning("knowledge_log_failed", error=str(e)[:200])


def _filters(
    kind: str | None, department: str | None, region: str | None, audience: str | None
) -> SearchFilter:
    k = KIND_WORDS.get(kind.strip()) if kind else None
    if kind and k is None:
        raise InvalidInput("类型必须是 办事指南、政策、常见问答 或 通知", field="kind")
    return SearchFilter(kind=k, department=department, region=region, audience=audience)


# ---------------------------------------------------------------- staff
@router.get(
    "/knowledge/search",
    name="knowledge.search",
    response_model=SearchOut,
    responses=responses(401, 403, 422),
)
def staff_search(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    q: str = Query(min_length=1, max_length=200, description="the question, as asked"),
    kind: str | None = Query(default=None, max_length=16),
    department: str | None = Query(default=None, max_length=32),
    region: str | None = Query(default=None, max_length=50),
    audience: str | None = Query(default=None, max_length=50),
    limit: int = Query(default=5, ge=1, le=MAX_LIMIT),
    user: User = Depends(require("knowledge.search")),
) -> SearchOut:
    """Articles answering a question (internal and public), best first, with the passage."""
    hits = search_articles(
        session,
        settings,
        q,
        public=False,
        filters=_filters(kind, department, region, audience),
        limit=limit,
    )
    _log(request, lambda s: log_search(s, q, hits, public=False))
    return SearchOut(
        query=q,
        hits=[
            SearchHitOut.model_validate(
                {
                    **ArticleBrief.model_validate(h.article).model_dump(),
                    "score": h.score,
                    "snippet": h.snippet,
                }
            )
            for h in hits
        ],
    )


@router.get(
    "/knowledge/articles",
    name="knowledge.list",
    response_model=ArticlePage,
    responses=responses(401, 403, 422),
)
def list_articles(
    session: SessionDep,
    status: Literal["draft", "reviewed", "published", "expired"] | None = None,
    department: str | None = Query(default=None, max_length=32),
    page: int = Query(default=1, ge=1, le=10000),
    page_size: int = Query(default=50, ge=1, le=200),
    user: User = Depends(require("knowledge.list")),
) -> ArticlePage:
    """Every article (any status) for editors' lists, newest change first."""
    q = select(KbArticle)
    count = select(func.count()).select_from(KbArticle)
    if status:
        q, count = q.where(KbArticle.status == status), count.where(KbArticle.status == status)
    if department:
        q = q.where(KbArticle.department_code == department)
        count = count.where(KbArticle.department_code == department)
    rows = session.exec(
        q.order_by(KbArticle.updated_at.desc(), KbArticle.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return ArticlePage(
        total=session.exec(count).one(), items=[ArticleBrief.model_validate(a) for a in rows]
    )


@router.get(
    "/knowledge/articles/{article_id}",
    name="knowledge.get",
    response_model=ArticleOut,
    responses=responses(401, 403, 404, 422),
)
def read_article(
    request: Request,
    session: SessionDep,
    article_id: RowId,
    user: User = Depends(require("knowledge.get")),
) -> ArticleOut:
    a = get_article(session, article_id)
    _log(request, lambda s: log_open(s, article_id, public=False))
    return ArticleOut.model_validate(a)


@router.post(
    "/knowledge/articles",
    name="knowledge.create",
    status_code=201,
    response_model=ArticleOut,
    responses=responses(401, 403, 422),
)
def create(
    body: ArticleIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("knowledge.create")),
) -> ArticleOut:
    """A new article, as a draft of its owning department."""
    a = create_article(session, settings, body, Editor.of(user))
    return ArticleOut.model_validate(a)


@router.put(
    "/knowledge/articles/{article_id}",
    name="knowledge.update",
    response_model=ArticleOut,
    responses=responses(401, 403, 404, 409, 422),
)
def update(
    body: ArticleUpdateIn,
    session: SessionDep,
    settings: SettingsDep,
    article_id: RowId,
    user: User = Depends(require("knowledge.update")),
) -> ArticleOut:
    """Save a new version (it goes back to draft, to be reviewed again)."""
    data = ArticleIn.model_validate(body.model_dump(exclude={"expected_version", "note"}))
    a = update_article(
        session,
        settings,
        article_id,
        data,
        Editor.of(user),
        expected_version=body.expected_version,
        note=body.note,
    )
    return ArticleOut.model_validate(a)


@router.post(
    "/knowledge/articles/{article_id}/{action}",
    name="knowledge.transition",
    response_model=ArticleOut,
    responses=responses(401, 403, 404, 409, 422),
)
def review_flow(
    body: TransitionIn,
    session: SessionDep,
    settings: SettingsDep,
    action: Literal["review", "publish", "expire", "withdraw"],
    article_id: RowId,
    user: User = Depends(require("knowledge.transition")),
) -> ArticleOut:
    """One step of draft → reviewed → published → expired (or withdraw to draft). Publishing a
    policy pushes it to the enterprises it fits (policy_push.yaml `push_on_publish`)."""
    a = transition(session, article_id, action, Editor.of(user), note=body.note, settings=settings)
    return ArticleOut.model_validate(a)


class PushRunOut(BaseModel):
    run_id: int
    article_id: int
    requested_at: Instant


@router.post(
    "/knowledge/policies/{article_id}/push",
    name="knowledge.push",
    response_model=PushRunOut,
    status_code=202,
    responses=responses(401, 403, 404, 409, 422),
)
def push_policy(
    session: SessionDep,
    settings: SettingsDep,
    article_id: RowId,
    user: User = Depends(require("knowledge.push")),
) -> PushRunOut:
    """Push a published, in-force policy to every enterprise it fits that was not told yet
    (an RQ job; 409 when the policy is not in force). Its editors only: an admin, or a handler
    of the owning department."""
    a = get_article(session, article_id)
    if a.kind != "policy":
        raise NotFound(f"未找到政策：{article_id}", field="article_id")
    if not may_edit(Editor.of(user), a.department_code):
        raise PermissionDenied(
            "只有政策所属部门的承办人或管理员可以推送", department=a.department_code
        )
    run = request_policy_push(session, settings, article_id, user.username)
    return PushRunOut(run_id=run.id or 0, article_id=article_id, requested_at=run.requested_at)


@router.get(
    "/knowledge/articles/{article_id}/versions",
    name="knowledge.versions",
    response_model=list[VersionOut],
    responses=responses(401, 403, 404, 422),
)
def article_versions(
    session: SessionDep,
    article_id: RowId,
    user: User = Depends(require("knowledge.versions")),
) -> list[VersionOut]:
    """Every version and review step: who, when, and the whole article as it was."""
    return [VersionOut.model_validate(v) for v in versions(session, article_id)]


@router.get(
    "/knowledge/reports/gaps",
    name="knowledge.gaps",
    response_model=GapsOut,
    responses=responses(401, 403, 422),
)
def gaps(
    session: SessionDep,
    settings: SettingsDep,
    since: date | None = None,
    until: date | None = None,
    user: User = Depends(require("knowledge.gaps")),
) -> GapsOut:
    """The gaps to fill: published articles nobody found or opened, and questions that found
    nothing. A handler sees its own department's articles."""
    d0, d1 = _period(settings, since, until)
    t0, t1 = day_bounds(settings, d0, d1)
    dept = user.department_code if user.role == Role.handler else None
    return GapsOut(
        since=d0,
        until=d1,
        no_hit_articles=[
            ArticleBrief.model_validate(a)
            for a in no_hit_articles(session, t0, t1, department=dept)
        ],
        unanswered_questions=[
            {"question": q, "count": n} for q, n in unanswered_questions(session, t0, t1)
        ],
    )


@router.get(
    "/knowledge/figures",
    name="knowledge.figures",
    response_model=FiguresOut,
    responses=responses(401, 403, 422),
)
def figures(
    session: SessionDep,
    settings: SettingsDep,
    since: date | None = None,
    until: date | None = None,
    user: User = Depends(require("knowledge.figures")),
) -> FiguresOut:
    """直接解答率, knowledge hit rate, satisfaction of direct answers, top unanswered questions."""
    d0, d1 = _period(settings, since, until)
    t0, t1 = day_bounds(settings, d0, d1)
    return FiguresOut(since=d0, until=d1, **first_contact_figures(session, t0, t1))


# ---------------------------------------------------------------- 直接答复
@router.post(
    "/tickets/direct-answer",
    name="tickets.direct_answer",
    status_code=201,
    response_model=TicketOut,
    responses=responses(401, 403, 409, 422),
)
def direct_answer_intake(
    body: DirectIntakeIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.direct_answer")),
) -> TicketOut:
    """A consultation answered on the spot: a numbered ticket closed at intake as 直接答复."""
    ticket = answer_at_intake(
        session,
        settings,
        body.ticket,
        article_ids=body.article_ids,
        note=body.note,
        actor=user.username,
    )
    session.flush()
    return TicketOut.model_validate(ticket)


@router.post(
    "/tickets/{number}/direct-answer",
    name="tickets.answer_waiting",
    response_model=TicketOut,
    responses=responses(401, 403, 404, 409, 422),
)
def direct_answer_waiting(
    number: str,
    body: DirectAnswerIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.answer_waiting")),
) -> TicketOut:
    """A consultation waiting for dispatch answered directly from the knowledge base."""
    ticket = get_ticket_by_number(session, number)
    ticket = answer_waiting(
        session,
        settings,
        ticket,
        article_ids=body.article_ids,
        note=body.note,
        actor=user.username,
    )
    session.flush()
    return TicketOut.model_validate(ticket)


# ---------------------------------------------------------------- public
def _public_article(session: Session, settings: Settings, article_id: int) -> KbArticle:
    a = session.get(KbArticle, article_id)
    today = local_today(settings)
    if (
        a is None
        or not a.is_public
        or a.status != ArticleStatus.published
        or (a.expires_on is not None and a.expires_on < today)
    ):
        raise NotFound(f"未找到文章：{article_id}", field="article_id")
    return a


@public_router.get(
    "/knowledge/search",
    name="public.knowledge.search",
    response_model=PublicSearchOut,
    responses=responses(422, 429),
)
def public_search(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    q: str = Query(min_length=1, max_length=200),
    kind: str | None = Query(default=None, max_length=16),
    region: str | None = Query(default=None, max_length=50),
    audience: str | None = Query(default=None, max_length=50),
    limit: int = Query(default=5, ge=1, le=10),
) -> PublicSearchOut:
    """Public articles answering a question ("您是不是要找…"), best first."""
    hits = search_articles(
        session,
        settings,
        q,
        public=True,
        filters=_filters(kind, None, region, audience),
        limit=limit,
    )
    _log(request, lambda s: log_search(s, q, hits, public=True))
    return PublicSearchOut(
        query=q,
        hits=[
            PublicHitOut(
                id=h.article.id,
                title=h.article.title,
                summary=h.article.summary,
                kind=h.article.kind,
                department_code=h.article.department_code,
                snippet=h.snippet,
            )
            for h in hits
        ],
    )


@public_router.get(
    "/knowledge/articles/{article_id}",
    name="public.knowledge.get",
    response_model=PublicArticleOut,
    responses=responses(404, 422, 429),
)
def public_article(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    article_id: RowId,
) -> PublicArticleOut:
    """A published, unexpired, public article; anything else is 404."""
    a = _public_article(session, settings, article_id)
    _log(request, lambda s: log_open(s, article_id, public=True))
    return PublicArticleOut.model_validate(a)
