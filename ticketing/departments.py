"""Departments: kept in the database and edited by the administrator; departments.yaml is the seed.

At start-up `sync_departments` adds every department of the file that the table lacks and keeps
the file's values for rows nobody edited; a row an administrator edited (`edited_at` set) is the
administrator's from then on. Every edit bumps the "departments" stamp, which each process's
department cache compares (ticketing.department_cache), so a change needs no restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from config.database import utcnow
from config.loader import ConfigError, load_yaml
from config.settings import Settings, get_settings
from ticketing.admin_settings import DEPARTMENTS, bump
from ticketing.errors import Conflict, InvalidInput, NotFound
from ticketing.models import Department
from ticketing.phones import normalise_phone
from ticketing.sealed import is_sealed, seal

FIELDS = ("name", "head_name", "head_phone", "handoff_url")


def sync_departments(session: Session, settings: Settings) -> list[Department]:
    """Upsert every configured department (idempotent). Rows not in the file are left alone: old
    sub-orders reference them, and deactivating is an explicit admin act (`active: false`)."""
    entries = load_yaml(settings, "departments.yaml").get("departments") or []
    existing = {d.code: d for d in session.exec(select(Department))}
    seen: set[str] = set()
    out: list[Department] = []
    for entry in entries:
        code = str(entry.get("code") or "").strip()
        if not code or not entry.get("name"):
            raise ConfigError(f"departments.yaml: every department needs code and name: {entry}")
        if code in seen:
            raise ConfigError(f"departments.yaml: duplicate department code {code}")
        seen.add(code)
        dept = existing.get(code) or Department(code=code, name=str(entry["name"]))
        if dept.edited_at is not None:  # the administrator's row now: the file is only a seed
            out.append(dept)
            continue
        leaders = [str(x) for x in entry.get("leaders") or []]
        if dept.leaders != leaders:
            dept.leaders = leaders
        for f in FIELDS:
            value = entry.get(f)
            new = None if value is None else str(value)
            if getattr(dept, f) != new and (new is not None or f != "name"):
                setattr(dept, f, new)
        dept.active = bool(entry.get("active", True))
        session.add(dept)
        out.append(dept)
    session.flush()
    return out


def get_department(session: Session, code: str) -> Department:
    dept = session.exec(select(Department).where(Department.code == code)).first()
    if dept is None:
        raise NotFound(f"未找到部门：{code}", field="department", code_value=code)
    return dept


CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
MIN_SECRET = 16


@dataclass
class DepartmentEdit:
    """What an administrator changes on a department; a field left None is kept as it is.
    `handoff_secret`: a new secret, "" to remove it, None to keep it (it is never shown back)."""

    name: str | None = None
    head_name: str | None = None
    head_phone: str | None = None
    leaders: list[str] | None = None
    handoff_url: str | None = None
    handoff_secret: str | None = None
    active: bool | None = None


def _clean(value: str, limit: int, label: str) -> str:
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{label}不能超过{limit}个字", field=label)
    return value


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
        raise InvalidInput(
            "对接地址必须是以 http:// 或 https:// 开头的完整网址", field="handoff_url"
        )
    return url


def _apply(dept: Department, edit: DepartmentEdit, settings: Settings | None) -> None:
    if edit.name is not None:
        name = _clean(edit.name, 100, "部门名称")
        if not name:
            raise InvalidInput("部门名称不能为空", field="name")
        dept.name = name
    if edit.head_name is not None:
        dept.head_name = _clean(edit.head_name, 50, "负责人") or None
    if edit.head_phone is not None:
        raw = edit.head_phone.strip()
        if not raw:
            dept.head_phone = None
        elif raw != dept.head_phone:
            try:
                dept.head_phone = normalise_phone(raw)
            except InvalidInput as e:
                raise InvalidInput(f"负责人电话：{e}", field="head_phone") from None
    if edit.leaders is not None:
        leaders = [_clean(x, 50, "分管领导") for x in edit.leaders]
        dept.leaders = [x for x in leaders if x][:10]
    if edit.handoff_url is not None:
        dept.handoff_url = _check_url(edit.handoff_url) if edit.handoff_url.strip() else None
    if edit.handoff_secret is not None:
        secret = edit.handoff_secret.strip()
        if secret and (len(secret) < MIN_SECRET or len(secret) > 200):
            raise InvalidInput(f"对接密钥长度须为{MIN_SECRET}至200个字符", field="handoff_secret")
        dept.handoff_secret = seal(settings or get_settings(), secret) if secret else None
    elif dept.handoff_secret and not is_sealed(dept.handoff_secret):
        dept.handoff_secret = seal(settings or get_settings(), dept.handoff_secret)  # an old row
    if edit.active is not None:
        dept.active = edit.active


def create_department(
    session: Session,
    code: str,
    edit: DepartmentEdit,
    by: str | None = None,
    *,
    settings: Settings | None = None,
) -> Department:
    """A new department (code: capital letters, digits, underscore; never reused)."""
    code = code.strip().upper()
    if not CODE_RE.match(code):
        raise InvalidInput("部门代码须为2至32位大写字母、数字或下划线，且以字母开头", field="code")
    if session.exec(select(Department.id).where(Department.code == code)).first() is not None:
        raise Conflict(f"部门代码已存在：{code}", code="department_exists")
    if not (edit.name or "").strip():
        raise InvalidInput("部门名称不能为空", field="name")
    dept = Department(code=code, name=edit.name or code)
    _apply(dept, edit, settings)
    dept.edited_at = utcnow()
    session.add(dept)
    session.flush()
    bump(session, DEPARTMENTS, by)
    return dept


def update_department(
    session: Session,
    code: str,
    edit: DepartmentEdit,
    by: str | None = None,
    *,
    settings: Settings | None = None,
) -> Department:
    """Apply an administrator's edit; the row is the administrator's from then on. The hand-off
    secret is stored encrypted (ticketing.sealed, under settings' secret key)."""
    dept = get_department(session, code)
    _apply(dept, edit, settings)
    dept.edited_at = utcnow()
    session.add(dept)
    session.flush()
    bump(session, DEPARTMENTS, by)
    return dept


def all_departments(session: Session) -> list[Department]:
    """Every department in the configured order (departments.yaml's: the bureaus most matters
    reach first, the towns last; departments added later after them), the order of every list
    people pick from. By code, 茶庵岭镇 and 车埠镇 came before 城市管理执法局."""
    return list(session.exec(select(Department).order_by(col(Department.id))))
