"""The public service portal (no login, mobile first): submit a matter, the 受理告知书, follow a
matter, and the pages the SMS links open (confirm the notice, rate, ask for 重办), plus the policy
and service guides.

Every rule is the public API's or ticketing's own: a submission goes through
routes.public.submit_public (validation, the content limit, idempotency, the notice and its SMS),
a confirmation through ticketing.confirm_notice, a rating through routes.public.evaluate_public
(the evaluation token authorises it). The public rate limit (ratelimit.public_limit) counts every
portal action and every page opened by a token. Who may see a matter: portal_access. What they
see: ticketing.public_view (no staff-only field). GET never changes state.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile

from agent_console.errors import ApiError
from agent_console.ratelimit import public_limit, public_read_limit
from agent_console.routes import public as public_api
from agent_console.schemas import PublicEvaluationIn, PublicTicketIn
from agent_console.web import portal_access as access
from agent_console.web import portal_upload as upload
from agent_console.web.core import SECURITY_HEADERS, to_local
from agent_console.web.kb import KIND_LABELS
from agent_console.web.tickets import departments
from config.database import session_scope
from config.loader import load_yaml
from ticketing import (
    PUBLIC_STAGES,
    NotFound,
    Notice,
    Ticket,
    TicketingError,
    confirm_notice,
    get_ticket_by_number,
    is_mainland_mobile,
    mask_phone,
    normalise_phone,
    notice_by_confirm_token,
    notice_for_evaluation,
    public_view,
    published_articles,
    record_event,
    send_sms,
)

router = APIRouter(prefix="/portal", include_in_schema=False)
SUBMIT_PATH = "/portal/submit"
CATEGORIES = ("enterprise", "government", "complaint")
FIELD_LABELS = {
    "category": "事项类别",
    "content": "诉求内容",
    "submitter_name": "联系人",
    "submitter_phone": "联系电话",
    "enterprise_uscc": "统一社会信用代码",
    "enterprise_name": "企业名称",
    "attachment": "附件",
}
_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RATING_CHOICES = (
    ("satisfied", "满意"),
    ("basically_satisfied", "基本满意"),
    ("unsatisfied", "不满意"),
)


# ---------------------------------------------------------------- rendering
def _ctx(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    cfg = access.portal_cfg(settings)
    return {
        "request": request,
        "path": request.url.path,
        "L": request.app.state.web.labels,
        "site_name": cfg.get("site_name") or "“店小二”服务平台",
        "organiser": cfg.get("organiser") or "",
        "hotline": str(load_yaml(settings, "notices.yaml").get("hotline", "")),
        "stages": PUBLIC_STAGES,
        "local": lambda dt, fmt="%Y年%m月%d日 %H:%M": (
            to_local(settings, dt).strftime(fmt) if dt else "—"
        ),
    }


def render(
    request: Request,
    template: str,
    ctx: dict[str, Any] | None = None,
    *,
    status: int = 200,
    follow: str | None = None,
) -> HTMLResponse:
    """A portal page; every page carries the portal's CSRF token (its cookie is set when new)."""
    token, new = access.csrf_for(request)
    context = {**_ctx(request), "csrf": token, **(ctx or {})}
    html = request.app.state.web.env.get_template(f"portal/{template}").render(context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if new:
        access.set_csrf_cookie(request, response, token)
    if follow:
        access.grant_follow(request, response, follow)
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def _guarded_form(request: Request) -> tuple[dict[str, Any], HTMLResponse | None]:
    """The posted form, after the public rate limit and the CSRF check (else the error page)."""
    try:
        await run_in_threadpool(public_limit, request)
    except ApiError as e:
        return {}, error_page(request, e.status_code, "请稍后再试", e.message)
    form = await request.form()
    if not access.csrf_ok(request, form.get(access.CSRF_FIELD)):
        return {}, error_page(
            request, 403, "页面已过期", "页面已过期或来源不明，请返回上一页刷新后重新提交。"
        )
    return dict(form.multi_items()), None


def _limited(request: Request) -> HTMLResponse | None:
    """The public rate limit for a page opened by a token (429 page when over)."""
    try:
        public_limit(request)
    except ApiError as e:
        return error_page(request, e.status_code, "请稍后再试", e.message)
    return None


def _text(form: dict[str, Any], key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------- home, guides
# 政策与办事指南 (§20–21): the knowledge base's published public guides and policies (the KB's
# starter content seeds them on a fresh install)
GUIDE_KINDS = ("guide", "policy")


@router.get("", name="portal.home", dependencies=[Depends(public_read_limit)])
def home(request: Request) -> Response:
    return render(request, "home.html", {"guides": _guides(request, limit=3)})


def _guides(request: Request, *, limit: int = 200) -> list[dict[str, Any]]:
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        rows = published_articles(s, state.settings, GUIDE_KINDS, limit=limit)
        depts = departments(s)
    return [
        {
            "tag": KIND_LABELS.get(a.kind, a.kind),
            "title": a.title,
            "url": f"/portal/kb/{a.id}",
            "summary": a.summary,
            "department": depts.get(a.department_code, a.department_code),
        }
        for a in rows
    ]


@router.get("/guides", name="portal.guides", dependencies=[Depends(public_read_limit)])
def guides(request: Request) -> Response:
    return render(request, "guides.html", {"guides": _guides(request)})


# ---------------------------------------------------------------- submit
def _submit_ctx(request: Request, form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    limits = upload.Limits.of(request.app.state.settings)
    return {
        "form": form,
        "errors": errors,
        "categories": CATEGORIES,
        "attachment_rule": limits.describe(),
        "max_bytes": limits.max_bytes,
        "accept": ",".join(upload.SIGNATURES[k][1] for k in limits.kinds),
        "max_chars": request.app.state.settings.public_max_content_chars,
    }


@router.get("/submit", name="portal.submit_form")
def submit_form(request: Request) -> Response:
    form = {"idempotency_key": secrets.token_urlsafe(16)}
    return render(request, "submit.html", _submit_ctx(request, form, {}))


def _pydantic_errors(e: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else "content"
        label = FIELD_LABELS.get(field, "填写内容")
        kind = err.get("type", "")
        if kind in ("missing", "string_too_short"):
            msg = f"请填写{label}"
        elif kind == "string_too_long":
            msg = f"{label}过长（最多 {err.get('ctx', {}).get('max_length', '')} 个字）"
        elif field == "category":
            msg = "请选择事项类别"
        else:
            msg = f"{label}填写有误"
        out.setdefault(field if field in FIELD_LABELS else "content", msg)
    return out


@router.post("/submit", name="portal.submit")
async def submit(request: Request) -> Response:
    form, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    keys = (
        "category", "content", "submitter_name", "submitter_phone", "enterprise_uscc",
        "enterprise_name", "idempotency_key",
    )  # fmt: skip
    typed: dict[str, Any] = {k: _text(form, k) for k in keys}
    errors: dict[str, str] = {}
    if typed["category"] not in CATEGORIES:
        errors["category"] = "请选择事项类别"
    file = form.get("attachment")
    data, kind, filename = b"", None, None
    if isinstance(file, UploadFile) and file.filename:
        data = await file.read(upload.Limits.of(request.app.state.settings).max_bytes + 1)
        filename = file.filename
        try:
            kind = upload.check(request.app.state.settings, data)
        except upload.AttachmentError as e:
            errors["attachment"] = str(e) + "（请重新选择附件）"
    body = None
    try:
        body = PublicTicketIn.model_validate(
            {
                "channel": "mobile" if "Mobi" in request.headers.get("user-agent", "") else "web",
                **{k: v for k, v in typed.items() if v and k != "idempotency_key"},
                "category": typed["category"] if typed["category"] in CATEGORIES else None,
            }
        )
    except ValidationError as e:
        for field, msg in _pydantic_errors(e).items():
            errors.setdefault(field, msg)
    if errors or body is None:
        return render(request, "submit.html", _submit_ctx(request, typed, errors), status=422)
    key = typed["idempotency_key"][:100] or None
    try:
        token, number = await run_in_threadpool(
            _file, request, body, key, (data, kind, filename) if kind else None
        )
    except ApiError as e:
        return error_page(request, e.status_code, "请稍后再试", e.message)
    except TicketingError as e:
        field = str(e.details.get("field") or "content")
        errors[field if field in FIELD_LABELS else "content"] = e.message
        return render(request, "submit.html", _submit_ctx(request, typed, errors), status=422)
    if token is None:  # a repeat (same form, same key): its progress, not a second ticket
        response = _see_other(f"/portal/track/{number}?repeat=1")
        access.grant_follow(request, response, number)
        return response
    return _see_other(f"/portal/n/{token}?new=1")


def _file(
    request: Request,
    body: PublicTicketIn,
    key: str | None,
    attachment: tuple[bytes, str | None, str | None] | None,
) -> tuple[str | None, str]:
    """Submit through the public API's own function, in one transaction with the attachment."""
    state = request.app.state
    meta: dict[str, Any] | None = None
    try:
        with session_scope(state.engine) as s:
            out = public_api.submit_public(body, request, s, state.settings, key)
            if attachment is not None:
                data, kind, name = attachment
                ticket = get_ticket_by_number(s, out.number)
                meta = _attach(s, state.settings, ticket, data, kind or "", name)
    except BaseException:
        if meta is not None:
            upload.remove(state.settings, meta)
        raise
    return out.notice_token, out.number


def _attach(
    s: Session, settings: Any, ticket: Ticket, data: bytes, kind: str, name: str | None
) -> dict[str, Any] | None:
    """Store the attachment and name it on the ticket (once: a repeated submission adds none)."""
    import hashlib

    have = list((ticket.channel_data or {}).get("attachments") or [])
    digest = hashlib.sha256(data).hexdigest()
    if any(a.get("sha256") == digest for a in have):
        return None
    meta = upload.store(settings, data, kind, name)
    ticket.channel_data = {**(ticket.channel_data or {}), "attachments": [*have, meta]}
    s.add(ticket)
    s.flush()
    record_event(
        s,
        ticket.id,
        "public",
        "attachment_added",
        attachment_id=meta["id"],
        type=meta["type"],
        size=meta["size"],
    )
    return meta


# ---------------------------------------------------------------- the notice (SMS link)
def _notice_by_token(s: Session, token: str) -> tuple[Notice, Ticket] | None:
    notice = notice_by_confirm_token(s, token) if _TOKEN.match(token) else None
    if notice is None:
        return None
    ticket = s.get(Ticket, notice.ticket_id)
    return (notice, ticket) if ticket is not None else None


@router.get("/n/{token}", name="portal.notice")
def notice_page(token: str, request: Request) -> Response:
    refused = _limited(request)
    if refused is not None:
        return refused
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        found = _notice_by_token(s, token)
        if found is None:
            return _bad_link(request)
        notice, ticket = found
        view = public_view(s, state.settings, ticket)
        texted = is_mainland_mobile(ticket.submitter_phone)
        masked = (
            mask_phone(ticket.submitter_phone).removeprefix("+86") if ticket.submitter_phone else ""
        )
    return render(
        request,
        "notice.html",
        {
            "v": view,
            "notice": notice,
            "token": token,
            "new": request.query_params.get("new") == "1",
            "just_confirmed": request.query_params.get("confirmed") == "1",
            "texted": texted,
            "masked_phone": masked,
        },
        follow=view.number,
    )


@router.post("/n/{token}/confirm", name="portal.notice_confirm")
async def notice_confirm(token: str, request: Request) -> Response:
    _form, refused = await _guarded_form(request)
    if refused is not None:
        return refused

    def confirm() -> bool:
        with session_scope(request.app.state.engine) as s:
            if not _TOKEN.match(token):
                return False
            try:
                confirm_notice(s, token)
            except NotFound:
                return False
        return True

    if not await run_in_threadpool(confirm):
        return _bad_link(request)
    return _see_other(f"/portal/n/{token}?confirmed=1")


def _bad_link(request: Request) -> HTMLResponse:
    return error_page(
        request,
        404,
        "链接无效",
        "链接无效或已失效。您可以在“进度查询”中用工单编号和手机号查询办理进度。",
    )


# ---------------------------------------------------------------- rating and 重办 (SMS link)
def _rating_ticket(s: Session, number: str, token: str) -> Ticket | None:
    if not (_NUMBER.match(number) and _TOKEN.match(token)):
        return None
    try:
        ticket = get_ticket_by_number(s, number)
    except NotFound:
        return None
    return ticket if notice_for_evaluation(s, ticket, token) is not None else None


@router.get("/rate/{number}", name="portal.rate")
def rate_page(number: str, request: Request) -> Response:
    refused = _limited(request)
    if refused is not None:
        return refused
    token = request.query_params.get("token", "")
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        ticket = _rating_ticket(s, number, token)
        if ticket is None:
            return _bad_link(request)
        view = public_view(s, state.settings, ticket)
    done = request.query_params.get("done", "")
    return render(
        request,
        "rate.html",
        {"v": view, "token": token, "choices": RATING_CHOICES, "form": {}, "error": None,
         "done": done},
        follow=view.number,
    )  # fmt: skip


@router.post("/rate/{number}", name="portal.rate_submit")
async def rate_submit(number: str, request: Request) -> Response:
    form, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    token = _text(form, "token")
    redo = _text(form, "action") == "redo"
    typed = {k: _text(form, k) for k in ("process", "timeliness", "result", "comment", "reason")}
    error = None
    if redo:
        if not typed["reason"]:
            error = "请填写申请重办的理由"
        ratings = {"process": "unsatisfied", "timeliness": "unsatisfied", "result": "unsatisfied"}
        comment = f"申请重办：{typed['reason']}"
    else:
        missing = [
            label
            for key, label in (
                ("process", "办理过程"),
                ("timeliness", "办结时效"),
                ("result", "办理结果"),
            )
            if typed[key] not in dict(RATING_CHOICES)
        ]
        if missing:
            error = f"请选择{'、'.join(missing)}的评价"
        ratings = {k: typed[k] for k in ("process", "timeliness", "result")}
        comment = typed["comment"]
    state = request.app.state
    if error is None:
        try:
            body = PublicEvaluationIn.model_validate({**ratings, "comment": comment or None})
        except ValidationError:
            error = "评价意见过长（最多 2000 字）"
    if error is None:

        def rate() -> str | None:
            with session_scope(state.engine) as s:
                if _rating_ticket(s, number, token) is None:
                    return "bad_link"
                public_api.evaluate_public(number, body, s, state.settings, token)
            return None

        try:
            if await run_in_threadpool(rate) == "bad_link":
                return _bad_link(request)
        except TicketingError as e:
            error = e.message
        else:
            return _see_other(
                f"/portal/rate/{number}?token={token}&done={'redo' if redo else 'rated'}"
            )
    with session_scope(state.engine, read_only=True) as s:
        ticket = _rating_ticket(s, number, token)
        if ticket is None:
            return _bad_link(request)
        view = public_view(s, state.settings, ticket)
    return render(
        request,
        "rate.html",
        {"v": view, "token": token, "choices": RATING_CHOICES, "form": typed, "error": error,
         "redo_open": redo, "done": ""},
        status=422,
    )  # fmt: skip


# ---------------------------------------------------------------- follow a matter
GENERIC_SENT = "如工单编号与手机号一致，验证码已发送至该手机，请在 {minutes} 分钟内输入。"


@router.get("/track", name="portal.track")
def track_form(request: Request) -> Response:
    number = request.query_params.get("number", "")
    return render(
        request,
        "track.html",
        {"form": {"number": number if _NUMBER.match(number) else ""}, "step": 1, "error": None},
    )


@router.post("/track", name="portal.track_submit")
async def track_submit(request: Request) -> Response:
    form, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    typed = {k: _text(form, k) for k in ("number", "phone", "code")}
    typed["number"] = typed["number"].upper()
    step = 2 if _text(form, "action") == "verify" else 1
    if not _NUMBER.match(typed["number"]):
        return _track(request, typed, 1, "请填写正确的工单编号（如 DXE-20261206-000001）")
    try:
        phone = normalise_phone(typed["phone"])
    except TicketingError:
        return _track(request, typed, 1, "请填写提交诉求时留下的手机号")
    policy = access.CodePolicy.of(request.app.state.settings)
    if step == 1:
        try:
            await run_in_threadpool(access.limit_code_requests, request, typed["number"])
        except ApiError as e:
            return _track(request, typed, 1, e.message, status=e.status_code)
        await run_in_threadpool(_send_code, request, typed["number"], phone)
        info = GENERIC_SENT.format(minutes=policy.ttl // 60)
        return _track(request, {**typed, "code": ""}, 2, None, info=info)
    try:
        await run_in_threadpool(access.limit_code_checks, request)
    except ApiError as e:
        return _track(request, typed, 2, e.message, status=e.status_code)
    if not re.fullmatch(r"\d{6}", typed["code"]):
        return _track(request, typed, 2, "请输入短信中的 6 位验证码")
    problem = await run_in_threadpool(
        access.check_code, request, typed["number"], phone, typed["code"]
    )
    if problem is not None:
        return _track(request, typed, 2, problem)
    response = _see_other(f"/portal/track/{typed['number']}")
    access.grant_follow(request, response, typed["number"])
    return response


def _track(
    request: Request,
    typed: dict[str, str],
    step: int,
    error: str | None,
    *,
    info: str | None = None,
    status: int | None = None,
) -> HTMLResponse:
    code = status or (422 if error else 200)
    ctx = {"form": typed, "step": step, "error": error, "info": info}
    return render(request, "track.html", ctx, status=code)


def _send_code(request: Request, number: str, phone: str) -> None:
    """Text a code when the number and phone belong together (and the phone is a mobile)."""
    state = request.app.state
    with session_scope(state.engine) as s:
        ticket = s.exec(select(Ticket).where(col(Ticket.number) == number)).first()
        if ticket is None or ticket.submitter_phone != phone or not is_mainland_mobile(phone):
            return
        code = access.new_code(request, number, phone)
        cfg = load_yaml(state.settings, "notices.yaml")
        template = str(
            cfg.get("follow_code_sms") or "【店小二】验证码{code}，{minutes}分钟内有效。"
        )
        minutes = access.CodePolicy.of(state.settings).ttl // 60
        text = template.format_map({"code": code, "minutes": minutes})
        send_sms(s, state.settings, phone, text, ticket_id=ticket.id, kind="follow_code")


@router.get("/track/{number}", name="portal.track_view")
def track_view(number: str, request: Request) -> Response:
    number = number.upper()
    if not _NUMBER.match(number) or not access.may_follow(request, number):
        return _see_other(f"/portal/track?number={number if _NUMBER.match(number) else ''}")
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        try:
            ticket = get_ticket_by_number(s, number)
        except NotFound:
            return _bad_link(request)
        view = public_view(s, state.settings, ticket)
    return render(request, "track_view.html", {"v": view})


# ---------------------------------------------------------------- links sent before the portal
legacy = APIRouter(include_in_schema=False)


@legacy.get("/api/v1/public/notices/{token}/confirm", name="portal.legacy_confirm")
def legacy_confirm(token: str) -> Response:
    """SMS sent before the portal linked the POST-only API (a GET answered 405): open the page."""
    return _see_other(f"/portal/n/{token}" if _TOKEN.match(token) else "/portal/track")


@legacy.get("/api/v1/public/tickets/{number}/evaluation", name="portal.legacy_rate")
def legacy_rate(number: str, request: Request) -> Response:
    token = request.query_params.get("token", "")
    if _NUMBER.match(number) and _TOKEN.match(token):
        return _see_other(f"/portal/rate/{number}?token={token}")
    return _see_other("/portal/track")
