"""Staff pages of the proactive policy push (issue #12 §20–21).

- the enterprise profile (企业画像) on the 一企一档 page: shown to everyone who may open the file,
  edited by dispatchers, supervisors and admins (web.enterprise_profile); a new enterprise is
  filed from the lookup page's form;
- the import of profiles from CSV or xlsx (/enterprises/import): every row checked, all or
  nothing, a per-row error report;
- a policy's push panel on its knowledge page (figures, 推送 by its editors: web.policy_push,
  checked against the store's rule of who may edit the article), and the tickets linked to it;
- the link of a ticket to the policy it is about (web.ticket_policy).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.web.core import PageNotFound, may, page_user, redirect, render
from config.database import parse_row_id, session_scope
from ticketing import (
    PROFILE_FIELD_LABELS,
    PUSH_SKIP_LABELS,
    PUSH_STATUS_LABELS,
    SIZE_LABELS,
    Editor,
    Enterprise,
    KbArticle,
    TicketingError,
    User,
    enterprise_file,
    enterprise_pushes,
    get_ticket_by_number,
    import_profiles,
    in_force,
    link_ticket_policy,
    local_today,
    mask_phone,
    matching_policies,
    may_edit,
    policy_figures,
    policy_tickets,
    profile_form,
    regions,
    request_policy_push,
    save_profile,
    validate_profile,
)

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 20 * 1024 * 1024


def profile_ctx(session: Any, settings: Any, ent: Enterprise) -> dict[str, Any]:
    """What the 一企一档 page shows of the profile: the fitting policies and the push log."""
    return {
        "profile": profile_form(ent),
        "size_labels": SIZE_LABELS,
        "regions": regions(settings),
        "fits": matching_policies(session, ent.id or 0, local_today(settings)),
        "pushes": enterprise_pushes(session, ent.id or 0),
        "push_status": PUSH_STATUS_LABELS,
        "skip_labels": PUSH_SKIP_LABELS,
        "labels": PROFILE_FIELD_LABELS,
        "push_mobile_masked": mask_phone(ent.push_mobile),
    }


def new_profile_ctx(settings: Any, uscc: str, error: TicketingError) -> dict[str, Any]:
    """The lookup page's form for filing a new enterprise when its file does not exist yet."""
    if error.status != 404:
        return {}
    return {
        "new_profile": True,
        "profile": {"uscc": uscc},
        "regions": regions(settings),
        "labels": PROFILE_FIELD_LABELS,
        "size_labels": {},
    }


def _form_values(form: Any) -> dict[str, str]:
    return {k: str(form.get(k) or "") for k in PROFILE_FIELD_LABELS if k in form}


@router.post("/enterprises/profile", name="web.enterprise_profile_save")
async def profile_save(
    request: Request, user: User = Depends(page_user("web.enterprise_profile"))
) -> Response:
    """Save a profile (a new enterprise's, or an edit): every field checked, errors shown."""
    form = await request.form()
    values = _form_values(form)
    values.setdefault("push_opt_out", "")
    if "push_opt_out" not in form:
        values["push_opt_out"] = "否"
    state = request.app.state
    row, errors = validate_profile(state.settings, values)
    if row is not None:
        if values["push_opt_out"] == "否":
            row.values["push_opt_out"] = False  # staff record the enterprise's consent again
        with session_scope(state.engine) as s:
            code = save_profile(s, state.settings, row, user.username)[0].uscc
        return redirect(f"/enterprises/{code}?saved=1", request)
    with session_scope(state.engine, read_only=True) as s:
        ent: Enterprise | None = None
        tickets: list[Any] = []
        with contextlib.suppress(TicketingError):
            ent, tickets = enterprise_file(s, values.get("uscc", ""))
        ctx: dict[str, Any] = {"uscc": values.get("uscc", ""), "ent": ent, "tickets": tickets}
        ctx.update(
            profile_ctx(s, state.settings, ent)
            if ent is not None
            else {
                "regions": regions(state.settings),
                "labels": PROFILE_FIELD_LABELS,
                "size_labels": {},
            }
        )
    ctx["profile"] = values
    ctx["profile_errors"] = {f: m for f, m in errors}
    ctx["error"] = None
    ctx["new_profile"] = ent is None
    return render(request, "enterprise.html", ctx, status=422)


@router.get("/enterprises/import", name="web.enterprise_import")
def import_page(
    request: Request, user: User = Depends(page_user("web.enterprise_profile"))
) -> Response:
    return render(request, "enterprise_import.html", {"labels": PROFILE_FIELD_LABELS})


@router.post("/enterprises/import", name="web.enterprise_import_run")
async def import_run(
    request: Request, user: User = Depends(page_user("web.enterprise_profile"))
) -> Response:
    form = await request.form()
    upload = form.get("file")
    ctx: dict[str, Any] = {"labels": PROFILE_FIELD_LABELS, "report": None, "error": None}
    if upload is None or isinstance(upload, str) or not upload.filename:
        ctx["error"] = "请选择要导入的 CSV 或 xlsx 文件"
        return render(request, "enterprise_import.html", ctx, status=422)
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        ctx["error"] = "文件过大（最多 20 MB）"
        return render(request, "enterprise_import.html", ctx, status=422)
    state = request.app.state
    try:
        with session_scope(state.engine) as s:
            report = import_profiles(s, state.settings, upload.filename, data, user.username)
            if not report.ok:
                s.rollback()
    except TicketingError as e:
        ctx["error"] = e.message
        return render(request, "enterprise_import.html", ctx, status=422)
    ctx["report"] = report
    ctx["filename"] = upload.filename
    return render(request, "enterprise_import.html", ctx, status=200 if report.ok else 422)


def _article(s: Any, raw: str) -> KbArticle:
    n = parse_row_id(raw)
    a = s.get(KbArticle, n) if n is not None else None
    if a is None or a.kind != "policy":
        raise PageNotFound("未找到该政策")
    return a


@router.get("/kb/{article_id}/push", name="web.policy_push_panel")
def push_panel(
    article_id: str, request: Request, user: User = Depends(page_user("web.kb"))
) -> Response:
    """The policy's push panel (htmx fragment of its knowledge page)."""
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        a = _article(s, article_id)
        ctx = {
            "a": a,
            "fig": policy_figures(s, a.id or 0),
            "tickets": policy_tickets(s, a.id or 0),
            "live": in_force(a, local_today(state.settings)),
            "can_push": may(user, "web.policy_push")
            and may_edit(Editor.of(user), a.department_code),
            "done": request.query_params.get("done") == "1",
        }
    return render(request, "_policy_push.html", ctx)


@router.post("/kb/{article_id}/push", name="web.policy_push")
async def push_now(
    article_id: str, request: Request, user: User = Depends(page_user("web.policy_push"))
) -> Response:
    """推送: the policy to every enterprise it fits that was not told yet (an RQ job)."""
    state = request.app.state
    try:
        with session_scope(state.engine) as s:
            a = _article(s, article_id)
            if not may_edit(Editor.of(user), a.department_code):
                return render(
                    request,
                    "_policy_push_error.html",
                    {"error": "只有政策所属部门或管理员可以推送"},
                    status=403,
                )
            request_policy_push(s, state.settings, a.id or 0, user.username)
    except TicketingError as e:
        return render(request, "_policy_push_error.html", {"error": e.message}, status=e.status)
    return redirect(f"/kb/{article_id}?push=1", request)


@router.post("/tickets/{number}/policies", name="web.ticket_policy")
async def ticket_policy(
    number: str, request: Request, user: User = Depends(page_user("web.ticket_policy"))
) -> Response:
    """Link this ticket to the policy it is about (the policy's number in the knowledge base)."""
    form = await request.form()
    raw = str(form.get("article_id") or "").strip().lstrip("#")
    state = request.app.state
    with session_scope(state.engine) as s:
        try:
            t = get_ticket_by_number(s, number)
        except TicketingError:
            raise PageNotFound(f"未找到工单：{number}") from None
        article_id = parse_row_id(raw)
        if article_id is None:
            return redirect(f"/tickets/{t.number}?policy_error=1", request)
        try:
            link_ticket_policy(s, t.id or 0, article_id, user.username)
        except TicketingError:
            return redirect(f"/tickets/{t.number}?policy_error=1", request)
        return redirect(f"/tickets/{t.number}", request)
