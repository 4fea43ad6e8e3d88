"""Issue #18: the portal's 政策与办事指南 page reads the knowledge base: its published, public,
unexpired 办事指南 and 政策 (the starter content seeds them), each linking to the article."""

from __future__ import annotations

import re
from datetime import date, timedelta

from console_helpers import DEPT_A
from sqlmodel import select

from config.database import session_scope
from ticketing import KbArticle, create_article, seed_knowledge
from ticketing.knowledge.store import SYSTEM


def _article(web, title: str, kind: str = "guide", status: str = "published", **over) -> int:
    data = {
        "title": title,
        "summary": f"{title}的摘要",
        "body": f"<p>{title}的正文。</p>",
        "kind": kind,
        "department_code": DEPT_A,
        **over,
    }
    with session_scope(web.engine) as s:
        a = create_article(s, web.settings, data, SYSTEM, status=status)
        return a.id or 0


def test_the_guides_page_lists_the_published_public_guides_and_policies(web):
    guide = _article(web, "食品经营许可办理指南")
    policy = _article(web, "小微企业房租减免政策", kind="policy")
    _article(web, "草稿中的办理指南", status="draft")
    _article(web, "内部掌握的办理口径", is_public=False)
    _article(web, "已过期的补贴政策", kind="policy", expires_on=date.today() - timedelta(days=3))
    _article(web, "营业执照丢了怎么办", kind="faq")
    web.client.cookies.clear()
    html = web.client.get("/portal/guides").text
    assert f'href="/portal/kb/{guide}"' in html and f'href="/portal/kb/{policy}"' in html
    assert "食品经营许可办理指南的摘要" in html and "办事指南" in html and "政策" in html
    for hidden in (
        "草稿中的办理指南",
        "内部掌握的办理口径",
        "已过期的补贴政策",
        "营业执照丢了怎么办",
    ):
        assert hidden not in html
    assert "暂无指南" not in html
    # each links to the public article page, which opens
    assert "食品经营许可办理指南的正文" in web.client.get(f"/portal/kb/{guide}").text
    home = web.client.get("/portal").text
    assert len(re.findall(r'<li><span class="p-tag">', home)) == 2
    # the home page's list opens the articles too, not just names them
    assert f'href="/portal/kb/{guide}"' in home and f'href="/portal/kb/{policy}"' in home


def test_the_starter_content_fills_the_page(web):
    with session_scope(web.engine) as s:
        seed_knowledge(s, web.settings)
        guides = s.exec(
            select(KbArticle.title).where(KbArticle.kind == "guide", KbArticle.is_public)
        ).all()
    html = web.client.get("/portal/guides").text
    assert len(guides) > 10 and all(t in html for t in guides)
    assert len(re.findall(r'<li><span class="p-tag">', web.client.get("/portal").text)) == 3
