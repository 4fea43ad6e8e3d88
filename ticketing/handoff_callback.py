"""§12 hand-off callbacks: an external system reports a sub-order accepted, replied or returned.

A callback carries ticketing.handoff's two headers over its raw body (X-DXE-Timestamp and
X-DXE-Signature) and a JSON object {"suborder_id", "status": accepted|replied|returned, "text",
"reason", "external_ref", "ticket_number"}. It is bound to the hand-off it answers: the sub-order
must have been handed off (handoff_status set) to the system whose secret signed it, and the
timestamp must lie within settings.handoff_callback_window_s of our clock (an old capture cannot be
replayed; inside the window a repeat changes nothing). It is mapped onto the sub-order actions of
ticketing.dispatch and is idempotent: a status the sub-order already has (or has moved past)
changes nothing.
"""

from __future__ import annotations

import json
import time

from sqlmodel import Session, select

from config.database import is_row_id
from config.settings import Settings
from ticketing import dispatch
from ticketing.errors import InvalidInput, NotFound, PermissionDenied
from ticketing.handoff import (
    STATUS_MAP,
    TIMESTAMP_HEADER,
    stored_secret,
    system_secret,
    target_for,
    verify,
)
from ticketing.lifecycle import lock_suborder
from ticketing.models import Department, SubOrder, SubOrderStatus, Ticket

SS = SubOrderStatus


def handle_callback(
    session: Session,
    settings: Settings,
    payload: bytes | str,
    signature: str | None,
    timestamp: str | None = None,
) -> SubOrder:
    """Apply an external system's status callback (raw body, its X-DXE-Signature and
    X-DXE-Timestamp headers). Refused (PermissionDenied) unless the timestamp is fresh and the
    signature is by the system the sub-order was handed off to."""
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    if not signature or not signature.isascii():  # a non-ASCII header is never a signature
        raise PermissionDenied("回调签名无效或缺失", code="bad_signature")
    ts = _fresh_timestamp(settings, timestamp)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("回调内容不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("回调内容必须是 JSON 对象")
    sid = data.get("suborder_id")
    # ids are 32-bit integer columns: a larger one names no sub-order, and the database driver
    # would fail on it (OverflowError on SQLite) rather than find nothing
    if not is_row_id(sid):
        raise InvalidInput("回调缺少有效的 suborder_id", field="suborder_id")
    action = STATUS_MAP.get(str(data.get("status") or "").strip().lower())
    if action is None:
        raise InvalidInput(
            f"不支持的回调状态：{data.get('status')!r}（应为 accepted / replied / returned）",
            field="status",
        )
    ext = data.get("external_ref")
    if ext is not None and (not isinstance(ext, str | int) or len(str(ext)) > 100):
        raise InvalidInput("external_ref 无效（最多 100 个字符）", field="external_ref")

    # who may answer for this sub-order: the system it was handed off to (read before any lock:
    # an unauthenticated request must not take the write lock)
    peek = session.get(SubOrder, sid)
    if peek is None:
        raise NotFound(f"子工单不存在：{sid}", suborder_id=sid)
    system = _handed_off_to(session, settings, peek)
    if system is None:
        raise PermissionDenied(
            "该子工单未交由外部系统办理，不接受回调", code="not_handed_off", suborder_id=sid
        )
    secret = system_secret(settings, system, stored_secret(session, settings, system))
    if secret is None:
        raise PermissionDenied("回调验签失败：未配置对接密钥", code="bad_signature")
    if not verify(secret, body, signature, ts):
        raise PermissionDenied("回调签名无效或缺失", code="bad_signature")
    try:
        ticket, so = lock_suborder(session, sid)
    except NotFound:
        raise NotFound(f"子工单不存在：{sid}", suborder_id=sid) from None
    number = data.get("ticket_number")
    if number is not None and number != ticket.number:
        raise InvalidInput("回调的工单编号与子工单不符", field="ticket_number")
    actor = f"handoff:{so.department_code}"[:64]
    if ext is not None and so.external_ref != str(ext):
        so.external_ref = str(ext)
        session.add(so)

    if action == "accepted":
        if so.status == SS.dispatched:
            return dispatch.accept(session, settings, sid, actor=actor)
        return so  # already accepted or further along: a repeat or late delivery
    if action == "replied":
        if so.status == SS.replied:
            return so
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("“已办结”回调必须带回复内容 text", field="text")
        if so.status == SS.dispatched:
            dispatch.accept(session, settings, sid, actor=actor)
        return dispatch.reply(session, settings, sid, actor=actor, text=text)
    # returned
    if so.status == SS.returned:
        return so
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("“退回”回调必须带退回原因 reason", field="reason")
    return dispatch.return_suborder(session, settings, sid, actor=actor, reason=reason)


def _fresh_timestamp(settings: Settings, timestamp: str | None) -> str:
    """The X-DXE-Timestamp as signed (digits), when within the window of our clock."""
    window = int(getattr(settings, "handoff_callback_window_s", 300))
    ts = (timestamp or "").strip()
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        raise PermissionDenied(
            f"回调缺少有效的时间戳（{TIMESTAMP_HEADER}，Unix 秒）", code="bad_timestamp"
        )
    if abs(time.time() - int(ts)) > window:
        raise PermissionDenied(
            f"回调时间戳超出允许范围（±{window} 秒），可能是重放", code="stale_timestamp"
        )
    return ts


def _handed_off_to(session: Session, settings: Settings, so: SubOrder) -> str | None:
    """The external system (department code of the endpoint) this sub-order was handed off to;
    None when it never was (inbox only)."""
    if not so.handoff_status:
        return None
    ticket = session.get(Ticket, so.ticket_id)
    dept = session.exec(select(Department).where(Department.code == so.department_code)).first()
    if ticket is None or dept is None:
        return None
    target = target_for(session, settings, ticket, dept)
    return target.via if target is not None else None
