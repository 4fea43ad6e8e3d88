"""The ticketing core: one intake for every channel and the city's closed loop.

受理 (intake) → 分类分级 (classification, grading) → 派单 (dispatch, parallel sub-orders) → 办理
(handling, hand-off to external systems) → 评价 (evaluation, reopen on 不满意).

Front door — other packages import these names from `ticketing`, never its modules:

    intake       submit(session, TicketIn, *, settings, actor) -> Ticket;
                 submit_many(session, [(TicketIn, actor)], *, settings) (a batch, one transaction),
                 and its two halves: prepare_many (no database) -> [Draft], write_drafts
    queries      get_ticket_by_number, list_tickets(TicketFilter), department_inbox, enterprise_file,
                 desk_overview, dispatch_queue, intake_summary, overdue_tickets, caller_history,
                 extension_requests, returns_awaiting
                 (the web workspace)
    lifecycle    TICKET_LABELS, SUBORDER_LABELS, ACTION_LABELS (Chinese names of states and actions)
    hotspots     高频事项分析 (§19): hotspot_report(HotspotQuery) -> HotspotReport, hotspot_tickets
                 (the drill-down), save_months / refresh_cache / compute_month (hotspot_month:
                 each month's figures kept), index_pending / index_all / run_hotspot_index (the scheduler's
                 job) / index_transcript (the ASR job), this_month, shift_month, month_bounds
    knowledge    the knowledge base (ticketing.knowledge's names: search_articles, create_article,
                 update_article, transition, versions, seed_knowledge, …) and 直接答复
                 (answer_at_intake, answer_waiting, first_contact_figures)
    dispatch     auto_dispatch, dispatch_to_departments (lead 主办 / assist 协办), accept, reply,
                 return_suborder, request_extension, decide_extension, close_return (a return
                 looked at, no other department needed), release_suborder (解除协办)
    correction   reclassify: category/urgency corrected with a reason; the deadline follows
    duplicates   related_ticket (重复件: the earlier matter a ticket repeats, with its replies)
    evaluation   evaluate
    notices      create_acceptance_notice, confirm_notice, issued_tokens, issued_acceptance,
                 notice_for_evaluation, notice_by_confirm_token
    notify       send_sms, flush_pending (the SMS outbox)
    submitter    what the submitter is told later: approve_summary, summary_mode (and the
                 tell_* calls inside dispatch/evaluation); public_view, PublicView, PUBLIC_STAGES
                 (the public portal's view of a matter: no staff-only field)
    handoff      handle_callback, requeue_pending (§12 outbound adapters)
    callbacks    promise_callback (one per call and reason), next_callback_time, and the agents'
                 own: schedule_callback, callbacks_for, finish_callback, CALLBACK_OUTCOMES
    amend        amend_ticket (content, caller name, enterprise by 统一社会信用代码), add_note
    call_tickets file_call: a call becomes a ticket plus its callback promise (every phone front)
    warnings     scan_warnings, warning_scan_interval, run_warning_scan (the scheduler's job):
                 §13 levels kept current on a schedule (incremental: sla_scan.scan_round);
                 bind_sla_settings (a session's settings for state-change re-evaluation)
    escalation   supervise (manual 督办), acknowledge, assign_coordinator, close_special,
                 escalations, get_escalation, KIND_LABELS, ESCALATION_STATUS_LABELS, LEVEL_LABELS,
                 STEP_LABELS (§14 催办/督办/专办)
    followup     revisit_tasks, record_revisit, REVISIT_OUTCOMES (§15 回访), followup_round
    hours        BusinessHours, load_business_hours, is_open, next_opening, format_opening,
                 business_hours_data
    calendar     the one working-day calendar (workcalendar): calendar_exceptions, covered_years,
                 coverage_warning, log_coverage, parse_days, save_year, delete_year
    admin        settings the administrator edits, kept in the database: read_setting,
                 stored_setting, write_setting; departments: create_department, update_department
                 (DepartmentEdit), all_departments; routing keywords: department_keywords,
                 set_department_keywords, split_keywords
    reference    sync_departments, get_department, normalise_phone, mask_phone, caller_phone,
                 validate_uscc,
                 deadline_for, add_duration, warning_for, get_classifier
    models       Ticket, SubOrder, TicketEvent, Notice, OutboxMessage, Evaluation, Enterprise,
                 Caller, Department, User, CallbackTask, and the enums
    errors       TicketingError, InvalidInput, NotFound, Conflict, PermissionDenied
    users        password_problem, username_taken, hash_password, MIN_PASSWORD_LEN: the rules every way of
                 making a console user obeys (the web's administration, `callcenter user`)
    policy push  (§20–21, 政策直达) profiles: validate_profile, save_profile, import_profiles,
                 size_band, regions, profile_form; policy_match: matching_enterprise_ids,
                 matching_policies, count_matches, in_force; policy_push: request_policy_push,
                 request_enterprise_push, run_push, push_by_token, message_pushes, record_open, opt_out,
                 policy_figures, enterprise_pushes, link_ticket_policy, ticket_policies
    assessment   the monthly department assessment (ticketing.assessment, §16–17): assess,
                 assessment_period (AssessmentPeriod), assessment_rows (the drill-down),
                 ASSESSMENT_INDICATORS, assessment_config, assessment_city_average,
                 file/decide/get_assessment_appeal, assessment_appeals, assessment_csv/_xlsx,
                 assessment_portrait (the department portrait), assessment_department_row,
                 keep_assessment_months / recompute_assessment_month (the month cache),
                 run_assessment_month (its RQ job), run_assessment_warmup (the scheduler's)

Imports only config (layering). Names load lazily, so importing the package (or its models) does
not pull in scikit-learn or the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy import lazy_exports

if TYPE_CHECKING:  # the names, typed; at run time read by lazy_exports (config/lazy.py)
    from ticketing.admin_settings import (
        BUSINESS_HOURS,
        read_setting,
        stored_setting,
        write_setting,
    )
    from ticketing.amend import add_note, amend_ticket
    from ticketing.assessment import APPEAL_STATUS_LABELS, AssessmentAppeal, assess
    from ticketing.assessment import INDICATORS as ASSESSMENT_INDICATORS
    from ticketing.assessment import TIMES as ASSESSMENT_TIMES
    from ticketing.assessment import Assessment as AssessmentResult
    from ticketing.assessment import DepartmentResult as AssessmentRow
    from ticketing.assessment import Figure as AssessmentFigure
    from ticketing.assessment import Period as AssessmentPeriod
    from ticketing.assessment import city_average as assessment_city_average
    from ticketing.assessment import decide_appeal as decide_assessment_appeal
    from ticketing.assessment import department_portrait as assessment_portrait
    from ticketing.assessment import department_row as assessment_department_row
    from ticketing.assessment import file_appeal as file_assessment_appeal
    from ticketing.assessment import get_appeal as get_assessment_appeal
    from ticketing.assessment import indicator_rows as assessment_rows
    from ticketing.assessment import is_closed as assessment_is_closed
    from ticketing.assessment import keep_months as keep_assessment_months
    from ticketing.assessment import list_appeals as assessment_appeals
    from ticketing.assessment import parse_period as assessment_period
    from ticketing.assessment import previous_month_key as previous_assessment_month
    from ticketing.assessment import published_month as published_assessment_month
    from ticketing.assessment import request_recompute as recompute_assessment_month
    from ticketing.assessment import score_config as assessment_config
    from ticketing.assessment import to_csv as assessment_csv
    from ticketing.assessment import to_xlsx as assessment_xlsx
    from ticketing.call_tickets import file_call
    from ticketing.callbacks import OUTCOMES as CALLBACK_OUTCOMES
    from ticketing.callbacks import (
        callbacks_for,
        finish_callback,
        next_callback_time,
        promise_callback,
        schedule_callback,
    )
    from ticketing.classifier import Prediction, get_classifier
    from ticketing.correction import reclassify
    from ticketing.department_cache import cached_departments
    from ticketing.departments import (
        DepartmentEdit,
        all_departments,
        create_department,
        get_department,
        sync_departments,
        update_department,
    )
    from ticketing.direct_answer import (
        answer_at_intake,
        answer_waiting,
        first_contact_figures,
    )
    from ticketing.dispatch import (
        accept,
        auto_dispatch,
        close_return,
        decide_extension,
        reply,
        request_extension,
        return_suborder,
    )

    # Exported under another name where the plain one would collide with a submodule: once
    # `ticketing.dispatch` is imported, the package attribute `dispatch` is that module.
    from ticketing.dispatch import dispatch as dispatch_to_departments
    from ticketing.dispatch import release as release_suborder
    from ticketing.dispatch_rule import classifier_threshold
    from ticketing.drafts import Draft
    from ticketing.duplicates import related_ticket
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
    from ticketing.events import detail_time, history
    from ticketing.events import record as record_event
    from ticketing.followup import (
        REVISIT_OUTCOMES,
        followup_round,
        record_revisit,
        revisit_tasks,
    )
    from ticketing.handoff import requeue_pending
    from ticketing.handoff_callback import handle_callback
    from ticketing.hotspots import (
        MONTH_PATTERN,
        HotspotQuery,
        HotspotReport,
        MonthFigures,
        Topic,
        compute_month,
        hotspot_report,
        hotspot_tickets,
        index_all,
        index_pending,
        index_transcript,
        month_bounds,
        refresh_cache,
        run_hotspot_index,
        save_months,
        shift_month,
        this_month,
        unindexed_count,
    )
    from ticketing.hours import (
        BusinessHours,
        business_hours_data,
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
        run_assessment_month,
        run_assessment_warmup,
        run_policy_push,
        run_warning_scan,
    )
    from ticketing.knowledge import (
        KIND_WORDS,
        STATUS_LABELS,
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
        may_edit,
        no_hit_articles,
        run_knowledge_upkeep,
        search_articles,
        seed_knowledge,
        transition,
        unanswered_questions,
        update_article,
        versions,
    )
    from ticketing.knowledge.models import SIZE_LABELS
    from ticketing.knowledge.search import day_bounds, local_today, published_articles
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
        SubOrderRole,
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
        issued_acceptance,
        issued_tokens,
        notice_by_confirm_token,
        notice_for_evaluation,
        paper_text,
    )
    from ticketing.notify import flush_pending, send_sms
    from ticketing.phones import (
        caller_phone,
        is_mainland_mobile,
        mask_phone,
        normalise_phone,
    )
    from ticketing.policy_match import (
        count_matches,
        in_force,
        in_force_policies,
        matching_enterprise_ids,
        matching_policies,
    )
    from ticketing.policy_push import SKIP_LABELS as PUSH_SKIP_LABELS
    from ticketing.policy_push import STATUS_LABELS as PUSH_STATUS_LABELS
    from ticketing.policy_push import (
        enterprise_pushes,
        link_ticket_policy,
        message_pushes,
        opt_out,
        policy_figures,
        policy_tickets,
        push_by_token,
        record_open,
        request_enterprise_push,
        request_policy_push,
        run_push,
        ticket_policies,
    )
    from ticketing.portal_view import STAGES as PUBLIC_STAGES
    from ticketing.portal_view import PublicView, public_view
    from ticketing.profiles import (
        FIELD_LABELS as PROFILE_FIELD_LABELS,
    )
    from ticketing.profiles import (
        ImportReport,
        import_profiles,
        profile_form,
        regions,
        save_profile,
        size_band,
        validate_profile,
    )
    from ticketing.queries import (
        TicketFilter,
        caller_history,
        department_inbox,
        desk_overview,
        dispatch_queue,
        enterprise_file,
        extension_requests,
        get_ticket_by_number,
        intake_summary,
        list_tickets,
        overdue_tickets,
        returns_awaiting,
    )
    from ticketing.routing import (
        department_keywords,
        set_department_keywords,
        split_keywords,
    )
    from ticketing.schemas import TicketIn
    from ticketing.sealed import seal_stored_secrets
    from ticketing.sla import (
        add_duration,
        deadline_for,
        warning_for,
    )
    from ticketing.sla_clocks import bind_settings as bind_sla_settings
    from ticketing.sla_levels import LEVEL_LABELS, STEP_LABELS
    from ticketing.sla_scan import full_scan, scan_round
    from ticketing.submitter_notices import (
        MAX_SUMMARY,
        SUMMARY_EVENT,
        approve_summary,
        summary_mode,
    )
    from ticketing.text import is_digits
    from ticketing.uscc import validate_uscc
    from ticketing.users import (
        MIN_PASSWORD_LEN,
        hash_password,
        password_problem,
        username_taken,
    )
    from ticketing.warning_scan import (
        scan_warnings,
        warning_scan_interval,
    )
    from ticketing.workcalendar import (
        calendar_exceptions,
        coverage_warning,
        covered_years,
        delete_year,
        log_coverage,
        package_years,
        parse_days,
        save_year,
        stored_calendar,
    )

if not TYPE_CHECKING:  # a checker sees the imports above, and no __getattr__ to hide typos
    __all__, __getattr__ = lazy_exports(__name__, __file__)
