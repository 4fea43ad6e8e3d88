"""A department's actions on its sub-order: accept, reply, return, ask for an extension; and the
dispatcher's decision on an extension. Handlers act on their own department's sub-orders only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from sqlmodel import Session

from agent_console.access import handler_department, visible_suborder
from agent_console.deps import RowId, SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import (
    ExtensionDecisionIn,
    ExtensionIn,
    ReasonIn,
    ReplyIn,
    ReturnIn,
    SubOrderOut,
)
from config.settings import Settings
from ticketing import (
    SubOrder,
    User,
    accept,
    close_return,
    decide_extension,
    release_suborder,
    reply,
    request_extension,
    return_suborder,
)

router = APIRouter(prefix="/suborders", tags=["suborders"], route_class=TransactionRoute)
# ids are 32-bit integer columns: anything outside is a 422, not a database error
_ERR = responses(401, 403, 404, 409, 422)


def _act(
    action: Callable[..., SubOrder],
    session: Session,
    settings: Settings,
    user: User,
    suborder_id: int,
    **kw: Any,
) -> SubOrderOut:
    """The one shape of every sub-order action: the user must see the sub-order, the service
    acts as the user (and, for a handler, checks it owns the sub-order), the result is returned."""
    visible_suborder(session, user, suborder_id)
    so = action(session, settings, suborder_id, actor=user.username, **kw)
    session.flush()
    return SubOrderOut.model_validate(so)


@router.post(
    "/{suborder_id}/accept", name="suborders.accept", response_model=SubOrderOut, responses=_ERR
)
def accept_route(
    suborder_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.accept")),
) -> SubOrderOut:
    """签收."""
    return _act(accept, session, settings, user, suborder_id, department=handler_department(user))


@router.post(
    "/{suborder_id}/reply", name="suborders.reply", response_model=SubOrderOut, responses=_ERR
)
def reply_route(
    suborder_id: RowId,
    body: ReplyIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.reply")),
) -> SubOrderOut:
    """回复; the ticket resolves when every live sub-order has replied."""
    return _act(
        reply, session, settings, user, suborder_id,
        text=body.text, department=handler_department(user),
    )  # fmt: skip


@router.post(
    "/{suborder_id}/return", name="suborders.return", response_model=SubOrderOut, responses=_ERR
)
def return_route(
    suborder_id: RowId,
    body: ReturnIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.return")),
) -> SubOrderOut:
    """退回 to the dispatcher, with a reason."""
    return _act(
        return_suborder, session, settings, user, suborder_id,
        reason=body.reason, department=handler_department(user),
    )  # fmt: skip


@router.post(
    "/{suborder_id}/extension",
    name="suborders.extension",
    response_model=SubOrderOut,
    responses=_ERR,
)
def extension_route(
    suborder_id: RowId,
    body: ExtensionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.extension")),
) -> SubOrderOut:
    """延期申请: amount + unit, or until."""
    return _act(
        request_extension, session, settings, user, suborder_id,
        reason=body.reason, amount=body.amount, unit=body.unit, until=body.until,
        department=handler_department(user),
    )  # fmt: skip


@router.post(
    "/{suborder_id}/extension/decision",
    name="suborders.extension_decision",
    response_model=SubOrderOut,
    responses=_ERR,
)
def extension_decision_route(
    suborder_id: RowId,
    body: ExtensionDecisionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.extension_decision")),
) -> SubOrderOut:
    """Approve (moves the deadline) or reject an extension request."""
    return _act(
        decide_extension, session, settings, user, suborder_id,
        approve=body.approve, note=body.note,
    )  # fmt: skip


@router.post(
    "/{suborder_id}/close-return",
    name="suborders.close_return",
    response_model=SubOrderOut,
    responses=_ERR,
)
def close_return_route(
    suborder_id: RowId,
    body: ReasonIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.close_return")),
) -> SubOrderOut:
    """A return ("not ours") looked at and closed with a reason, no other department needed: the
    ticket resolves once every live sub-order has replied. (Re-dispatching handles it too.)"""
    return _act(close_return, session, settings, user, suborder_id, reason=body.reason)


@router.post(
    "/{suborder_id}/release",
    name="suborders.release",
    response_model=SubOrderOut,
    responses=_ERR,
)
def release_route(
    suborder_id: RowId,
    body: ReasonIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("suborders.release")),
) -> SubOrderOut:
    """解除协办: an assisting department let go; the lead's reply can resolve without it."""
    return _act(release_suborder, session, settings, user, suborder_id, reason=body.reason)
