"""Departments come from config (departments.yaml); the table mirrors it so sub-orders can reference codes."""

from __future__ import annotations

from sqlmodel import Session, select

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.errors import NotFound
from ticketing.models import Department

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
