"""Helpers of the policy push tests: published policies and enterprise profiles."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.database import session_scope
from config.settings import Settings
from ticketing.departments import sync_departments
from ticketing.knowledge.models import ArticleStatus, KbArticle
from ticketing.knowledge.store import SYSTEM, create_article
from ticketing.models import Enterprise
from ticketing.profiles import size_band
from ticketing.uscc import build_uscc


def uscc(n: int) -> str:
    return build_uscc(f"{n:08d}")


def policy(
    session: Session,
    settings: Settings,
    *,
    status: str = ArticleStatus.published,
    **targets: Any,
) -> KbArticle:
    data: dict[str, Any] = {
        "title": "测试政策：中小微企业稳岗补贴",
        "summary": "符合条件的企业可申请稳岗补贴。",
        "body": "<p>稳岗补贴</p>",
        "kind": "政策",
        "department_code": "RSJ",
        "issuer": "赤壁市人力资源和社会保障局",
        "doc_number": "赤人社发〔2026〕1号",
    }
    data.update(targets)
    return create_article(session, settings, data, SYSTEM, status=status)


def enterprise(
    session: Session,
    settings: Settings,
    n: int,
    *,
    industry_code: str | None = "C1311",
    employees: int | None = 50,
    revenue: float | None = 1000,
    assets: float | None = None,
    region: str | None = "蒲圻街道",
    tags: list[str] | None = None,
    push_mobile: str | None = None,
    push_opt_out: bool = False,
) -> Enterprise:
    """A profile written directly (codes the validator would refuse can be stored, to test
    that the matcher still handles them)."""
    e = Enterprise(
        uscc=uscc(n),
        name=f"测试企业{n}",
        industry_code=industry_code,
        employees=employees,
        revenue=revenue,
        assets=assets,
        region=region,
        tags=tags or [],
        push_mobile=push_mobile if push_mobile is not None else f"+86138{n:08d}",
        push_opt_out=push_opt_out,
    )
    e.size_band = size_band(settings, industry_code, employees, revenue, assets)
    session.add(e)
    session.flush()
    return e


def setup(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as s:
        sync_departments(s, settings)


# two days either side: the local (Asia/Shanghai) day may differ from the machine's
YESTERDAY = date.today() - timedelta(days=2)
TOMORROW = date.today() + timedelta(days=2)
