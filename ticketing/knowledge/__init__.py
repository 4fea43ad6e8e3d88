"""The knowledge base (知识库): 办事指南, 政策, 常见问答 and 通知 in one store, searched with Chinese
questions by agents during a call and by the public; also the policy library of the proactive push.

Front door — other packages import these names from `ticketing.knowledge`:

    store     create_article, update_article, transition (review → publish → expire / withdraw),
              get_article, versions, may_edit, Editor, FLOW
    search    search_articles(session, settings, question, public=…, filters=SearchFilter(…)) -> [Hit],
              log_search, log_open
    seed      seed_knowledge (the starter content of ticketing/data/knowledge.yaml)
    reports   expire_and_remind (the daily job's work), no_hit_articles, unanswered_questions
    models    KbArticle, KbArticleVersion, KbQueryLog, DirectAnswer, ArticleKind, ArticleStatus
    schemas   ArticleIn
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES: dict[str, tuple[str, ...]] = {
    "ticketing.knowledge.store": (
        "create_article",
        "update_article",
        "transition",
        "get_article",
        "versions",
        "may_edit",
        "Editor",
        "FLOW",
        "STATUS_LABELS",
    ),
    "ticketing.knowledge.search": (
        "search_articles",
        "log_search",
        "log_open",
        "SearchFilter",
        "Hit",
    ),
    "ticketing.knowledge.seed": ("seed_knowledge",),
    "ticketing.knowledge.reports": (
        "expire_and_remind",
        "no_hit_articles",
        "unanswered_questions",
        "run_knowledge_upkeep",
    ),
    "ticketing.knowledge.models": (
        "KbArticle",
        "KbArticleVersion",
        "KbQueryLog",
        "DirectAnswer",
        "ArticleKind",
        "ArticleStatus",
    ),
    "ticketing.knowledge.schemas": ("ArticleIn", "KIND_WORDS"),
}
# Exported under another name where the plain one would collide with a submodule.
_ALIASES = {"search_articles": "search"}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ticketing.knowledge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), _ALIASES.get(name, name))
