"""Who may call what: ONE table, route name → roles. Every authenticated route looks itself up here.

Roles (ticketing.models.Role):
  admin       everything, including users
  dispatcher  hotline/window staff: intake, dispatch, extension decisions, evaluation follow-up
  agent       seated call agent: intake, read, record the submitter's evaluation
  supervisor  floor supervisor: what a dispatcher can, plus oversight
  handler     department handler: its own department's inbox and sub-orders only
  leader      city leader: read everything (incl. the user list), change nothing

Row-level rule on top of the table (enforced in the routes, documented here):
  a handler sees a ticket only when its department has a sub-order on it; for any other ticket or
  sub-order it gets 404 (not 403), so it cannot probe which ticket numbers exist. A handler asking
  for another department's inbox gets 403 (department codes are public).

Unauthenticated routes (login, /public/*, the HMAC-signed /handoff/callback, /healthz, /metrics,
/openapi.json) are listed in PUBLIC_ROUTES and are not in the table.
"""

from __future__ import annotations

from ticketing import Role

# What each role is called on every page and in every error message (the one list)
ROLE_LABELS = {
    "admin": "系统管理员",
    "dispatcher": "派单员",
    "agent": "坐席",
    "supervisor": "值班长",
    "handler": "部门承办人",
    "leader": "市领导",
}

ADMIN, DISPATCHER, AGENT, SUPERVISOR, HANDLER, LEADER = (
    Role.admin.value,
    Role.dispatcher.value,
    Role.agent.value,
    Role.supervisor.value,
    Role.handler.value,
    Role.leader.value,
)
ALL_ROLES: frozenset[str] = frozenset(r.value for r in Role)
_STAFF = frozenset({ADMIN, DISPATCHER, AGENT, SUPERVISOR})
_DISPATCH = frozenset({ADMIN, DISPATCHER, SUPERVISOR})

# route name -> roles allowed.  THE role matrix (tests/agent_console/test_roles.py walks it).
ROLE_MATRIX: dict[str, frozenset[str]] = {
    "auth.logout": ALL_ROLES,
    "auth.me": ALL_ROLES,
    "tickets.create": _STAFF,
    "tickets.list": ALL_ROLES,  # handler: filtered to its department
    "tickets.get": ALL_ROLES,  # handler: only with a sub-order of its department, else 404
    "tickets.dispatch": _DISPATCH,
    "tickets.evaluate": _STAFF,
    # what the submitter is told on resolution, when notices.yaml resolution_reply is "summary"
    "tickets.resolution_summary": _DISPATCH,
    "suborders.accept": frozenset({ADMIN, HANDLER}),  # handler: own department only
    "suborders.reply": frozenset({ADMIN, HANDLER}),
    "suborders.return": frozenset({ADMIN, HANDLER}),
    "suborders.extension": frozenset({ADMIN, HANDLER}),
    "suborders.extension_decision": _DISPATCH,
    # issue #18: the dispatcher's follow-up of a return ("not ours") and of 协办; correcting the
    # grade after intake (an agent: only a ticket it filed itself, i.e. during its call)
    "suborders.close_return": _DISPATCH,
    "suborders.release": _DISPATCH,
    "tickets.reclassify": _DISPATCH | {AGENT},
    "enterprises.get": _STAFF | {LEADER},
    # issue #12: the profile the policy push matches on; kept by hotline/window staff
    "enterprises.profile": _STAFF | {LEADER},
    "enterprises.profile_update": _DISPATCH,
    "departments.list": ALL_ROLES,
    "departments.inbox": _DISPATCH | {LEADER, HANDLER},  # handler: own department only
    "users.list": frozenset({ADMIN, LEADER}),  # leader reads everything
    "users.create": frozenset({ADMIN}),
    "users.update": frozenset({ADMIN}),
    "departments.create": frozenset({ADMIN}),
    "departments.update": frozenset({ADMIN}),
    # recordings: every role reaches the router, whose per-recording rules in
    # recordings.yaml decide (agents: calls they handled; handlers: their department's tickets;
    # dispatchers: refused unless the policy lists them) and log every refusal with the playback
    "recordings.get": ALL_ROLES,
    "recordings.audio": ALL_ROLES,
    "recordings.audio_head": ALL_ROLES,
    "recordings.playbacks": frozenset({ADMIN, SUPERVISOR, LEADER}),
    # knowledge base (issue #19): every staff role searches and reads (internal + public);
    # create/edit/review/publish reach the store, which admits only admins and the owning
    # department's handlers (a handler of another department gets 403)
    "knowledge.search": ALL_ROLES,
    "knowledge.list": ALL_ROLES,
    "knowledge.get": ALL_ROLES,
    "knowledge.versions": ALL_ROLES,
    "knowledge.create": frozenset({ADMIN, HANDLER}),
    "knowledge.update": frozenset({ADMIN, HANDLER}),
    "knowledge.transition": frozenset({ADMIN, HANDLER}),
    "knowledge.gaps": _DISPATCH | {LEADER, HANDLER},  # handler: its department's articles
    "knowledge.figures": _DISPATCH | {LEADER},
    # push a policy to the enterprises it fits: its editors (the store's department rule)
    "knowledge.push": frozenset({ADMIN, HANDLER}),
    # 直接答复: an agent closes a consultation at intake; a dispatcher a waiting one
    "tickets.direct_answer": _STAFF,
    "tickets.answer_waiting": _DISPATCH,
    # §14-15 (issue #11): manual 督办 by a supervisor or leader; a head (its department's
    # handler flagged is_head) acknowledges its 督办, or an admin or supervisor; a leader coordinates 专办; agents do the 回访
    "tickets.supervise": frozenset({ADMIN, SUPERVISOR, LEADER}),
    "escalations.list": _DISPATCH | {LEADER, HANDLER},  # handler: own department only
    # handler: its department's head only (User.is_head; ticketing.escalation.acknowledge)
    "escalations.acknowledge": frozenset({ADMIN, SUPERVISOR, HANDLER}),
    "escalations.coordinator": frozenset({ADMIN, LEADER}),
    "escalations.close": frozenset({ADMIN, LEADER}),
    "revisits.list": _STAFF,
    "revisits.outcome": _STAFF,
    # 高频事项分析 (§19, issue #12): the city's leaders and the floor's supervisors read it
    "hotspots.report": frozenset({ADMIN, SUPERVISOR, LEADER}),
    "hotspots.tickets": frozenset({ADMIN, SUPERVISOR, LEADER}),
    # §16–18 assessment (issue #12): leaders, supervisors and admins read every department; a
    # handler its own (another department's: 403) and files its appeals; an admin decides them
    "assessment.ranking": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),  # handler: own row
    "assessment.indicators": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),
    "assessment.trace": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),  # handler: own only
    "assessment.export": frozenset({ADMIN, SUPERVISOR, LEADER}),
    "assessment.appeals": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),  # handler: own only
    "assessment.appeal_file": frozenset({ADMIN, HANDLER}),  # handler: own department only
    "assessment.appeal_decide": frozenset({ADMIN}),
    "assessment.recompute": frozenset({ADMIN}),  # 重新计算 a closed month's cached figures
    # web workspace pages (agent_console.web), "web." + page. A page's actions are checked
    # against the API route that does the same thing (dispatching from the desk: tickets.dispatch).
    "web.home": ALL_ROLES,  # redirects to the role's own home
    "web.search": ALL_ROLES,  # handler: filtered to its department
    "web.ticket": ALL_ROLES,  # handler: 404 unless its department has a sub-order
    "web.enterprise": _STAFF | {LEADER},
    "web.dispatch": _DISPATCH,
    "web.window": _DISPATCH,  # walk-in intake at the special-service window
    "web.notice": _STAFF | {LEADER},  # the printable 受理告知书
    "web.inbox": frozenset({ADMIN, HANDLER}),  # handler: own department only
    "web.leader": frozenset({ADMIN, SUPERVISOR, LEADER}),
    "web.console": frozenset({ADMIN, AGENT}),  # agent console, its live events and PBX commands
    # the administrator's pages: users, departments, holiday calendar, business hours
    "web.admin": frozenset({ADMIN}),
    "web.kb": ALL_ROLES,  # knowledge pages; editing checked against knowledge.* and the store
    "web.kb_gaps": _DISPATCH | {LEADER, HANDLER},  # as knowledge.gaps
    # supervisor wallboard (live figures, alerts, reports); the leader watches, never controls
    "web.wallboard": frozenset({ADMIN, SUPERVISOR, LEADER}),
    "web.wallboard_control": frozenset({ADMIN, SUPERVISOR}),  # pause, queues, listen/whisper/barge
    "web.supervision": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),  # a head's 督办 list
    "web.redboard": frozenset({ADMIN, SUPERVISOR, LEADER}),  # the leader's red board (专办)
    "web.revisits": _STAFF,  # agents' 回访 tasks
    # proactive policy push (issue #12 §20–21): hotline/window staff keep the enterprise profiles
    # (edit, import); a policy is pushed by its editors (the store's rule: admin, or a handler
    # of the owning department); staff link a ticket to the policy it is about
    "web.enterprise_profile": _DISPATCH,
    "web.policy_push": frozenset({ADMIN, HANDLER}),
    "web.ticket_policy": _STAFF,
    "web.hotspots": frozenset({ADMIN, SUPERVISOR, LEADER}),  # 高频事项分析, as hotspots.*
    # the assessment pages (a handler: its own department's detail and appeals)
    "web.assessment": frozenset({ADMIN, SUPERVISOR, LEADER, HANDLER}),
}
WEB_PREFIX = "web."

PUBLIC_ROUTES: frozenset[str] = frozenset(
    {
        "auth.login",
        "public.tickets.create",
        "public.notices.confirm",
        "public.tickets.evaluate",
        "public.knowledge.search",
        "public.knowledge.get",
        "handoff.callback",
        "healthz",
        "metrics",
    }
)


def allowed(route_name: str, role: str) -> bool:
    return role in ROLE_MATRIX[route_name]


def may_name_departments(role: str) -> bool:
    """Naming departments at intake IS dispatching: the same permission governs both paths
    (an agent may file a ticket, not send it to three departments)."""
    return allowed("tickets.dispatch", role)
