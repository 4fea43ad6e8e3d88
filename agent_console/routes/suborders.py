"""A department's actions on its sub-order: accept, reply, return, ask for an extension; and the
dispatcher's decision on an extension. Handlers act on their own department's sub-orders only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from agent_console.access import handler_department, visible_suborder
from agent_console.deps import SessionDep, SettingsDep, require
from agent_console.errors import responses
from agent_console.schemas import (
    ExtensionDecisionIn,
    ExtensionIn,
    ReplyIn,
    ReturnIn,
    SubOrderOut,
)
from ticketing import User
from ticketing import dispatch as svc

router = APIRouter(prefix="/suborders", tags=["suborders"])
# ids are 32-bit integer columns: anything outside is a 422, not a database error
SubOrderId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_ERR = responses(401, 403, 404, 409, 422)


def _out(session, so) -> SubOrderOut:
    session.flush()
    return SubOrderOut.model_validate(so)


@router.post(
    "/{suborder_id}/accept", name="suborders.accept", response_model=SubOrderOut, responses=_ERR
)
def accept(
    suborder_id: SubOrderId,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.accept")),
) -> SubOrderOut:
    """签收."""
    visible_suborder(session, user, suborder_id)
    so = svc.accept(
        session, settings, suborder_id, actor=user.username, department=handler_department(user)
    )
    return _out(session, so)


@router.post(
    "/{suborder_id}/reply", name="suborders.reply", response_model=SubOrderOut, responses=_ERR
)
def reply(
    suborder_id: SubOrderId,
    body: ReplyIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.reply")),
) -> SubOrderOut:
    """回复; the ticket resolves when every live sub-order has replied."""
    visible_suborder(session, user, suborder_id)
    so = svc.reply(
        session,
        settings,
        suborder_id,
        actor=user.username,
        text=body.text,
        department=handler_department(user),
    )
    return _out(session, so)


@router.post(
    "/{suborder_id}/return", name="suborders.return", response_model=SubOrderOut, responses=_ERR
)
def return_suborder(
    suborder_id: SubOrderId,
    body: ReturnIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.return")),
) -> SubOrderOut:
    """退回 to the dispatcher, with a reason."""
    visible_suborder(session, user, suborder_id)
    so = svc.return_suborder(
        session,
        settings,
        suborder_id,
        actor=user.username,
        reason=body.reason,
        department=handler_department(user),
    )
    return _out(session, so)


@router.post(
    "/{suborder_id}/extension",
    name="suborders.extension",
    response_model=SubOrderOut,
    responses=_ERR,
)
def request_extension(
    suborder_id: SubOrderId,
    body: ExtensionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.extension")),
) -> SubOrderOut:
    """延期申请: amount + unit, or until."""
    visible_suborder(session, user, suborder_id)
    so = svc.request_extension(
        session,
        settings,
        suborder_id,
        actor=user.username,
        reason=body.reason,
        amount=body.amount,
        unit=body.unit,
        until=body.until,
        department=handler_department(user),
    )
    return _out(session, so)


@router.post(
    "/{suborder_id}/extension/decision",
    name="suborders.extension_decision",
    response_model=SubOrderOut,
    responses=_ERR,
)
def decide_extension(
    suborder_id: SubOrderId,
    body: ExtensionDecisionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.extension_decision")),
) -> SubOrderOut:
    """Approve (moves the deadline) or reject an extension request."""
    visible_suborder(session, user, suborder_id)
    so = svc.decide_extension(
        session, settings, suborder_id, actor=user.username, approve=body.approve, note=body.note
    )
    return _out(session, so)
