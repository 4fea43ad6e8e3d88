"""Shared helpers of the knowledge-base tests: a seeded store and the labelled questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from config.database import session_scope
from config.settings import Settings
from ticketing.departments import sync_departments
from ticketing.knowledge.seed import seed_knowledge

QUESTIONS = Path(__file__).resolve().parent / "data" / "kb_questions.tsv"


def labelled_questions() -> list[tuple[str, set[str]]]:
    """(question, the seed keys of the articles that answer it)."""
    out = []
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        question, keys = line.split("\t")
        out.append((question, {k.strip() for k in keys.split(",") if k.strip()}))
    return out


def seed_store(engine: Engine, settings: Settings) -> int:
    with session_scope(engine) as s:
        sync_departments(s, settings)
        s.flush()
        return seed_knowledge(s, settings)


def article_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "测试办事指南：夜市摊点经营备案",
        "summary": "夜市摊点向城管执法局备案即可。",
        "body": "<p>夜市摊点经营需要<strong>备案</strong>。</p>",
        "kind": "办事指南",
        "department_code": "CGJ",
        "keywords": ["夜市", "摊点", "摆摊"],
        "categories": ["市容"],
    }
    data.update(overrides)
    return data
