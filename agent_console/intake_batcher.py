"""Group commit for the web's intakes: concurrent ticket creations share one transaction.

Why: an intake's cost is mostly fixed per transaction and per statement (BEGIN, COMMIT, the
day's number counter, SQLAlchemy's per-execute work), and on SQLite every writer queues on one
lock anyway. So one writer thread per web process takes every intake waiting when it becomes free
(none are held back on a timer: alone, an intake is written at once) and hands them to
`ticketing.submit_many`, which classifies them together and writes them with a fixed number of
statements. Under load the batches grow by themselves, and 32 threads no longer fight for the GIL
and the writer lock.

Each request still gets exactly its own outcome, in the order the API promises: 401/403 when the
token's user is gone, deactivated, revoked or not allowed (checked here, inside the transaction
that writes, with one SELECT for the batch), then 422 for an invalid body (parsed here, so that
order holds), then the ticket or the TicketingError that refused it. A refusal writes nothing and
does not disturb its neighbours. Should the shared transaction fail
for any other reason, every intake of the batch is retried alone, so one poisoned intake costs
only itself. The response is awaited until COMMIT, as before: a 201 always means "stored".
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent_console.deps import Bearer, unauthorized
from agent_console.errors import ApiError
from config.database import session_scope
from config.settings import Settings
from ticketing import Ticket, TicketIn, User, submit_many

log = structlog.get_logger("agent_console.intake")

MAX_BATCH = 64


@dataclass(slots=True)
class _Item:
    body: bytes
    bearer: Bearer
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class IntakeBatcher:
    """One writer thread; `await batcher.submit(body, bearer)` → `serialise(ticket)`."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        serialise: Callable[[Ticket], Any],
        *,
        max_batch: int = MAX_BATCH,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.engine, self.settings = engine, settings
        self.serialise = serialise  # runs in the writer thread, off the event loop
        self.max_batch = max_batch
        self.observe = observe  # told each batch's size (a metric)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._closed = False
        self._thread.start()

    async def submit(self, body: bytes, bearer: Bearer) -> Any:
        """The raw JSON body of a TicketIn, from the holder of `bearer`."""
        if self._closed:
            raise RuntimeError("intake writer is shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Item(body, bearer, loop, future))
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            if self.observe is not None:
                self.observe(len(batch))
            try:
                self._write(batch)
            except BaseException as e:  # never let the thread die with requests waiting
                log.exception("intake_writer_failed", batch=len(batch))
                for it in batch:
                    _resolve(it, error=e)
        # anything that slipped in behind the stop signal is answered, not left hanging
        while True:
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                return
            if late is not None:
                _resolve(late, error=RuntimeError("intake writer is shut down"))

    def _write(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._transaction(batch)
        except Exception as e:
            if len(batch) == 1:
                _resolve(batch[0], error=e)
                return
            log.warning("intake_batch_retried_one_by_one", batch=len(batch), exc_info=True)
            for it in batch:
                self._write([it])
            return
        for it, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _resolve(it, error=outcome)
                continue
            try:
                value = self.serialise(outcome)
            except Exception as e:
                _resolve(it, error=e)
                continue
            _resolve(it, value=value)

    def _transaction(self, batch: list[_Item]) -> list[Ticket | Exception]:
        """Authorise, parse and submit the batch in one transaction: per item its ticket or the
        error to answer with. Raises (rolling back) only on an unexpected failure."""
        outcomes: list[Ticket | Exception | None] = [None] * len(batch)
        with session_scope(self.engine) as session:
            users = _users(session, {it.bearer.user_id for it in batch})
            items: list[tuple[TicketIn, str]] = []
            where: list[int] = []
            for i, it in enumerate(batch):
                try:
                    username = _authorise(users.get(it.bearer.user_id), it.bearer)
                    data = _parse(it.body)
                except (ApiError, RequestValidationError) as e:
                    outcomes[i] = e
                    continue
                items.append((data, username))
                where.append(i)
            if items:
                results = submit_many(session, items, settings=self.settings)
                for i, result in zip(where, results, strict=True):
                    outcomes[i] = result
        return outcomes  # type: ignore[return-value]


_users_c = User.__table__.c  # type: ignore[attr-defined]
_USERS = select(
    _users_c.id,
    _users_c.username,
    _users_c.role,
    _users_c.active,
    _users_c.token_version,
).where(_users_c.id.in_(bindparam("ids", expanding=True)))


def _users(session: Session, ids: set[int]) -> dict[int, Any]:
    return {row.id: row for row in session.connection().execute(_USERS, {"ids": sorted(ids)})}


def _authorise(row: Any, bearer: Bearer) -> str:
    """The username behind the token, as deps.require checks it: 401, then 403 by role."""
    if row is None or not row.active or row.token_version != bearer.token_version:
        raise unauthorized()
    if row.role not in bearer.roles:
        raise ApiError(403, "当前角色无权执行此操作", details={"role": row.role})
    return row.username


def _parse(body: bytes) -> TicketIn:
    """The body as FastAPI would have validated it (errors located under "body")."""
    try:
        return TicketIn.model_validate_json(body)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err.get("loc", ()))} for err in e.errors(include_url=False)]
        ) from None


def _resolve(it: _Item, *, value: Any = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if it.future.done():  # the client went away; the ticket stands regardless
            return
        if error is not None:
            it.future.set_exception(error)
        else:
            it.future.set_result(value)

    with contextlib.suppress(RuntimeError):  # that event loop has closed (a test client's)
        it.loop.call_soon_threadsafe(settle)
