"""§12 hand-off callbacks: an external system reports a sub-order accepted, replied or returned.

A callback carries ticketing.handoff's signature over its raw body (header X-DXE-Signature) and a
JSON object {"suborder_id", "status": accepted|replied|returned, "text", "reason",
"external_ref", "ticket_number"}; it is mapped onto the sub-order actions of ticketing.dispatch
and is idempotent: a status the sub-order already has (or has moved past) changes nothing.
"""

from __future__ import annotations

import json

from sqlmodel import Session

from config.settings import Settings
from ticketing import dispatch
from ticketing.errors import InvalidInput, NotFound, PermissionDenied
from ticketing.handoff import STATUS_MAP, handoff_secret, verify
from ticketing.lifecycle import lock_suborder
from ticketing.models import SubOrder, SubOrderStatus

SS = SubOrderStatus


def handle_callback(
    session: Session, settings: Settings, payload: bytes | str, signature: str | None
) -> SubOrder:
    """Apply an external system's status callback (raw body + its X-DXE-Signature header)."""
    secret = handoff_secret(settings)
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    if secret is None:
        raise PermissionDenied("回调验签失败：未配置对接密钥", code="bad_signature")
    if not verify(secret, body, signature):
        raise PermissionDenied("回调签名无效或缺失", code="bad_signature")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("回调内容不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("回调内容必须是 JSON 对象")
    sid = data.get("suborder_id")
    if isinstance(sid, bool) or not isinstance(sid, int):
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
