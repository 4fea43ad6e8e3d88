"""The ticketing core: one intake for every channel and the city's closed loop.

受理 (intake) → 分类分级 (classification, grading) → 派单 (dispatch, parallel sub-orders) → 办理
(handling, hand-off to external systems) → 评价 (evaluation, reopen on 不满意).

Front door — other packages import these names from `ticketing`, never its modules:

    intake       submit(session, TicketIn, *, settings, actor) -> Ticket;
                 submit_many(session, [(TicketIn, actor)], *, settings) (a batch, one transaction),
                 and its two halves: prepare_many (no database) -> [Draft], write_drafts
    queries      get_ticket_by_number, list_tickets(TicketFilter), department_inbox, enterprise_file
    dispatch     auto_dispatch, dispatch_to_departments, accept, reply, return_suborder, request_extension,
                 decide_extension
    evaluation   evaluate
    notices      create_acceptance_notice, confirm_notice
    notify       send_sms, flush_pending (the SMS outbox)
    handoff      handle_callback, requeue_pending (§12 outbound adapters)
    callbacks    promise_callback (one per call and reason), next_callback_time
    warnings     scan_warnings, warning_scan_interval, run_warning_scan (the scheduler's job):
                 §13 levels kept current on a schedule
    hours        BusinessHours, load_business_hours, is_open, next_opening, format_opening
    reference    sync_departments, get_department, normalise_phone, mask_phone, validate_uscc,
                 deadline_for, add_duration, warning_for, get_classifier
    models       Ticket, SubOrder, TicketEvent, Notice, OutboxMessage, Evaluation, Enterprise,
                 Caller, Department, User, CallbackTask, and the enums
    errors       TicketingError, InvalidInput, NotFound, Conflict, PermissionDenied
    knowledge    the knowledge base (ticketing.knowledge's names: search_articles, create_article,
                 update_article, transition, versions, seed_knowledge, …) and 直接答复
                 (answer_at_intake, answer_waiting, first_contact_figures)

Imports only config (layering). Names load lazily, so importing the package (or its models) does
not pull in scikit-learn or the HTTP client.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES: dict[str, tuple[str, ...]] = {
    "ticketing.intake": ("submit", "submit_many", "prepare_many", "Draft"),
    "ticketing.intake_write": ("write_drafts",),
    "ticketing.schemas": ("TicketIn",),
    "ticketing.queries": (
        "TicketFilter",
        "get_ticket_by_number",
        "list_tickets",
        "department_inbox",
        "enterprise_file",
    ),
    "ticketing.dispatch": (
        "auto_dispatch",
        "dispatch_to_departments",
        "accept",
        "reply",
        "return_suborder",
        "request_extension",
        "decide_extension",
        "classifier_threshold",
    ),
    "ticketing.evaluation": ("evaluate",),
    "ticketing.notices": ("create_acceptance_notice", "confirm_notice"),
    "ticketing.notify": ("send_sms", "flush_pending"),
    "ticketing.handoff": ("handle_callback", "requeue_pending"),
    "ticketing.departments": ("sync_departments", "get_department"),
    "ticketing.phones": ("normalise_phone", "mask_phone"),
    "ticketing.uscc": ("validate_uscc",),
    "ticketing.sla": ("deadline_for", "add_duration", "warning_for"),
    "ticketing.warning_scan": ("scan_warnings", "warning_scan_interval"),
    "ticketing.jobs": ("run_warning_scan", "requeue_lost_work"),
    "ticketing.classifier": ("get_classifier", "Prediction"),
    "ticketing.events": ("record_event", "history"),
    "ticketing.hours": (
        "BusinessHours",
        "load_business_hours",
        "format_opening",
        "is_open",
        "is_working_time",
        "next_opening",
    ),
    "ticketing.callbacks": ("promise_callback", "next_callback_time"),
    "ticketing.errors": (
        "TicketingError",
        "InvalidInput",
        "NotFound",
        "Conflict",
        "PermissionDenied",
    ),
    # the knowledge base (issue #19): ticketing.knowledge's front door, re-exported
    "ticketing.knowledge": (
        "ArticleIn",
        "ArticleKind",
        "ArticleStatus",
        "DirectAnswer",
        "Editor",
        "KbArticle",
        "KbArticleVersion",
        "KbQueryLog",
        "KIND_WORDS",
        "SearchFilter",
        "create_article",
        "get_article",
        "log_open",
        "log_search",
        "no_hit_articles",
        "run_knowledge_upkeep",
        "search_articles",
        "seed_knowledge",
        "transition",
        "unanswered_questions",
        "update_article",
        "versions",
        "expire_and_remind",
    ),
    "ticketing.knowledge.search": ("local_today", "day_bounds"),
    "ticketing.knowledge.segment": ("knowledge_warm_up",),
    "ticketing.direct_answer": ("answer_at_intake", "answer_waiting", "first_contact_figures"),
    "ticketing.models": (
        "Ticket",
        "SubOrder",
        "TicketEvent",
        "Notice",
        "OutboxMessage",
        "Evaluation",
        "HandoffAttempt",
        "Enterprise",
        "Caller",
        "Department",
        "User",
        "CallbackTask",
        "Channel",
        "Category",
        "Urgency",
        "TicketStatus",
        "SubOrderStatus",
        "Warning",
        "Role",
        "Rating",
        "utcnow",
    ),
}
# Exported under another name where the plain one would collide with a submodule: once
# `ticketing.dispatch` is imported, the package attribute `dispatch` is that module.
_ALIASES = {
    "record_event": "record",
    "dispatch_to_departments": "dispatch",
    "knowledge_warm_up": "warm_up",
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ticketing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), _ALIASES.get(name, name))
