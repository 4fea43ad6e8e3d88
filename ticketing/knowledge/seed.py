"""The starter content (ticketing/data/knowledge.yaml) loaded into the store on a fresh install.

Idempotent: an article is added once per seed key and never overwritten, so departments' later
edits survive every restart. Loaded as published (it was written and reviewed with the project),
with a version row by "system" like any other change. Departments must be synced first.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.knowledge.models import ArticleStatus, KbArticle
from ticketing.knowledge.sanitize import paragraphs_to_html
from ticketing.knowledge.store import SYSTEM, create_article


@lru_cache(maxsize=1)
def starter_articles() -> tuple[dict[str, Any], ...]:
    text = resources.files("ticketing.data").joinpath("knowledge.yaml").read_text("utf-8")
    return tuple(yaml.safe_load(text)["articles"])


def article_input(entry: dict[str, Any]) -> dict[str, Any]:
    """A starter entry in the store's input shape."""
    return {
        "title": entry["title"],
        "summary": entry.get("summary", ""),
        "body": paragraphs_to_html(entry.get("body", "")),
        "kind": entry["kind"],
        "department_code": entry["dept"],
        "categories": entry.get("categories", []),
        "keywords": entry.get("keywords", []),
        "issuer": entry.get("issuer"),
        "doc_number": entry.get("doc"),
        "audiences": entry.get("audiences", []),
        "size_bands": entry.get("size_bands", []),
        "industries": entry.get("industries", []),
        "regions": entry.get("regions", []),
        "expires_on": entry.get("expires_on"),
        "is_public": entry.get("public", True),
    }


def seed_knowledge(session: Session, settings: Settings) -> int:
    """Add the starter articles not yet in the store; returns how many were added."""
    have = set(session.exec(select(KbArticle.seed_key).where(col(KbArticle.seed_key).is_not(None))))
    added = 0
    for entry in starter_articles():
        if entry["key"] in have:
            continue
        try:
            create_article(
                session,
                settings,
                article_input(entry),
                SYSTEM,
                status=ArticleStatus.published,
                seed_key=entry["key"],
                note="系统预置内容",
            )
        except InvalidInput as e:
            raise InvalidInput(f"知识库初始内容 {entry['key']} 无效：{e.message}") from e
        added += 1
    return added
