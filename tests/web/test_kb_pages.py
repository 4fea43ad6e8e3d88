"""Knowledge pages (issue #19) through the real app on SQLite and PostgreSQL: staff search, the
edit/review/publish flow by the owning department only (another department's handler and an agent
are refused server-side, nothing changes), the console's suggestions, SMS and 直接答复 on a live
call, the dispatch desk's 知识库答复, the public pages with "您是不是要找…" and deflection, the leader's
first-contact figures and the gaps report."""

from __future__ import annotations

import re

import pytest
import redis
from sqlmodel import col, select
from test_console import CALL, live_call
from web_helpers import Web

from config.database import session_scope
from ticketing import (
    DirectAnswer,
    KbArticle,
    KbArticleVersion,
    KbQueryLog,
    OutboxMessage,
    Ticket,
    TicketEvent,
    seed_knowledge,
)

H = {"HX-Request": "true"}


@pytest.fixture
def kb(web: Web) -> Web:
    with session_scope(web.engine) as s:
        seed_knowledge(s, web.settings)
    return web


def _id(web: Web, key: str) -> int:
    with session_scope(web.engine, read_only=True) as s:
        return s.exec(select(KbArticle.id).where(KbArticle.seed_key == key)).one()


def _post(web: Web, path: str, data: dict, page: str = "/kb", **kw):
    return web.client.post(path, data={**data, "csrf_token": web.csrf(page)}, **kw)


def test_staff_search_list_and_article_with_versions(kb: Web):
    kb.login("agent")
    r = kb.client.get("/kb", params={"q": "咨询个体户小吃店开办需要哪些材料"})
    assert r.status_code == 200
    assert "<mark>" in r.text and "个体" in r.text
    listing = kb.client.get("/kb", params={"status": "published"})
    assert "已发布" in listing.text and "新建文章" not in listing.text  # an agent does not write
    aid = _id(kb, "reg-001")
    page = kb.client.get(f"/kb/{aid}")
    assert page.status_code == 200 and "版本记录" in page.text and 'id="kb-edit"' not in page.text
    assert kb.client.get("/kb/999999").status_code == 404
    assert kb.client.get("/kb/abc").status_code == 404
    with session_scope(kb.engine, read_only=True) as s:
        kinds = {x.kind for x in s.exec(select(KbQueryLog))}
    assert kinds == {"search", "open"}


def test_the_starter_articles_name_their_author_in_chinese(kb: Web):
    """The starter content is written by the machine actor "system": the list, the article and its
    version history say 系统 (and the version note is Chinese), never the English word."""
    kb.login("agent")
    listing = kb.client.get("/kb").text
    page = kb.client.get(f"/kb/{_id(kb, 'reg-001')}").text
    for html in (listing, page):
        assert "· 系统" in html and "system" not in re.sub(r"<[^>]*>", "", html)
    assert "系统预置内容" in page and "starter content" not in page


def test_owning_department_writes_reviews_publishes_others_are_refused(kb: Web):
    kb.login("handler")  # SCJG
    form = {"title": "个体户年报怎么填", "kind": "faq", "department_code": "SCJG",
            "summary": "登录公示系统填报。", "body": "<p>每年1月1日至6月30日填报。</p>",
            "keywords": "年报、个体户", "is_public": "1"}  # fmt: skip
    bad = _post(kb, "/kb/new", {**form, "title": ""})
    assert bad.status_code == 422 and "请填写标题" in bad.text
    dates = _post(
        kb, "/kb/new", {**form, "effective_from": "2026-02-01", "expires_on": "2026-01-01"}
    )
    assert dates.status_code == 422 and "失效日期不能早于生效日期" in dates.text
    r = _post(kb, "/kb/new", form, follow_redirects=False)
    assert r.status_code == 303, r.text
    aid = int(re.search(r"/kb/(\d+)", r.headers["location"]).group(1))
    edit = kb.client.get(f"/kb/{aid}/edit")
    assert edit.status_code == 200 and 'name="version" value="1"' in edit.text
    r = _post(kb, f"/kb/{aid}/edit", {**form, "summary": "新的答复", "version": "1"},
              follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    stale = _post(kb, f"/kb/{aid}/edit", {**form, "version": "1"})
    assert stale.status_code == 409 and "已被他人修改" in stale.text
    early = _post(kb, f"/kb/{aid}/flow", {"action": "publish"})
    assert early.status_code == 409  # a draft is reviewed before it is published
    for action in ("review", "publish"):
        assert (
            _post(kb, f"/kb/{aid}/flow", {"action": action}, follow_redirects=False).status_code
            == 303
        )
    # another department's handler and an agent: refused on every door, nothing changes
    kb.login("handler_b")
    assert kb.client.get(f"/kb/{aid}/edit").status_code == 403
    assert (
        _post(kb, f"/kb/{aid}/edit", {**form, "title": "改掉", "version": "2"}).status_code == 403
    )
    assert _post(kb, f"/kb/{aid}/flow", {"action": "expire"}).status_code == 403
    assert _post(kb, "/kb/new", form).status_code == 403  # writing for SCJG
    kb.login("agent")
    assert kb.client.get(f"/kb/{aid}/edit").status_code == 403
    assert _post(kb, f"/kb/{aid}/flow", {"action": "expire"}).status_code == 403
    with session_scope(kb.engine, read_only=True) as s:
        a = s.get(KbArticle, aid)
        assert (a.status, a.version, a.summary, a.title) == (
            "published",
            2,
            "新的答复",
            form["title"],
        )
        steps = [v.action for v in s.exec(select(KbArticleVersion).where(
            KbArticleVersion.article_id == aid).order_by(col(KbArticleVersion.id)))]  # fmt: skip
    assert steps == ["created", "edited", "reviewed", "published"]
    kb.login("admin")
    page = kb.client.get(f"/kb/{aid}")
    assert "查看该版本内容" in page.text and 'id="kb-edit"' in page.text


def test_console_suggests_sends_sms_and_answers_directly(kb: Web):
    live_call(kb)
    kb.login("agent")
    csrf = kb.csrf("/console")
    pop = kb.client.get(f"/console/pop/{CALL}")
    assert 'id="kb-panel"' in pop.text and "直接答复并办结" in pop.text
    sugg = kb.client.get(
        "/console/kb/suggest",
        params={"content": "我想开个小吃店，个体户要什么材料", "call_id": CALL},
    )
    assert sugg.status_code == 200 and 'data-n="1"' in sugg.text
    ids = [int(i) for i in re.findall(r'name="article_ids" value="(\d+)"', sugg.text)]
    assert ids
    panel = kb.client.get(f"/kb/{ids[0]}/panel", params={"call_id": CALL})
    assert panel.status_code == 200 and "短信发送给来电人" in panel.text
    h = {**H, "X-CSRF-Token": csrf}
    sms = kb.client.post("/console/kb/sms", data={"article_id": ids[0], "call_id": CALL}, headers=h)
    assert sms.status_code == 200 and "已发送" in sms.text
    # 直接答复 with nothing cited and no note: refused, nothing written
    bad = kb.client.post(f"/console/pop/{CALL}/direct-answer", data={"content": "咨询"}, headers=h)
    assert bad.status_code == 422 and "请选择答复所用的知识库文章" in bad.text
    r = kb.client.post(
        f"/console/pop/{CALL}/direct-answer",
        data={
            "content": "咨询个体户小吃店开办需要哪些材料",
            "article_ids": [ids[0]],
            "note": "已告知所需材料与办理地点",
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert "已直接答复并办结" in r.text
    with session_scope(kb.engine, read_only=True) as s:
        t = s.exec(select(Ticket)).one()
        assert (t.status, t.dispatch_mode, t.deadline_at) == ("resolved", "direct", None)
        da = s.exec(select(DirectAnswer)).one()
        assert da.article_ids == [ids[0]] and da.note == "已告知所需材料与办理地点"
        kinds = [m.kind for m in s.exec(select(OutboxMessage))]
        assert "kb_article" in kinds
    link = redis.Redis.from_url(kb.settings.redis_url)
    linked = link.hget(f"{kb.settings.redis_namespace}:live:ticket-links", CALL)
    link.close()
    assert linked.decode() == t.number


def test_sms_only_to_mainland_mobiles(kb: Web):
    live_call(kb, phone="02787654321")  # a landline
    kb.login("agent")
    h = {**H, "X-CSRF-Token": kb.csrf("/console")}
    r = kb.client.post(
        "/console/kb/sms", data={"article_id": _id(kb, "reg-001"), "call_id": CALL}, headers=h
    )
    assert r.status_code == 422 and "不是大陆手机号" in r.text
    with session_scope(kb.engine, read_only=True) as s:
        assert s.exec(select(OutboxMessage)).all() == []


def test_expired_article_is_never_suggested(kb: Web):
    aid = _id(kb, "reg-001")
    kb.login("agent")
    q = {"content": "个体户注册开店办执照"}
    assert f'value="{aid}"' in kb.client.get("/console/kb/suggest", params=q).text
    from datetime import date

    with session_scope(kb.engine) as s:
        s.get(KbArticle, aid).expires_on = date(2020, 1, 1)
    assert f'value="{aid}"' not in kb.client.get("/console/kb/suggest", params=q).text
    assert kb.client.get(f"/kb/{aid}/panel").status_code == 404
    assert kb.client.get(f"/portal/kb/{aid}").status_code == 404


def _waiting(kb: Web) -> str:
    with session_scope(kb.engine) as s:
        s.add(Ticket(number="DXE-KB-WAIT", channel="web", title="惠企政策咨询",
                     content="想了解小微企业有哪些惠企政策", category="complaint",
                     urgency="general", status="pending_dispatch", created_by="test"))  # fmt: skip
    return "DXE-KB-WAIT"


def test_dispatcher_answers_a_waiting_consultation_from_the_desk(kb: Web):
    number = _waiting(kb)
    kb.login("dispatcher")
    desk = kb.client.get("/dispatch")
    assert f"/dispatch/{number}/answer" in desk.text
    page = kb.client.get(f"/dispatch/{number}/answer")
    assert page.status_code == 200 and "惠企" in page.text
    aid = int(re.search(r'name="article_ids" value="(\d+)"', page.text).group(1))
    empty = _post(kb, f"/dispatch/{number}/answer", {"note": ""}, page=f"/dispatch/{number}/answer")
    assert empty.status_code == 422
    r = _post(kb, f"/dispatch/{number}/answer", {"article_ids": aid, "note": "已电话告知"},
              page=f"/dispatch/{number}/answer", follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with session_scope(kb.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        assert (t.status, t.dispatch_mode) == ("resolved", "direct")
        assert s.exec(select(TicketEvent).where(TicketEvent.action == "direct_answered")).one()
    kb.login("agent")  # agents answer at intake; the desk's answer is a dispatcher's
    assert kb.client.get(f"/dispatch/{number}/answer").status_code == 403


def test_public_pages_suggest_and_record_deflection(kb: Web):
    kb.client.cookies.clear()
    page = kb.client.get("/portal/kb", params={"q": "公积金么样取出来"})
    assert page.status_code == 200 and "pkb-results" in page.text
    frag = kb.client.get("/portal/kb/suggest", params={"q": "开小吃店要办什么证"})
    assert frag.status_code == 200 and "您是不是要找" in frag.text and "<html" not in frag.text
    assert kb.client.get("/portal/kb/suggest", params={"q": "x"}).text.strip() == ""
    aid = int(re.search(r"/portal/kb/(\d+)\?from=suggest", frag.text).group(1))
    art = kb.client.get(f"/portal/kb/{aid}", params={"from": "suggest", "q": "开小吃店要办什么证"})
    assert art.status_code == 200 and "问题已解决" in art.text
    token = re.search(r'name="token" value="([^"]+)"', art.text).group(1)
    forged = kb.client.post(f"/portal/kb/{aid}/resolved", data={"token": "x" * 43})
    assert forged.status_code == 403
    ok = kb.client.post(
        f"/portal/kb/{aid}/resolved", data={"token": token, "q": "开小吃店要办什么证"}
    )
    assert ok.status_code == 200 and "很高兴帮到您" in ok.text
    with session_scope(kb.engine) as s:
        d = s.exec(select(KbQueryLog).where(KbQueryLog.kind == "deflected")).one()
        assert (d.article_id, d.query, d.audience) == (aid, "开小吃店要办什么证", "public")
        internal = s.get(KbArticle, _id(kb, "reg-002"))
        internal.is_public = False
        iid = internal.id
    assert kb.client.get(f"/portal/kb/{iid}").status_code == 404


def test_leader_figures_and_gaps(kb: Web):
    kb.login("agent")
    kb.client.get("/kb", params={"q": "火星移民签证怎么办理"})  # a question with no article
    kb.login("leader")
    page = kb.client.get("/leader")
    assert page.status_code == 200
    assert "直接解答率" in page.text and "知识命中率" in page.text and "直接答复满意率" in page.text
    assert "火星移民签证怎么办理" in page.text
    gaps = kb.client.get("/kb/gaps")
    assert gaps.status_code == 200 and "火星移民签证怎么办理" in gaps.text
    kb.login("agent")
    assert kb.client.get("/kb/gaps").status_code == 403
