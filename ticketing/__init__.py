"""The ticketing core: one intake for every channel and the city's closed loop.

受理 (intake) → 分类分级 (classification, grading) → 派单 (dispatch, parallel sub-orders) → 办理
(handling, hand-off to external systems) → 评价 (evaluation, reopen on 不满意).

Front door — other packages import these names from `ticketing`, never its modules:

    intake       submit(session, TicketIn, *, settings, actor) -> Ticket;
                 submit_many(session, [(TicketIn, actor)], *, settings) (a batch, one transaction),
                 and its two halves: prepare_many (no database) -> [Draft], write_drafts
    queries      get_ticket_by_number, list_tickets(TicketFilter), department_inbox, enterprise_file,
                 dispatch_queue, intake_summary, overdue_tickets, caller_history, extension_requests
                 (the web workspace)
    lifecycle    TICKET_LABELS, SUBORDER_LABELS, ACTION_LABELS (Chinese names of states and actions)
    knowledge    the knowledge base (ticketing.knowledge's names: search_articles, create_article,
                 update_article, transition, versions, seed_knowledge, …) and 直接答复
                 (answer_at_intake, answer_waiting, first_contact_figures)
    dispatch     auto_dispatch, dispatch_to_departments, accept, reply, return_suborder, request_extension,
                 decide_extension
    evaluation   evaluate
    notices      create_acceptance_notice, confirm_notice, issued_tokens, notice_for_evaluation
    notify       send_sms, flush_pending (the SMS outbox)
    handoff      handle_callback, requeue_pending (§12 outbound adapters)
    callbacks    promise_callback (one per call and reason), next_callback_time
    call_tickets file_call: a call becomes a ticket plus its callback promise (every phone front)
    warnings     scan_warnings, warning_scan_interval, run_warning_scan (the scheduler's job):
                 §13 levels kept current on a schedule (incremental: sla_scan.scan_round);
                 bind_sla_settings (a session's settings for state-change re-evaluation)
    escalation   supervise (manual 督办), acknowledge, assign_coordinator, close_special,
                 escalations, get_escalation, KIND_LABELS, ESCALATION_STATUS_LABELS, LEVEL_LABELS,
                 STEP_LABELS (§14 催办/督办/专办)
    followup     revisit_tasks, record_revisit, REVISIT_OUTCOMES (§15 回访), followup_round
    hours        BusinessHours, load_business_hours, is_open, next_opening, format_opening
    reference    sync_departments, get_department, normalise_phone, mask_phone, caller_phone,
                 validate_uscc,
                 deadline_for, add_duration, warning_for, get_classifier
    models       Ticket, SubOrder, TicketEvent, Notice, OutboxMessage, Evaluation, Enterprise,
                 Caller, Department, User, CallbackTask, and the enums
    errors       TicketingError, InvalidInput, NotFound, Conflict, PermissionDenied

Imports only config (layering). Names load lazily, so importing the package (or its models) does
not pull in scikit-learn or the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy import lazy_exports

if TYPE_CHECKING:  # the names, typed; at run time read by lazy_exports (config/lazy.py)
    from ticketing.call_tickets import file_call
    from ticketing.callbacks import (
        next_callback_time,
        promise_callback,
    )
    from ticketing.classifier import Prediction, get_classifier
    from ticketing.departments import (
        get_department,
        sync_departments,
    )
    from ticketing.direct_answer import (
        answer_at_intake,
        answer_waiting,
        first_contact_figures,
    )
    from ticketing.dispatch import (
        accept,
        auto_dispatch,
        decide_extension,
        reply,
        request_extension,
        return_suborder,
    )

    # Exported under another name where the plain one would collide with a submodule: once
    # `ticketing.dispatch` is imported, the package attribute `dispatch` is that module.
    from ticketing.dispatch import dispatch as dispatch_to_departments
    from ticketing.dispatch_rule import classifier_threshold
    from ticketing.drafts import Draft
    from ticketing.errors import (
        Conflict,
        InvalidInput,
        NotFound,
        PermissionDenied,
        TicketingError,
    )
    from ticketing.escalation import (
        KIND_LABELS,
        acknowledge,
        assign_coordinator,
        close_special,
        escalations,
        get_escalation,
        supervise,
    )
    from ticketing.escalation import STATUS_LABELS as ESCALATION_STATUS_LABELS
    from ticketing.evaluation import evaluate
    from ticketing.events import history
    from ticketing.events import record as record_event
    from ticketing.followup import (
        REVISIT_OUTCOMES,
        followup_round,
        record_revisit,
        revisit_tasks,
    )
    from ticketing.handoff import requeue_pending
    from ticketing.handoff_callback import handle_callback
    from ticketing.hours import (
        BusinessHours,
        format_opening,
        is_open,
        is_working_time,
        load_business_hours,
        next_opening,
    )
    from ticketing.intake import (
        prepare_many,
        submit,
        submit_many,
    )
    from ticketing.intake_write import write_drafts
    from ticketing.jobs import (
        requeue_lost_work,
        run_warning_scan,
    )
    from ticketing.knowledge import (
        KIND_WORDS,
        ArticleIn,
        ArticleKind,
        ArticleStatus,
        DirectAnswer,
        Editor,
        KbArticle,
        KbArticleVersion,
        KbQueryLog,
        SearchFilter,
        create_article,
        expire_and_remind,
        get_article,
        log_open,
        log_search,
        no_hit_articles,
        run_knowledge_upkeep,
        search_articles,
        seed_knowledge,
        transition,
        unanswered_questions,
        update_article,
        versions,
    )
    from ticketing.knowledge.search import day_bounds, local_today
    from ticketing.knowledge.segment import warm_up as knowledge_warm_up
    from ticketing.lifecycle import ACTION_LABELS, SUBORDER_LABELS, TICKET_LABELS
    from ticketing.models import (
        CallbackTask,
        Caller,
        Category,
        Channel,
        Department,
        Enterprise,
        Escalation,
        EscalationKind,
        Evaluation,
        HandoffAttempt,
        Notice,
        OutboxMessage,
        Rating,
        Role,
        SubOrder,
        SubOrderStatus,
        Ticket,
        TicketEvent,
        TicketStatus,
        Urgency,
        User,
        Warning,
        utcnow,
    )
    from ticketing.notices import (
        confirm_notice,
        create_acceptance_notice,
        issued_tokens,
        notice_for_evaluation,
    )
    from ticketing.notify import flush_pending, send_sms
    from ticketing.phones import (
        caller_phone,
        is_mainland_mobile,
        mask_phone,
        normalise_phone,
    )
    from ticketing.queries import (
        TicketFilter,
        caller_history,
        department_inbox,
        dispatch_queue,
        enterprise_file,
        extension_requests,
        get_ticket_by_number,
        intake_summary,
        list_tickets,
        overdue_tickets,
    )
    from ticketing.schemas import TicketIn
    from ticketing.sla import (
        add_duration,
        deadline_for,
        warning_for,
    )
    from ticketing.sla_clocks import bind_settings as bind_sla_settings
    from ticketing.sla_levels import LEVEL_LABELS, STEP_LABELS
    from ticketing.sla_scan import full_scan, scan_round
    from ticketing.uscc import validate_uscc
    from ticketing.warning_scan import (
        scan_warnings,
        warning_scan_interval,
    )

if not TYPE_CHECKING:  # a checker sees the imports above, and no __getattr__ to hide typos
    __all__, __getattr__ = lazy_exports(__name__, __file__)
