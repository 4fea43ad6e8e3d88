"""The administrator's department pages: the list (with each department's routing keywords), a new
department, and one department's edit form (name, head and phone, 分管领导, hand-off URL and the
system's secret, active, routing keywords).

The secret is write-only: the page says whether one is set, never what it is; an empty field
keeps it, "清除" removes it. Edits are the database's from then on (departments.yaml is only the
seed) and reach every process without a restart (ticketing.department_cache compares the
departments' stamp). Each action is checked against the API route doing the same thing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.web.core import PageNotFound, page_user, redirect, render, require_role
from config.database import session_scope
from ticketing import (
    Department,
    DepartmentEdit,
    NotFound,
    TicketingError,
    User,
    all_departments,
    create_department,
    department_keywords,
    get_department,
    set_department_keywords,
    split_keywords,
    update_department,
)

router = APIRouter(include_in_schema=False)
ROW = "web.admin"
FIELDS = ("name", "head_name", "head_phone", "leaders", "handoff_url", "keywords")

DONE = {
    "created": "部门已添加，可在下方补充负责人、对接地址和路由关键词。",
    "saved": "已保存，派单和外部对接立即按新设置执行（无需重启）。",
}


@router.get("/admin/departments", name="web.admin_departments")
def departments_page(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_departments.html", _list_context(request))


def _list_context(
    request: Request, form: dict[str, str] | None = None, error: str | None = None
) -> dict[str, Any]:
    own, joint = department_keywords(request.app.state.settings)
    with session_scope(request.app.state.engine, read_only=True) as s:
        depts = all_departments(s)
    return {
        "title": "部门管理",
        "tab": "departments",
        "depts": depts,
        "keywords": own,
        "joint": joint,
        "form": form or {},
        "error": error,
    }


@router.post("/admin/departments", name="web.admin_department_create")
async def department_create(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    require_role(user, "departments.create")
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("code", "name")}
    try:
        with session_scope(request.app.state.engine) as s:
            dept = create_department(
                s,
                form["code"],
                DepartmentEdit(name=form["name"]),
                by=user.username,
                settings=request.app.state.settings,
            )
            code = dept.code
    except TicketingError as e:
        ctx = _list_context(request, form, e.message)
        return render(request, "admin_departments.html", ctx, status=422)
    return redirect(f"/admin/departments/{code}?done=created", request)


def _edit_context(
    request: Request, code: str, form: dict[str, str] | None = None, error: str | None = None
) -> dict[str, Any]:
    own, joint = department_keywords(request.app.state.settings)
    with session_scope(request.app.state.engine, read_only=True) as s:
        try:
            dept: Department = get_department(s, code)
        except NotFound:
            raise PageNotFound(f"未找到部门：{code}") from None
    if form is None:
        form = {
            "name": dept.name,
            "head_name": dept.head_name or "",
            "head_phone": dept.head_phone or "",
            "leaders": "\n".join(dept.leaders or []),
            "handoff_url": dept.handoff_url or "",
            "keywords": "\n".join(own.get(code, [])),
            "active": "1" if dept.active else "",
        }
    return {
        "title": f"部门 {dept.name}",
        "tab": "departments",
        "d": dept,
        "secret_set": bool(dept.handoff_secret),
        "form": form,
        "joint": [r for r in joint if code in r.departments],
        "error": error,
        "done": DONE.get(request.query_params.get("done", "")),
    }


@router.get("/admin/departments/{code}", name="web.admin_department")
def department_page(code: str, request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_department.html", _edit_context(request, code))


@router.post("/admin/departments/{code}", name="web.admin_department_save")
async def department_save(
    code: str, request: Request, user: User = Depends(page_user(ROW))
) -> Response:
    require_role(user, "departments.update")
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in FIELDS}
    form["active"] = "1" if raw.get("active") == "1" else ""
    secret = str(raw.get("handoff_secret") or "")
    clear = raw.get("clear_secret") == "1"
    edit = DepartmentEdit(
        name=form["name"],
        head_name=form["head_name"],
        head_phone=form["head_phone"],
        leaders=[x for x in form["leaders"].splitlines() if x.strip()],
        handoff_url=form["handoff_url"],
        handoff_secret="" if clear else (secret or None),
        active=form["active"] == "1",
    )
    state = request.app.state
    try:
        keywords = split_keywords(form["keywords"])
        with session_scope(state.engine) as s:
            update_department(s, code, edit, by=user.username, settings=state.settings)
            set_department_keywords(s, state.settings, code, keywords, by=user.username)
    except NotFound:
        raise PageNotFound(f"未找到部门：{code}") from None
    except TicketingError as e:
        ctx = _edit_context(request, code, form, e.message)
        return render(request, "admin_department.html", ctx, status=422)
    return redirect(f"/admin/departments/{code}?done=saved", request)
