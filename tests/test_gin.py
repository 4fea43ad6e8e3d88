"""config.gin: on PostgreSQL the scheduler process (one per deployment) flushes the ticket search
indexes' GIN pending lists in a thread of its own, so no intake INSERT has to; stopped, the
INSERTs flush again. Web processes run none (N web processes would be N cleaners)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from config.database import make_engine
from config.gin import GinCleaner, start_for

pytestmark = pytest.mark.postgres

INDEXES = ("ix_ticket_content_trgm", "ix_ticket_title_trgm")


@pytest.fixture
def pg_engine(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("GIN pending lists are PostgreSQL's")
    with engine.connect() as c:
        found = set(
            c.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'ticket'")).scalars()
        )
    if not set(INDEXES) <= found:
        pytest.skip("pg_trgm unavailable: no GIN search indexes")
    return engine


def _insert_tickets(engine, n: int, tag: str) -> None:
    """Plain rows with long Chinese text: a few hundred trigrams each into the pending lists."""
    rows = [
        {
            "number": f"GIN-{tag}-{i:06d}",
            "title": f"企业反映第{i}号营业执照变更登记办理进度{tag}",
            "content": f"{tag}第{i}件：" + "企业开办、社保缴纳、税务登记与不动产登记事项咨询" * 8,
        }
        for i in range(n)
    ]
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO ticket (number, channel, title, content, category, urgency, status,"
                " channel_data, warning, round, reopen_count, created_at, updated_at, deadline_at)"
                " VALUES (:number, 'web', :title, :content, '投诉咨询', '一般', 'pending_dispatch',"
                " '{}', 'none', 1, 0, now(), now(), now() + interval '5 days')"
            ),
            rows,
        )


def _pending_pages(engine) -> int:
    """Pages still waiting in the pending lists (flushing them while counting: used last)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        return sum(
            int(c.execute(text(f"SELECT gin_clean_pending_list('{ix}'::regclass)")).scalar_one())
            for ix in INDEXES
        )


def test_inserts_leave_pending_pages_that_the_thread_moves_into_the_index(pg_engine):
    _insert_tickets(pg_engine, 300, "a")
    assert _pending_pages(pg_engine) > 0, "no pending list to clean: the test proves nothing"

    _insert_tickets(pg_engine, 300, "b")
    cleaner = GinCleaner(pg_engine, interval_s=0.02).start()
    try:
        deadline = time.monotonic() + 10
        while cleaner.pages == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cleaner.pages > 0, "the cleaner never flushed the lists"
        # writers go on while it runs; every row stays findable through the index
        _insert_tickets(pg_engine, 200, "c")
        deadline = time.monotonic() + 10
        rounds = cleaner.rounds
        while cleaner.rounds < rounds + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        cleaner.stop()
    assert not cleaner._thread.is_alive()
    assert _pending_pages(pg_engine) == 0, "the cleaner left pages behind"
    with pg_engine.connect() as c:
        c.exec_driver_sql("SET enable_seqscan = off")
        found = c.execute(
            text("SELECT count(*) FROM ticket WHERE content ILIKE :q"), {"q": "%c第%件%"}
        ).scalar_one()
    assert found == 200


def test_the_indexes_are_found_not_named_and_fastupdate_off_is_left_alone(pg_engine):
    with pg_engine.begin() as c:
        c.exec_driver_sql(
            "CREATE INDEX ix_gin_test_nofast ON ticket USING gin (title gin_trgm_ops)"
            " WITH (fastupdate = off)"
        )
    try:
        from config.gin import _INDEXES

        with pg_engine.connect() as c:
            names = set(c.execute(_INDEXES).scalars())
        assert set(INDEXES) <= names
        assert "ix_gin_test_nofast" not in names
    finally:
        with pg_engine.begin() as c:
            c.exec_driver_sql("DROP INDEX ix_gin_test_nofast")


def test_the_server_going_away_is_survived(pg_engine, db_url):
    """Its connection killed under it, the thread says so once and reconnects next round."""
    cleaner = GinCleaner(pg_engine, interval_s=0.02).start()
    try:
        deadline = time.monotonic() + 10
        while cleaner.rounds == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        admin = make_engine(db_url)
        with admin.connect() as c:
            killed = c.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM"
                    " pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND query LIKE '%gin_clean_pending_list%'"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        rounds = cleaner.rounds
        _insert_tickets(pg_engine, 100, "d")
        deadline = time.monotonic() + 10
        while cleaner.rounds < rounds + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cleaner.rounds >= rounds + 3, "the cleaner did not come back"
        assert cleaner._thread.is_alive()
    finally:
        cleaner.stop()
    assert _pending_pages(pg_engine) == 0


def test_sqlite_gets_none(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert start_for(engine) is None
    finally:
        engine.dispose()


def test_the_scheduler_runs_one_and_the_web_app_none(settings, pg_engine):
    from fastapi.testclient import TestClient

    from agent_console import create_app
    from callcenter.scheduler import database_upkeep

    def running() -> int:
        return sum(t.name == "gin-clean" for t in threading.enumerate())

    before = running()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert running() == before
    with database_upkeep(settings) as cleaner:
        assert cleaner is not None
        assert running() == before + 1
    assert running() == before
