"""Group commit for the web's intakes: concurrent ticket creations share one transaction.

Why: an intake's cost is mostly fixed per transaction and per statement (BEGIN, COMMIT, the
day's number counter, SQLAlchemy's per-execute work), and on SQLite every writer queues on one
lock anyway. So each web process has one intake writer thread. It takes every creation waiting
when it becomes free (none is held back on a timer: alone, a creation goes through at once), then
1. prepares them: reads their users in one SELECT, parses the bodies and classifies them together
   (`ticketing.prepare_many`), with no write transaction open, so SQLite's write lock is never
   held while the classifier computes;
2. writes them in one transaction with a fixed number of statements (`ticketing.write_drafts`)
   and answers each request after COMMIT: a 201 means "stored".
Under load the batches grow by themselves, and 32 threads no longer fight for the GIL and the
writer lock. (A second thread preparing the next batch while one is written was measured: no
gain on SQLite, where the GIL is the limit, and none on PostgreSQL sharing the machine's cores.)

Each request still gets exactly its own outcome, in the order the API promises: 401/403 when the
token's user is gone, deactivated, revoked or not allowed (read when its batch is prepared, as a
per-request dependency would), then 422 for an invalid body (parsed here, so that order holds),
then the ticket or the TicketingError that refused it. A refusal writes nothing and does not
disturb its neighbours. Should the shared transaction fail for any other reason, every intake of
the batch is written alone, so one poisoned intake costs only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from agent_console.deps import Bearer, check_role, check_user
from agent_console.errors import ApiError
from agent_console.roles import may_name_departments
from config.database import make_engine, readonly, session_scope
from config.settings import Settings
from ticketing import Draft, Ticket, TicketIn, User, prepare_many, write_drafts

log = structlog.get_logger("agent_console.intake")

MAX_BATCH = 64
_STOP = None


@dataclass(slots=True)
class _Item:
    body: bytes
    bearer: Bearer
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    draft: Draft | None = None  # set by _prepare when the item is good to write
    value: Any = None  # the outcome, handed to the event loop once the whole batch is done
    error: BaseException | None = None
    answered: bool = False
    idempotency_key: str | None = None  # the request's Idempotency-Key header


class IntakeBatcher:
    """One writer thread; `await batcher.submit(body, bearer)` → `serialise(ticket)`."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        serialise: Callable[[Ticket], Any],
        *,
        max_batch: int = MAX_BATCH,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self.engine, self.settings = engine, settings
        self._db = _writer_engine(engine)  # what the writer thread reads and writes through
        self._reader = _reader(self._db)
        self.serialise = serialise  # runs in the writer thread, off the event loop
        self.max_batch = max_batch
        self.observe = observe  # told each written batch's size and seconds (metrics)
        self._incoming: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._thread.start()

    async def submit(self, body: bytes, bearer: Bearer, idempotency_key: str | None = None) -> Any:
        """The raw JSON body of a TicketIn, from the holder of `bearer` (a repeated
        `idempotency_key` answers the first ticket, see ticketing.intake_write)."""
        if self._closed:
            raise RuntimeError("intake writer is shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        item = _Item(body, bearer, loop, future, idempotency_key=idempotency_key)
        self._incoming.put(item)
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._incoming.put(_STOP)
        self._thread.join(timeout)
        if self._db is not self.engine:
            self._db.dispose()

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._incoming.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._incoming.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            started = time.perf_counter()
            try:
                ready = self._prepare(batch)
                if ready:
                    self._write(ready)
            except BaseException as e:  # e.g. the database away: answer everyone, go on
                log.warning("intake_batch_failed", batch=len(batch), exc_info=True)
                for it in batch:
                    _resolve(it, error=e)
            _answer(batch)
            if self.observe is not None:
                self.observe(len(batch), time.perf_counter() - started)
        _refuse_late(self._incoming)

    def _prepare(self, batch: list[_Item]) -> list[_Item]:
        """Authorise, parse and classify, with no write transaction open; answers the refused
        items, returns the rest."""
        users = self._users(sorted({it.bearer.user_id for it in batch}))
        accepted: list[_Item] = []
        items: list[tuple[TicketIn | dict[str, Any], str]] = []
        for it in batch:
            try:
                username = _authorise(users.get(it.bearer.user_id), it.bearer)
                data = _parse(it.body)
                _check_departments(users[it.bearer.user_id].role, data)
            except (ApiError, RequestValidationError) as e:
                _resolve(it, error=e)
                continue
            accepted.append(it)
            items.append((data, username))
        ready: list[_Item] = []
        keys = [it.idempotency_key for it in accepted]
        drafts = prepare_many(items, validated=True, idempotency_keys=keys)
        for it, draft in zip(accepted, drafts, strict=True):
            if isinstance(draft, Draft):
                it.draft = draft
                ready.append(it)
            else:
                _resolve(it, error=draft)
        return ready

    def _users(self, ids: list[int]) -> dict[int, Any]:
        """The batch's users by id: the first statement of a batch, so the one that finds a
        pooled connection dead (the database restarted). The pool has then been emptied, and
        the read goes once more on a fresh connection."""
        try:
            return self._read_users(ids)
        except DBAPIError as e:
            if not e.connection_invalidated:
                raise
            return self._read_users(ids)

    def _read_users(self, ids: list[int]) -> dict[int, Any]:
        with self._reader.connect() as conn:
            return {row.id: row for row in conn.execute(_USERS, {"ids": ids})}

    def _write(self, batch: list[_Item]) -> None:
        try:
            with session_scope(self._db) as session:
                # _prepare set every item's draft (the others were answered there)
                drafts = [cast(Draft, it.draft) for it in batch]
                results = write_drafts(session, self.settings, drafts)
        except Exception as e:
            if len(batch) == 1:
                _resolve(batch[0], error=e)
                return
            log.warning("intake_batch_retried_one_by_one", batch=len(batch), exc_info=True)
            for it in batch:
                self._write([it])
            return
        for it, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                _resolve(it, error=result)
                continue
            try:
                value = self.serialise(result)
            except Exception as e:
                _resolve(it, error=e)
                continue
            _resolve(it, value=value)


def _writer_engine(engine: Engine) -> Engine:
    """PostgreSQL: the writer thread's own pool, without the ping per checkout.

    The app's engine pings each connection it hands out (pool_pre_ping), one round trip; the
    writer checks out twice per batch, so that was ~9 % of its time under load (py-spy). Here a
    dead connection shows itself as an error instead, which invalidates the pool: the batch's
    read is tried once more on a fresh connection (_users), and a failed write is retried intake
    by intake (_write). SQLite keeps the app's engine: its writer lock is per engine."""
    if engine.dialect.name != "postgresql":
        return engine
    url = engine.url.render_as_string(hide_password=False)
    return make_engine(url, pool_pre_ping=False, pool_size=1, max_overflow=2)


def _reader(engine: Engine) -> Engine:
    """The users read: SQLite's shared (deferred) transaction; on PostgreSQL, autocommit, which
    spares the BEGIN and ROLLBACK round trips around one SELECT."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return readonly(engine)


_users_c = User.__table__.c  # type: ignore[attr-defined]
_USERS = select(
    _users_c.id,
    _users_c.username,
    _users_c.role,
    _users_c.active,
    _users_c.token_version,
).where(_users_c.id.in_(bindparam("ids", expanding=True)))


def _authorise(row: Any, bearer: Bearer) -> str:
    """The username behind the token, by deps.require's own checks: 401, then 403 by role."""
    user = check_user(row, bearer.token_version)
    check_role(user, bearer.roles)
    return str(user.username)


def _check_departments(role: str, data: TicketIn) -> None:
    """Departments named at intake dispatch the ticket: only roles that may dispatch may name
    them (roles.may_name_departments); others leave routing to the classifier/dispatcher."""
    if data.departments and not may_name_departments(role):
        raise ApiError(
            403,
            "当前角色无权派单：受理时不能指定承办部门，请交由派单员派单",
            code="dispatch_forbidden",
            details={"role": role, "field": "departments"},
        )


def _parse(body: bytes) -> TicketIn:
    """The body as FastAPI would have validated it (errors located under "body")."""
    try:
        return TicketIn.model_validate_json(body)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err.get("loc", ()))} for err in e.errors(include_url=False)]
        ) from None


def _refuse_late(incoming: queue.SimpleQueue[_Item | None]) -> None:
    """Anything that slipped in behind the stop signal is answered, not left hanging."""
    while True:
        try:
            late = incoming.get_nowait()
        except queue.Empty:
            return
        if late is not _STOP:
            _resolve(late, error=RuntimeError("intake writer is shut down"))
            _answer([late])


def _resolve(it: _Item, *, value: Any = None, error: BaseException | None = None) -> None:
    it.value, it.error, it.answered = value, error, True


def _answer(batch: list[_Item]) -> None:
    """Hand a batch's outcomes to their event loops: one wake-up per loop, not one per request
    (each call_soon_threadsafe writes to the loop's self-pipe, a system call and a GIL hand-off)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
    for it in batch:
        if not it.answered:  # cannot happen; should it ever, the request fails instead of hanging
            _resolve(it, error=RuntimeError("intake writer left this creation unanswered"))
        by_loop.setdefault(it.loop, []).append(it)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that event loop has closed (a test client's)
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[_Item]) -> None:
    for it in items:
        if it.future.done():  # the client went away; the ticket stands regardless
            continue
        if it.error is not None:
            it.future.set_exception(it.error)
        else:
            it.future.set_result(it.value)
