"""The administrator's user pages: the list, create, change role / department / name, reset the
password (a new one shown once), deactivate and reactivate. Every rule is agent_console.user_admin's
(the API's): the last active admin can be neither deactivated nor demoted. Each action is also
checked against the API route doing the same thing (users.create / users.update)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from agent_console.roles import ROLE_LABELS
from agent_console.security import hash_password
from agent_console.user_admin import (
    UserChange,
    all_users,
    create_user,
    generate_password,
    update_user,
)
from agent_console.web.core import (
    PageNotFound,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
)
from config.database import session_scope
from ticketing import NotFound, Role, TicketingError, User, all_departments

router = APIRouter(include_in_schema=False)
ROW = "web.admin"
USERNAME_CHARS = "字母、数字及 _ . @ -"

DONE = {
    "created": "用户已创建。",
    "saved": "已保存。该用户需重新登录后按新的角色和部门使用系统。",
    "deactivated": "用户已停用，其登录会话已失效。",
    "activated": "用户已重新启用。",
}


def _depts(request: Request) -> list[tuple[str, str, bool]]:
    with session_scope(request.app.state.engine, read_only=True) as s:
        return [(d.code, d.name, d.active) for d in all_departments(s)]


def _list_context(
    request: Request, form: dict[str, Any] | None = None, error: str | None = None
) -> dict[str, Any]:
    with session_scope(request.app.state.engine, read_only=True) as s:
        users = all_users(s)
        names = {d.code: d.name for d in all_departments(s)}
    return {
        "title": "用户管理",
        "tab": "users",
        "users": users,
        "dept_names": names,
        "depts": _depts(request),
        "roles": [(r.value, ROLE_LABELS[r.value]) for r in Role],
        "form": form or {"role": "agent"},
        "error": error,
        "done": DONE.get(request.query_params.get("done", "")),
    }


@router.get("/admin/users", name="web.admin_users")
def users_page(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_users.html", _list_context(request))


@router.post("/admin/users", name="web.admin_user_create")
async def user_create(request: Request, user: User = Depends(page_user(ROW))) -> Response:
    require_role(user, "users.create")
    raw = await request.form()
    keys = ("username", "display_name", "role", "department_code", "password")
    form = {k: str(raw.get(k) or "").strip() for k in keys}
    error = _check_new_user(form)
    if error is None:
        password = form["password"] or generate_password()
        pw_hash = await run_in_threadpool(hash_password, password)
        try:
            with session_scope(request.app.state.engine) as s:
                created = create_user(
                    s,
                    username=form["username"],
                    password_hash=pw_hash,
                    password=password,
                    role=form["role"],
                    department_code=form["department_code"] or None,
                    display_name=form["display_name"],
                )
                uid = created.id
        except TicketingError as e:
            error = e.message
        else:
            if form["password"]:
                return redirect("/admin/users?done=created", request)
            return _show_password(request, uid or 0, form["username"], password, created=True)
    form["password"] = ""  # never echoed back
    ctx = _list_context(request, form, error)
    return render(request, "admin_users.html", ctx, status=422)


def _check_new_user(form: dict[str, str]) -> str | None:
    name = form["username"]
    if not name:
        return "请填写用户名"
    if len(name) > 64 or not all(c.isascii() and (c.isalnum() or c in "_.@-") for c in name):
        return f"用户名只能使用{USERNAME_CHARS}，最多64个字符"
    if form["role"] not in {r.value for r in Role}:
        return "请选择角色"
    if len(form["display_name"]) > 100:
        return "姓名不能超过100个字"
    if form["password"] and len(form["password"]) > 256:
        return "密码过长"
    return None


def _show_password(
    request: Request, uid: int, username: str, password: str, *, created: bool
) -> Response:
    """The new password, shown this once (the page is no-store; nothing keeps it)."""
    return render(
        request,
        "admin_password.html",
        {
            "title": "新密码",
            "tab": "users",
            "uid": uid,
            "username": username,
            "password": password,
            "created": created,
        },
    )


def _user_context(
    request: Request, uid: int, error: str | None = None, form: dict[str, str] | None = None
) -> dict[str, Any]:
    page_row_id(uid, f"用户不存在：{uid}")
    with session_scope(request.app.state.engine, read_only=True) as s:
        target = s.get(User, uid)
        if target is None:
            raise PageNotFound(f"用户不存在：{uid}")
    return {
        "title": f"用户 {target.username}",
        "tab": "users",
        "u": target,
        "form": form
        or {
            "role": target.role,
            "department_code": target.department_code or "",
            "display_name": target.display_name,
            "is_head": "1" if target.is_head else "",
        },
        "depts": _depts(request),
        "roles": [(r.value, ROLE_LABELS[r.value]) for r in Role],
        "error": error,
        "done": DONE.get(request.query_params.get("done", "")),
    }


@router.get("/admin/users/{uid}", name="web.admin_user")
def user_page(uid: int, request: Request, user: User = Depends(page_user(ROW))) -> Response:
    return render(request, "admin_user.html", _user_context(request, uid))


async def _change(request: Request, uid: int, change: UserChange) -> str | None:
    """Apply the change; the refusal's Chinese message, or None when done."""
    page_row_id(uid, f"用户不存在：{uid}")
    try:
        with session_scope(request.app.state.engine) as s:
            update_user(s, uid, change)
    except NotFound:
        raise PageNotFound(f"用户不存在：{uid}") from None
    except TicketingError as e:
        return e.message
    return None


@router.post("/admin/users/{uid}", name="web.admin_user_save")
async def user_save(uid: int, request: Request, user: User = Depends(page_user(ROW))) -> Response:
    require_role(user, "users.update")
    raw = await request.form()
    form = {
        k: str(raw.get(k) or "").strip()
        for k in ("role", "department_code", "display_name", "is_head")
    }
    error = None
    if form["role"] not in {r.value for r in Role}:
        error = "请选择角色"
    elif len(form["display_name"]) > 100:
        error = "姓名不能超过100个字"
    else:
        change = UserChange(
            role=form["role"],
            department_code=form["department_code"] or None,
            set_department=True,
            display_name=form["display_name"],
            is_head=form["is_head"] == "1",
        )
        error = await _change(request, uid, change)
    if error is None:
        return redirect(f"/admin/users/{uid}?done=saved", request)
    ctx = _user_context(request, uid, error, form)
    return render(request, "admin_user.html", ctx, status=422)


@router.post("/admin/users/{uid}/active", name="web.admin_user_active")
async def user_active(uid: int, request: Request, user: User = Depends(page_user(ROW))) -> Response:
    require_role(user, "users.update")
    raw = await request.form()
    active = raw.get("active") == "1"
    error = await _change(request, uid, UserChange(active=active))
    if error is None:
        done = "activated" if active else "deactivated"
        return redirect(f"/admin/users/{uid}?done={done}", request)
    return render(request, "admin_user.html", _user_context(request, uid, error), status=409)


@router.post("/admin/users/{uid}/password", name="web.admin_user_password")
async def user_password(
    uid: int, request: Request, user: User = Depends(page_user(ROW))
) -> Response:
    require_role(user, "users.update")
    password = generate_password()
    pw_hash = await run_in_threadpool(hash_password, password)
    error = await _change(request, uid, UserChange(password=password, password_hash=pw_hash))
    if error is not None:
        return render(request, "admin_user.html", _user_context(request, uid, error), status=422)
    with session_scope(request.app.state.engine, read_only=True) as s:
        target = s.get(User, uid)
        name = target.username if target is not None else str(uid)
    return _show_password(request, uid, name, password, created=False)
