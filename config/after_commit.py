"""Work that must wait for the caller's commit (enqueue a job for rows it just wrote).

One helper for every "after the transaction" hook (hand-off deliveries, SMS, the ASR outbox), so
each is SAVEPOINT-correct the same way: a savepoint's release or rollback (begin_nested, as the
bridge and intake use) fires the same session events while the outer transaction is still open;
those are ignored, or the job would run before its row is visible, or the outer transaction's
pending work would be dropped by an inner rollback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


def after_commit(
    session: Session, key: str, items: Iterable[Any], action: Callable[[list[Any]], None]
) -> None:
    """Queue `items` under `key`; once the session's outermost transaction commits, call
    `action` with everything queued under `key` since (in order); drop it all on a rollback.
    `action` runs after the commit: it must catch and log its own errors (the rows are safe)."""
    info = session.info
    info.setdefault(key, []).extend(items)
    hooked = f"{key}.hooked"
    if info.get(hooked):
        return
    info[hooked] = True

    def committed(sess: Session) -> None:
        if sess.in_nested_transaction():  # a SAVEPOINT released, not the real commit
            return
        pending = sess.info.pop(key, None)
        if pending:
            action(pending)

    def rolled_back(sess: Session) -> None:
        if not sess.in_nested_transaction():
            sess.info.pop(key, None)

    event.listen(session, "after_commit", committed)
    event.listen(session, "after_rollback", rolled_back)
