"""The knowledge store: articles, their review flow and their versions.

Review flow (one table, FLOW):  draft → reviewed (by the owning department) → published → expired.
An edit saves a new version and takes the article back to draft: what the public and the agents
see has always been reviewed. Every step writes a KbArticleVersion row with the whole article,
who and when, so any earlier version can be read back.

Who may change an article: an admin, or a handler of the article's owning department (a handler
cannot move an article to another department). The API's role table admits the roles; this
module checks the department, so the rule holds for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ticketing.knowledge import segment
from ticketing.knowledge.models import ArticleKind, ArticleStatus, KbArticle, KbArticleVersion
from ticketing.knowledge.sanitize import clean_html, plain_text
from ticketing.knowledge.schemas import ArticleIn
from ticketing.models import Department, Role, utcnow

S = ArticleStatus
# action → (states it may start from, state it leads to)
FLOW: dict[str, tuple[frozenset[str], str]] = {
    "review": (frozenset({S.draft}), S.reviewed),
    "publish": (frozenset({S.reviewed}), S.published),
    "expire": (frozenset({S.published, S.reviewed, S.draft}), S.expired),
    "withdraw": (frozenset({S.published, S.reviewed}), S.draft),
}
STATUS_LABELS: dict[str, str] = {
    S.draft: "草稿",
    S.reviewed: "已审核",
    S.published: "已发布",
    S.expired: "已失效",
}
DONE = {"review": "reviewed", "publish": "published", "expire": "expired", "withdraw": "withdrawn"}
ACTION_LABELS = {"review": "审核", "publish": "发布", "expire": "失效", "withdraw": "撤回"}
CONTENT_FIELDS = (
    "title",
    "summary",
    "body",
    "kind",
    "department_code",
    "categories",
    "keywords",
    "issuer",
    "doc_number",
    "links",
    "attachments",
    "effective_from",
    "expires_on",
    "apply_from",
    "apply_until",
    "industries",
    "size_bands",
    "regions",
    "audiences",
    "tags",
    "is_public",
)


@dataclass(frozen=True)
class Editor:
    """Who is acting: a user's name, role and department (handlers)."""

    username: str
    role: str
    department_code: str | None = None

    @classmethod
    def of(cls, user: Any) -> Editor:
        return cls(user.username, user.role, getattr(user, "department_code", None))


SYSTEM = Editor("system", Role.admin.value)


def may_edit(editor: Editor, department_code: str) -> bool:
    """An admin, or a handler of the owning department."""
    return editor.role == Role.admin or (
        editor.role == Role.handler and editor.department_code == department_code
    )


def _require_editor(editor: Editor, department_code: str) -> None:
    if not may_edit(editor, department_code):
        raise PermissionDenied(
            "只有文章所属部门的经办人或管理员可以修改、审核和发布", department=department_code
        )


def validate(data: ArticleIn | dict[str, Any]) -> ArticleIn:
    if isinstance(data, ArticleIn):
        return data
    try:
        return ArticleIn.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "article"
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        raise InvalidInput(f"字段 {field} 无效：{msg}", field=field) from None


def _snapshot(a: KbArticle) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in CONTENT_FIELDS:
        v = getattr(a, f)
        out[f] = v.isoformat() if isinstance(v, date) else v
    return out


def _record(session: Session, a: KbArticle, action: str, actor: str, note: str | None) -> None:
    session.add(
        KbArticleVersion(
            article_id=a.id or 0,  # flushed before every _record: id set
            version=a.version,
            action=action,
            status=a.status,
            actor=actor[:64],
            at=utcnow(),
            note=(note or None) and note[:500],
            snapshot=_snapshot(a),
        )
    )


def _apply(settings: Settings, a: KbArticle, data: ArticleIn) -> None:
    values = data.stored()
    values["body"] = clean_html(values["body"])
    for f in CONTENT_FIELDS:
        setattr(a, f, values[f])
    a.body_text = plain_text(a.body)
    a.keywords = list(dict.fromkeys(k.strip() for k in a.keywords if k.strip()))
    index(settings, a)


def index(settings: Settings, a: KbArticle) -> None:
    """Fill the segmented search columns from the article's text."""
    a.search_title = segment.index_text(settings, a.title)
    a.search_keywords = segment.index_text(
        settings, " ".join([*a.keywords, *a.categories, *a.tags, a.summary or ""])
    )
    a.search_body = segment.index_text(settings, a.body_text)


def _check_department(session: Session, code: str) -> None:
    dept = session.exec(select(Department).where(Department.code == code)).first()
    if dept is None or not dept.active:
        raise InvalidInput(f"未知或已停用的部门：{code}", field="department_code")


def create_article(
    session: Session,
    settings: Settings,
    data: ArticleIn | dict[str, Any],
    editor: Editor,
    *,
    status: str = S.draft,
    seed_key: str | None = None,
    note: str | None = None,
) -> KbArticle:
    """A new article, as a draft (starter content is loaded as published)."""
    article_in = validate(data)
    _require_editor(editor, article_in.department_code)
    _check_department(session, article_in.department_code)
    now = utcnow()
    a = KbArticle(
        title=article_in.title,
        kind=article_in.kind,
        department_code=article_in.department_code,
        status=status,
        seed_key=seed_key,
        created_by=editor.username,
        updated_by=editor.username,
        created_at=now,
        updated_at=now,
        published_at=now if status == S.published else None,
    )
    _apply(settings, a, article_in)
    session.add(a)
    session.flush()
    _record(session, a, "created", editor.username, note)
    return a


def get_article(session: Session, article_id: int) -> KbArticle:
    a = session.get(KbArticle, article_id)
    if a is None:
        raise NotFound(f"未找到知识库文章：{article_id}", field="article_id")
    return a


def _lock(session: Session, article_id: int) -> KbArticle:
    a = session.exec(select(KbArticle).where(KbArticle.id == article_id).with_for_update()).first()
    if a is None:
        raise NotFound(f"未找到知识库文章：{article_id}", field="article_id")
    return a


def update_article(
    session: Session,
    settings: Settings,
    article_id: int,
    data: ArticleIn | dict[str, Any],
    editor: Editor,
    *,
    expected_version: int | None = None,
    note: str | None = None,
) -> KbArticle:
    """Save a new version (back to draft). `expected_version` guards against two editors
    overwriting each other: a stale version is a Conflict."""
    article_in = validate(data)
    a = _lock(session, article_id)
    _require_editor(editor, a.department_code)
    _require_editor(editor, article_in.department_code)
    if article_in.department_code != a.department_code:
        _check_department(session, article_in.department_code)
    if expected_version is not None and expected_version != a.version:
        raise Conflict(
            f"文章已被他人修改（当前第 {a.version} 版），请刷新后再改",
            code="stale_version",
            current=a.version,
        )
    _apply(settings, a, article_in)
    a.version += 1
    a.status = S.draft
    a.updated_by, a.updated_at = editor.username, utcnow()
    a.expiry_reminded_on = None
    session.add(a)
    session.flush()
    _record(session, a, "edited", editor.username, note)
    return a


def transition(
    session: Session,
    article_id: int,
    action: str,
    editor: Editor,
    *,
    note: str | None = None,
    settings: Settings | None = None,
) -> KbArticle:
    """One step of the review flow (FLOW), by an editor of the owning department. Publishing a
    policy (with `settings`) pushes it to the enterprises it fits (ticketing.policy_push)."""
    if action not in FLOW:
        raise InvalidInput(f"未知的操作：{action}", field="action", allowed=sorted(FLOW))
    a = _lock(session, article_id)
    _require_editor(editor, a.department_code)
    sources, target = FLOW[action]
    if a.status not in sources:
        raise Conflict(
            f"文章当前状态为“{STATUS_LABELS.get(a.status, a.status)}”，不能{ACTION_LABELS[action]}",
            code="illegal_transition",
            current=a.status,
            target=target,
        )
    if action == "publish" and a.expires_on is not None and a.expires_on < date.today():
        raise Conflict("文章已过失效日期，请先修改失效日期再发布", code="expired")
    a.status = target
    now = utcnow()
    if target == S.published:
        a.published_at = now
    a.updated_by, a.updated_at = editor.username, now
    session.add(a)
    session.flush()
    _record(session, a, DONE[action], editor.username, note)
    if target == S.published and a.kind == ArticleKind.policy and settings is not None:
        from ticketing.policy_push import request_on_publish

        request_on_publish(session, settings, a, editor.username)
    return a


def versions(session: Session, article_id: int) -> list[KbArticleVersion]:
    get_article(session, article_id)
    return list(
        session.exec(
            select(KbArticleVersion)
            .where(KbArticleVersion.article_id == article_id)
            .order_by(col(KbArticleVersion.id))
        )
    )
