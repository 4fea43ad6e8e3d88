"""The public service portal (agent_console.web.portal): submit, the notice, follow, confirm,
rate, 重办, guides, against the real app, SQLite/PostgreSQL and Redis."""

from __future__ import annotations

import re

import pytest
from sqlmodel import col, select

from config.database import session_scope
from ticketing import (
    Notice,
    OutboxMessage,
    SubOrder,
    Ticket,
    TicketEvent,
    accept,
    dispatch_to_departments,
    reply,
)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY_RE = re.compile(r'name="idempotency_key" value="([^"]+)"')
PHONE = "13812341234"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _form(web, path: str = "/portal/submit") -> dict[str, str]:
    page = web.client.get(path)
    assert page.status_code == 200, page.text
    out = {"csrf_token": CSRF_RE.search(page.text).group(1)}
    key = KEY_RE.search(page.text)
    if key:
        out["idempotency_key"] = key.group(1)
    return out


def _submit(web, files=None, **fields):
    data = {
        **_form(web),
        "category": "enterprise",
        "content": "我公司办理施工许可证已超过二十个工作日仍无答复，请帮助协调。",
        "submitter_name": "王先生",
        "submitter_phone": PHONE,
        **fields,
    }
    return web.client.post("/portal/submit", data=data, files=files, follow_redirects=False)


def _ticket(web, number: str) -> Ticket:
    with session_scope(web.engine, read_only=True) as s:
        return s.exec(select(Ticket).where(Ticket.number == number)).one()


def _outbox(web, ticket_id: int, kind: str) -> list[OutboxMessage]:
    with session_scope(web.engine, read_only=True) as s:
        return list(
            s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.ticket_id == ticket_id, OutboxMessage.kind == kind)
                .order_by(col(OutboxMessage.id))
            )
        )


def _submitted(web, **fields) -> tuple[str, str, Ticket]:
    r = _submit(web, **fields)
    assert r.status_code == 303, r.text
    token = r.headers["location"].split("/portal/n/")[1].split("?")[0]
    page = web.client.get(r.headers["location"])
    number = re.search(r'id="ticket-number">([^<]+)<', page.text).group(1)
    return token, number, _ticket(web, number)


def test_pages_open_without_login_and_send_security_headers(web):
    web.client.cookies.clear()
    for path in ("/portal", "/portal/submit", "/portal/track", "/portal/guides"):
        r = web.client.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "http" not in r.text.split("<body")[0].replace("http-equiv", "")
    assert "暂无指南" in web.client.get("/portal/guides").text  # an empty knowledge base
    # the knowledge suggestions are asked for on the content field, into #kb-suggest
    page = web.client.get("/portal/submit").text
    assert 'hx-get="/portal/kb/suggest"' in page and 'id="kb-suggest"' in page
    assert web.client.get("/static/portal.css").status_code == 200


def test_submit_shows_the_notice_and_texts_it(web):
    token, number, ticket = _submitted(web)
    page = web.client.get(f"/portal/n/{token}?new=1").text
    assert "提交成功" in page and number in page
    assert "企业服务" in page and "受理 → 派单 → 办理 → 办结 → 评价" in page
    assert "承诺办结时限" in page and "确认收到告知书" in page
    assert ticket.channel == "web" and ticket.category == "enterprise"
    sms = _outbox(web, ticket.id, "acceptance")
    assert len(sms) == 1 and f"/portal/n/{token}" in sms[0].body
    # the phone is masked on the page; staff-only fields never appear
    assert PHONE not in page and "138****1234" in page
    assert "classifier" not in page and "instructions" not in page


def test_a_mobile_browser_is_the_mobile_channel(web):
    web.client.headers["user-agent"] = "Mozilla/5.0 (iPhone) Mobile/15E148"
    try:
        _token, _number, ticket = _submitted(web)
    finally:
        del web.client.headers["user-agent"]
    assert ticket.channel == "mobile"


def test_errors_are_chinese_and_keep_what_was_typed(web):
    r = _submit(web, category="", content="", submitter_phone="12")
    assert r.status_code == 422
    assert "请选择事项类别" in r.text and "请填写诉求内容" in r.text
    assert 'value="王先生"' in r.text
    r = _submit(web, submitter_phone="12", enterprise_name="赤壁青砖茶有限公司")
    assert r.status_code == 422
    assert "施工许可证已超过二十个工作日" in r.text and "赤壁青砖茶有限公司" in r.text
    assert "电话" in r.text or "号码" in r.text
    r = _submit(web, enterprise_uscc="91421281MA4XXXXXX1")
    assert r.status_code == 422 and "统一社会信用代码" in r.text
    limit = web.settings.public_max_content_chars
    r = _submit(web, content="字" * (limit + 1))
    assert r.status_code == 422 and f"不能超过 {limit} 个字" in r.text
    with session_scope(web.engine, read_only=True) as s:
        assert s.exec(select(Ticket)).first() is None  # nothing half-filed


def test_the_form_needs_its_csrf_token(web):
    data = {"category": "enterprise", "content": "测试", "submitter_phone": PHONE}
    web.client.get("/portal/submit")
    r = web.client.post("/portal/submit", data={**data, "csrf_token": "x" * 43})
    assert r.status_code == 403 and "页面已过期" in r.text
    web.client.cookies.clear()
    r = web.client.post("/portal/submit", data=data)
    assert r.status_code == 403


def test_a_repeated_submission_files_one_ticket(web):
    form = _form(web)
    data = {
        **form,
        "category": "government",
        "content": "社保转移办理进度咨询",
        "submitter_phone": PHONE,
    }
    first = web.client.post("/portal/submit", data=data, follow_redirects=False)
    again = web.client.post("/portal/submit", data=data, follow_redirects=False)
    assert first.status_code == 303 and again.status_code == 303
    assert "/portal/track/" in again.headers["location"]
    with session_scope(web.engine, read_only=True) as s:
        assert len(list(s.exec(select(Ticket)))) == 1
        assert len(list(s.exec(select(OutboxMessage)))) == 1
    assert "办理进度" in web.client.get(again.headers["location"]).text


def test_attachment_type_is_sniffed_and_stored_privately(web):
    r = _submit(web, files={"attachment": ("photo.png", b"GIF89a....", "image/png")})
    assert r.status_code == 422 and "附件类型不支持" in r.text
    big = b"%PDF-" + b"0" * (5 * 1024 * 1024)
    r = _submit(web, files={"attachment": ("a.pdf", big, "application/pdf")})
    assert r.status_code == 422 and "附件过大" in r.text
    r = _submit(web, files={"attachment": ("../../现场照片.png", PNG, "text/plain")})
    assert r.status_code == 303, r.text
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket)).one()
        (meta,) = t.channel_data["attachments"]
        assert s.exec(select(TicketEvent).where(TicketEvent.action == "attachment_added")).first()
    assert meta["type"] == "image/png" and meta["size"] == len(PNG)
    assert meta["name"] == "现场照片.png"
    path = web.settings.data_dir / "portal_uploads" / meta["path"]
    assert path.read_bytes() == PNG and path.suffix == ".png"
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_confirm_is_a_page_and_only_post_confirms(web):
    token, number, ticket = _submitted(web)
    page = web.client.get(f"/portal/n/{token}")
    assert page.status_code == 200 and "确认收到告知书" in page.text
    with session_scope(web.engine, read_only=True) as s:
        assert (
            s.exec(select(Notice).where(Notice.ticket_id == ticket.id)).one().confirmed_at is None
        )
    csrf = CSRF_RE.search(page.text).group(1)
    r = web.client.post(
        f"/portal/n/{token}/confirm", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    page = web.client.get(r.headers["location"]).text
    assert "已确认收到受理告知书" in page and "确认收到告知书</button>" not in page
    with session_scope(web.engine, read_only=True) as s:
        assert s.exec(select(Notice).where(Notice.ticket_id == ticket.id)).one().confirmed_at
    # an unknown token: a page saying so, no other matter's data
    bad = web.client.get("/portal/n/" + "A" * 43)
    assert bad.status_code == 404 and "链接无效" in bad.text and number not in bad.text


def _resolve(web, ticket: Ticket, text: str = "已协调住建局，施工许可证已于今日核发。") -> None:
    st = web.settings
    with session_scope(web.engine) as s:
        t = s.get(Ticket, ticket.id)
        subs = list(s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)))
        if not subs:  # the classifier did not auto-dispatch it: the dispatcher does
            subs = dispatch_to_departments(s, st, t, ["ZJJ"], actor="dispatcher")
        (so,) = subs
        so.instructions = "内部：优先办理"  # staff-only: never on a public page
        s.add(so)
        s.flush()
        sid = so.id
    with session_scope(web.engine) as s:
        accept(s, st, sid, actor="handler")
    with session_scope(web.engine) as s:
        reply(s, st, sid, actor="handler", text=text)


def test_a_forged_follow_cookie_or_portal_token_is_refused_not_a_500(web):
    """A follow-grant cookie with a non-ASCII signature (a client writes what it likes) and a
    non-ASCII CSRF token on the portal's forms: a refusal, never a 500."""
    _token, number, _ticket = _submitted(web)
    web.client.cookies.clear()
    cookie = f"dxe_follow={number}.9999999999.签名".encode()  # raw bytes: httpx sends ASCII only
    r = web.client.get(
        f"/portal/track/{number}", headers={"Cookie": cookie}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/track?")
    form = _form(web, "/portal/track")
    r = web.client.post(
        "/portal/track",
        data={**form, "csrf_token": "１２３", "number": number, "phone": PHONE, "action": "send"},
    )
    assert 400 <= r.status_code < 500


def test_follow_by_number_and_sms_code(web):
    _token, number, ticket = _submitted(web)
    web.client.cookies.clear()
    assert web.client.get(f"/portal/track/{number}", follow_redirects=False).status_code == 303
    form = _form(web, "/portal/track")
    # a wrong phone: the same answer, no code sent
    r = web.client.post(
        "/portal/track", data={**form, "number": number, "phone": "13900001111", "action": "send"}
    )
    assert r.status_code == 200 and "如工单编号与手机号一致" in r.text
    assert _outbox(web, ticket.id, "follow_code") == []
    r = web.client.post(
        "/portal/track", data={**form, "number": number, "phone": PHONE, "action": "send"}
    )
    assert r.status_code == 200 and "如工单编号与手机号一致" in r.text
    (sms,) = _outbox(web, ticket.id, "follow_code")
    code = re.search(r"验证码(\d{6})", sms.body).group(1)
    wrong = "000000" if code != "000000" else "111111"
    r = web.client.post(
        "/portal/track",
        data={**form, "number": number, "phone": PHONE, "code": wrong, "action": "verify"},
    )
    assert r.status_code == 422 and "验证码不正确" in r.text
    r = web.client.post(
        "/portal/track",
        data={**form, "number": number, "phone": PHONE, "code": code, "action": "verify"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/portal/track/{number}"
    page = web.client.get(r.headers["location"]).text
    assert number in page and "办理进度" in page and "北京时间" in page
    # one-time: the same code again is void
    r = web.client.post(
        "/portal/track",
        data={**form, "number": number, "phone": PHONE, "code": code, "action": "verify"},
    )
    assert r.status_code == 422 and "失效" in r.text
    # the grant is for that number only
    with session_scope(web.engine, read_only=True) as s:
        n = len(list(s.exec(select(Ticket))))
    other = number[:-6] + f"{n + 1:06d}"
    r = web.client.get(f"/portal/track/{other}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/track?")


def test_wrong_codes_void_the_code_and_sending_is_limited(web):
    _token, number, ticket = _submitted(web)
    form = _form(web, "/portal/track")
    base = {**form, "number": number, "phone": PHONE}
    web.client.post("/portal/track", data={**base, "action": "send"})
    (sms,) = _outbox(web, ticket.id, "follow_code")
    code = re.search(r"验证码(\d{6})", sms.body).group(1)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        r = web.client.post("/portal/track", data={**base, "code": wrong, "action": "verify"})
    assert "错误次数过多" in r.text
    r = web.client.post(
        "/portal/track", data={**base, "code": code, "action": "verify"}, follow_redirects=False
    )
    assert r.status_code == 422  # the right code no longer works
    for _ in range(2):
        web.client.post("/portal/track", data={**base, "action": "send"})
    r = web.client.post("/portal/track", data={**base, "action": "send"})
    assert r.status_code == 429 and "过于频繁" in r.text
    assert len(_outbox(web, ticket.id, "follow_code")) == 3


def test_resolution_texts_the_reply_and_the_rating_page_rates(web):
    token, number, ticket = _submitted(web)
    _resolve(web, ticket)
    (sms,) = _outbox(web, ticket.id, "resolved")
    assert ("施工许可证已于今日核发" in sms.body and "住房" in sms.body) or "住建" in sms.body
    link = re.search(r"(/portal/rate/\S+)", sms.body).group(1)
    page = web.client.get(link)
    assert page.status_code == 200 and "请评价本次办理" in page.text
    assert "施工许可证已于今日核发" in page.text
    assert "内部：优先办理" not in page.text and "handler" not in page.text
    rate_token = link.split("token=")[1]
    csrf = CSRF_RE.search(page.text).group(1)
    data = {
        "csrf_token": csrf,
        "token": rate_token,
        "action": "rate",
        "process": "satisfied",
        "timeliness": "satisfied",
    }
    r = web.client.post(f"/portal/rate/{number}", data=data)
    assert r.status_code == 422 and "请选择办理结果的评价" in r.text
    r = web.client.post(
        f"/portal/rate/{number}",
        data={**data, "result": "basically_satisfied", "comment": "办得快"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "感谢您的评价" in web.client.get(r.headers["location"]).text
    assert _ticket(web, number).status == "closed"
    # the acceptance notice's link shows the matter too, and a wrong token shows nothing
    assert "已评价" in web.client.get(f"/portal/n/{token}").text
    bad = web.client.get(f"/portal/rate/{number}?token=" + "B" * 43)
    assert bad.status_code == 404 and "施工许可证" not in bad.text


def test_redo_posts_an_unsatisfied_rating_with_the_reason_and_texts_the_new_deadline(web):
    _token, number, ticket = _submitted(web)
    _resolve(web, ticket)
    (sms,) = _outbox(web, ticket.id, "resolved")
    link = re.search(r"(/portal/rate/\S+)", sms.body).group(1)
    page = web.client.get(link)
    csrf = CSRF_RE.search(page.text).group(1)
    data = {"csrf_token": csrf, "token": link.split("token=")[1], "action": "redo"}
    r = web.client.post(f"/portal/rate/{number}", data={**data, "reason": ""})
    assert r.status_code == 422 and "请填写申请重办的理由" in r.text
    r = web.client.post(
        f"/portal/rate/{number}", data={**data, "reason": "证还没拿到"}, follow_redirects=False
    )
    assert r.status_code == 303
    t = _ticket(web, number)
    assert t.status == "dispatched" and t.round == 2  # 重办: straight back to the departments
    with session_scope(web.engine, read_only=True) as s:
        ev = s.exec(select(TicketEvent).where(TicketEvent.action == "evaluated")).one()
    assert ev.detail["overall"] == "unsatisfied" and "证还没拿到" in ev.detail["comment"]
    (told,) = _outbox(web, ticket.id, "reopened")
    assert "重新办理" in told.body and "新的承诺办结时限" in told.body


def test_token_pages_are_rate_limited(web):
    from console_helpers import fresh_window

    fresh_window()
    limit = web.settings.public_rate_limit_per_minute
    codes = [web.client.get("/portal/n/" + "C" * 43).status_code for _ in range(limit + 1)]
    assert codes[:limit] == [404] * limit and codes[-1] == 429


@pytest.mark.parametrize("path", ["/portal/n/x", "/portal/rate/DXE-1?token=x"])
def test_get_never_changes_state(web, path):
    web.client.get(path)
    with session_scope(web.engine, read_only=True) as s:
        assert s.exec(select(TicketEvent)).first() is None
        assert s.exec(select(SubOrder)).first() is None


def test_staff_download_the_attachment_as_the_ticket_is_visible(web):
    r = _submit(web, files={"attachment": ("材料.pdf", b"%PDF-1.7\n" + b"1" * 100, "x/y")})
    assert r.status_code == 303
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket)).one()
        (meta,) = t.channel_data["attachments"]
        has_suborders = s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)).first()
    url = f"/tickets/{t.number}/attachments/{meta['id']}"
    web.client.cookies.clear()
    assert web.client.get(url, follow_redirects=False).status_code == 303  # to the login
    web.login("dispatcher")
    page = web.client.get(f"/tickets/{t.number}").text
    assert url in page and "材料.pdf" in page
    r = web.client.get(url)
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert web.client.get(f"/tickets/{t.number}/attachments/nope").status_code == 404
    if not has_suborders:  # a handler sees a ticket only once its department has a sub-order
        web.login("handler")
        assert web.client.get(url).status_code == 404


def test_links_of_sms_sent_before_the_portal_open_its_pages(web):
    token, number, _ticket = _submitted(web)
    r = web.client.get(f"/api/v1/public/notices/{token}/confirm", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/portal/n/{token}"
    r = web.client.get(
        f"/api/v1/public/tickets/{number}/evaluation?token=abc", follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/portal/rate/{number}?token=abc"
    # the API's POST is untouched
    r = web.client.post(f"/api/v1/public/notices/{token}/confirm")
    assert r.status_code == 200 and r.json()["ticket_number"] == number


def test_a_company_named_without_its_credit_code_is_shown_to_staff(web):
    """A citizen may name the company without its 统一社会信用代码: nothing is filed in 一企一档
    then, but the dispatcher reading the matter must still see which company it is."""
    _token, number, ticket = _submitted(web, enterprise_name="赤壁<b>青砖茶</b>有限公司")
    assert ticket.enterprise_id is None
    web.login("dispatcher")
    page = web.client.get(f"/tickets/{number}").text
    assert "赤壁&lt;b&gt;青砖茶&lt;/b&gt;有限公司" in page and "未归档" in page  # escaped, shown
