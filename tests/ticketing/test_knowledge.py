"""The knowledge base on SQLite and PostgreSQL: store, versions and review flow, sanitiser,
search (the labelled questions' top-3 hit rate, synonyms, dialect, filters, visibility), expiry
and reminders, gap reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kb_helpers import article_data, labelled_questions, seed_store
from sqlmodel import select

from config.database import session_scope
from ticketing.errors import Conflict, InvalidInput, PermissionDenied
from ticketing.knowledge import (
    Editor,
    KbArticle,
    KbQueryLog,
    SearchFilter,
    create_article,
    expire_and_remind,
    log_open,
    log_search,
    no_hit_articles,
    search_articles,
    transition,
    unanswered_questions,
    update_article,
    versions,
)
from ticketing.knowledge.sanitize import clean_html, plain_text
from ticketing.knowledge.search import local_today
from ticketing.knowledge.seed import starter_articles
from ticketing.models import Department, OutboxMessage, utcnow

ADMIN = Editor("admin1", "admin")
CGJ = Editor("cg1", "handler", "CGJ")
SWJ = Editor("sw1", "handler", "SWJ")
AGENT = Editor("agent1", "agent")


@pytest.fixture
def store(engine, settings):
    seed_store(engine, settings)
    return engine, settings


def _ids(hits) -> list[str | None]:
    return [h.article.seed_key for h in hits]


# ---------------------------------------------------------------- sanitiser
@pytest.mark.parametrize(
    "raw",
    [
        "<p>办理<script>alert('x')</script>指南</p>",
        '<p onclick="steal()">办理指南</p>',
        '<a href="javascript:alert(1)">办理指南</a>',
        '<img src="x" onerror="alert(1)">办理指南',
        "<style>p{display:none}</style><p>办理指南</p>",
        '<iframe src="https://evil.example"></iframe><p>办理指南</p>',
        "<svg><script>alert(1)</script></svg>办理指南",
    ],
)
def test_sanitiser_removes_scripts_handlers_and_bad_links(raw):
    out = clean_html(raw)
    low = out.lower()
    for bad in (
        "<script",
        "onclick",
        "onerror",
        "javascript:",
        "<style",
        "<iframe",
        "<img",
        "<svg",
    ):
        assert bad not in low, out
    assert "alert" not in low and "steal" not in low and "evil" not in low
    assert "办理" in plain_text(out)


def test_sanitiser_keeps_structure_and_safe_links():
    out = clean_html(
        '<h3>材料</h3><ul><li>身份证</li></ul><a href="https://zwfw.hubei.gov.cn">网办</a>'
    )
    assert "<ul><li>身份证</li></ul>" in out
    assert 'href="https://zwfw.hubei.gov.cn"' in out and 'rel="noopener noreferrer"' in out
    assert plain_text(out).splitlines() == ["材料", "身份证", "网办"]


# ---------------------------------------------------------------- store, versions, review flow
def test_create_edit_review_publish_keeps_every_version(store):
    engine, settings = store
    with session_scope(engine) as s:
        a = create_article(s, settings, article_data(body="<p>备案<script>x()</script></p>"), CGJ)
        aid = a.id
        assert a.status == "draft" and a.version == 1 and "<script" not in a.body
    with session_scope(engine) as s:
        transition(s, aid, "review", CGJ, note="内容核对无误")
        transition(s, aid, "publish", CGJ)
    with session_scope(engine) as s:
        assert s.get(KbArticle, aid).status == "published"
        update_article(
            s,
            settings,
            aid,
            article_data(title="夜市摊点经营备案（修订）"),
            ADMIN,
            expected_version=1,
        )
    with session_scope(engine) as s:
        a = s.get(KbArticle, aid)
        assert (a.status, a.version, a.title) == ("draft", 2, "夜市摊点经营备案（修订）")
        rows = versions(s, aid)
        assert [(v.version, v.action, v.status, v.actor) for v in rows] == [
            (1, "created", "draft", "cg1"),
            (1, "reviewed", "reviewed", "cg1"),
            (1, "published", "published", "cg1"),
            (2, "edited", "draft", "admin1"),
        ]
        assert rows[0].snapshot["title"] == "测试办事指南：夜市摊点经营备案"
        assert rows[-1].snapshot["title"] == "夜市摊点经营备案（修订）"
        assert rows[1].note == "内容核对无误" and rows[0].at <= rows[-1].at


def test_only_owning_department_and_admins_edit(store):
    engine, settings = store
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            create_article(s, settings, article_data(), SWJ)
        with pytest.raises(PermissionDenied):
            create_article(s, settings, article_data(), AGENT)
        aid = create_article(s, settings, article_data(), CGJ).id
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            update_article(s, settings, aid, article_data(title="改"), SWJ)
        with pytest.raises(PermissionDenied):
            transition(s, aid, "review", SWJ)
        with pytest.raises(PermissionDenied):  # a handler cannot give it to another department
            update_article(s, settings, aid, article_data(department_code="SWJ"), CGJ)
    with session_scope(engine) as s:
        assert s.get(KbArticle, aid).version == 1


def test_review_flow_refuses_skips_and_stale_edits(store):
    engine, settings = store
    with session_scope(engine) as s:
        aid = create_article(s, settings, article_data(), CGJ).id
    with session_scope(engine) as s:
        with pytest.raises(Conflict) as e:
            transition(s, aid, "publish", CGJ)  # not reviewed yet
        assert e.value.details["current"] == "draft"
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        transition(s, aid, "approve", CGJ)
    with session_scope(engine) as s:
        update_article(s, settings, aid, article_data(title="第二版"), CGJ, expected_version=1)
    with session_scope(engine) as s:
        with pytest.raises(Conflict) as e:
            update_article(
                s, settings, aid, article_data(title="基于旧版"), CGJ, expected_version=1
            )
        assert e.value.code == "stale_version"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "公告栏"),
        ("title", ""),
        ("department_code", "NOPE"),
        ("size_bands", ["巨型"]),
        ("links", [{"title": "x", "url": "javascript:alert(1)"}]),
        ("expires_on", "2020-01-01"),  # before effective_from below
    ],
)
def test_bad_article_input_is_refused_in_chinese(store, field, value):
    engine, settings = store
    data = article_data(**{field: value}, effective_from="2021-01-01")
    with session_scope(engine) as s:
        before = s.exec(select(KbArticle)).all()
        with pytest.raises(InvalidInput) as e:
            create_article(s, settings, data, ADMIN)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in e.value.message)
    with session_scope(engine) as s:
        assert len(s.exec(select(KbArticle)).all()) == len(before)


def test_starter_content_is_seeded_once_with_owner_and_source(engine, settings):
    assert seed_store(engine, settings) == len(starter_articles()) >= 80
    assert seed_store(engine, settings) == 0  # idempotent: edits are never overwritten
    with session_scope(engine) as s:
        rows = s.exec(select(KbArticle)).all()
        assert all(a.status == "published" and a.department_code and a.doc_number for a in rows)
        assert all(a.search_title and a.body_text for a in rows)
        assert len({a.department_code for a in rows}) >= 10


# ---------------------------------------------------------------- search
def test_labelled_questions_top3_hit_rate_is_at_least_85_percent(store):
    engine, settings = store
    questions = labelled_questions()
    assert len(questions) >= 200
    keys = {a["key"] for a in starter_articles()}
    assert all(want <= keys for _, want in questions), "labels name unknown articles"
    hits = 0
    with session_scope(engine, read_only=True) as s:
        for question, want in questions:
            got = _ids(search_articles(s, settings, question, public=True, limit=3))
            hits += bool(want & set(got))
    rate = hits / len(questions)
    assert rate >= 0.85, rate


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("咨询个体户小吃店开办需要哪些材料", "lic-002"),  # the issue's own example
        ("我屋里伢想开个早点铺子冇得执照么样搞", "lic-002,reg-001"),  # dialect, no punctuation
        ("住房公积金怎么提取", "gjj-002"),
        ("公积金咋个取出来", "gjj-002"),  # synonym: 公积金 → 住房公积金
        ("执照掉了", "reg-006"),  # synonym: 执照 → 营业执照
    ],
)
def test_spoken_and_dialect_questions_find_the_answer_first(store, question, expected):
    engine, settings = store
    with session_scope(engine, read_only=True) as s:
        hits = search_articles(s, settings, question, public=True, limit=3)
    assert set(expected.split(",")) & set(_ids(hits)), (question, _ids(hits))


def test_snippet_is_the_matching_passage_marked_and_escaped(store):
    engine, settings = store
    with session_scope(engine) as s:
        a = create_article(
            s,
            settings,
            article_data(body="<p>第一段无关。</p><p>夜市摊点备案要带身份证 &lt;b&gt;。</p>"),
            ADMIN,
            status="published",
        )
        aid = a.id
    with session_scope(engine, read_only=True) as s:
        hit = next(
            h
            for h in search_articles(s, settings, "夜市摊点备案", public=True)
            if h.article.id == aid
        )
    assert "<mark>夜市</mark>" in hit.snippet and "第一段" not in hit.snippet
    assert "&lt;b&gt;" in hit.snippet and "<b>" not in hit.snippet


def test_filters_kind_department_region_audience(store):
    engine, settings = store
    with session_scope(engine) as s:
        town = create_article(
            s,
            settings,
            article_data(title="神山镇夜市摊点备案", regions=["神山镇"], audiences=["个体工商户"]),
            ADMIN,
            status="published",
        ).id
    q = "夜市摊点备案"
    with session_scope(engine, read_only=True) as s:

        def ids(**f):
            return [
                h.article.id
                for h in search_articles(s, settings, q, public=True, filters=SearchFilter(**f))
            ]

        assert town in ids()
        assert town in ids(region="神山镇") and town not in ids(region="车埠镇")
        assert town in ids(audience="个体工商户") and town not in ids(audience="企业")
        assert town in ids(department="CGJ") and town not in ids(department="SWJ")
        assert town not in ids(kind="policy")
        for h in search_articles(
            s, settings, "税", public=True, filters=SearchFilter(kind="policy")
        ):
            assert h.article.kind == "policy"


def test_unpublished_internal_and_expired_are_never_suggested_to_the_public(store):
    engine, settings = store
    today = local_today(settings)
    with session_scope(engine) as s:
        draft = create_article(s, settings, article_data(title="夜市摊点草稿"), ADMIN).id
        internal = create_article(
            s,
            settings,
            article_data(title="夜市摊点内部口径", is_public=False),
            ADMIN,
            status="published",
        ).id
        past = create_article(
            s,
            settings,
            article_data(title="夜市摊点旧规定", expires_on=str(today - timedelta(days=1))),
            ADMIN,
            status="published",
        ).id
        live = create_article(
            s,
            settings,
            article_data(title="夜市摊点现行规定", expires_on=str(today)),
            ADMIN,
            status="published",
        ).id
    with session_scope(engine, read_only=True) as s:
        public = {
            h.article.id for h in search_articles(s, settings, "夜市摊点", public=True, limit=20)
        }
        staff = {
            h.article.id for h in search_articles(s, settings, "夜市摊点", public=False, limit=20)
        }
    assert live in public and draft not in public and internal not in public and past not in public
    assert internal in staff and draft not in staff and past not in staff


def test_empty_or_stopword_only_questions_find_nothing(store):
    engine, settings = store
    with session_scope(engine, read_only=True) as s:
        assert search_articles(s, settings, "", public=True) == []
        assert search_articles(s, settings, "我想问一下么样", public=True) == []
        assert search_articles(s, settings, "\"' OR 1=1 --", public=True) == []


# ---------------------------------------------------------------- expiry, reminders, reports
def test_expiry_job_marks_expired_and_reminds_the_department_once(store):
    engine, settings = store
    today = local_today(settings)
    with session_scope(engine) as s:
        gone = create_article(
            s,
            settings,
            article_data(title="过期", expires_on=str(today - timedelta(days=2))),
            ADMIN,
            status="published",
        ).id
        soon = create_article(
            s,
            settings,
            article_data(title="将到期", expires_on=str(today + timedelta(days=10))),
            ADMIN,
            status="published",
        ).id
        later = create_article(
            s,
            settings,
            article_data(title="很久以后", expires_on=str(today + timedelta(days=300))),
            ADMIN,
            status="published",
        ).id
    with session_scope(engine) as s:  # the configured head phones are placeholders
        for d in s.exec(select(Department).where(Department.code == "CGJ")):
            d.head_phone = "+8613900001111"
    with session_scope(engine) as s:
        out = expire_and_remind(s, settings)
    assert out["expired"] >= 1 and out["reminded"] >= 1
    with session_scope(engine) as s:
        assert s.get(KbArticle, gone).status == "expired"
        assert versions(s, gone)[-1].action == "expired"
        assert s.get(KbArticle, soon).expiry_reminded_on == today + timedelta(days=10)
        assert s.get(KbArticle, later).expiry_reminded_on is None
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "kb_expiry")).all()
        assert any("将到期" in m.body for m in sms)
        count = len(sms)
    with session_scope(engine) as s:
        again = expire_and_remind(s, settings)
        assert again == {"expired": 0, "reminded": 0, "sms_refused": 0}
        assert (
            len(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "kb_expiry")).all())
            == count
        )


def test_gap_reports_no_hit_articles_and_unanswered_questions(store):
    engine, settings = store
    since = utcnow() - timedelta(minutes=1)
    with session_scope(engine) as s:
        hits = search_articles(s, settings, "公积金提取", public=True)
        log_search(s, "公积金提取", hits, public=True)
        log_search(s, "火星移民补贴", [], public=True)
        log_search(s, "火星移民补贴", [], public=False)
        log_search(s, "月球养老", [], public=True)
        opened = s.exec(select(KbArticle.id).where(KbArticle.seed_key == "tax-009")).one()
        log_open(s, opened, public=False)
    until = utcnow() + timedelta(minutes=1)
    with session_scope(engine, read_only=True) as s:
        assert unanswered_questions(s, since, until)[:2] == [("火星移民补贴", 2), ("月球养老", 1)]
        gaps = {a.id for a in no_hit_articles(s, since, until)}
        found = {h.article.id for h in hits[:3]}
        assert found and not (found & gaps) and opened not in gaps
        assert len(gaps) >= 70
        rows = s.exec(select(KbQueryLog)).all()
        assert {r.audience for r in rows} == {"public", "staff"}
