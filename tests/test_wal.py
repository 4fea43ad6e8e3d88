"""config.wal: the web process checkpoints SQLite's WAL in a thread of its own, so COMMITs stay
short; with the thread stopped, the raised automatic threshold still bounds the log."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from sqlalchemy import text

from config.database import make_engine
from config.wal import WalCheckpointer, start_for


def _fill(engine, rows: int, width: int = 40) -> None:
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(rows // 100):
        with engine.begin() as c:
            c.execute(
                text("INSERT INTO t (v) VALUES (:v)"),
                [{"v": f"{i}-{j}" * width} for j in range(100)],
            )


def _log_bytes(path) -> int:
    return os.path.getsize(f"{path}-wal")


def test_the_log_is_copied_into_the_database_by_the_thread_not_by_commits(tmp_path):
    path = tmp_path / "w.db"
    engine = make_engine(f"sqlite:///{path}", wal_autocheckpoint=100_000)
    try:
        _fill(engine, 3000)
        # no COMMIT checkpointed: the rows are in the log, the database file is still tiny
        assert os.path.getsize(path) < 64 * 1024
        assert _log_bytes(path) > 500 * 1024
        cp = start_for(engine)
        assert cp is not None
        try:
            deadline = time.monotonic() + 10
            while os.path.getsize(path) < 500 * 1024 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert os.path.getsize(path) >= 500 * 1024, "the checkpointer never copied the log"
            assert cp.rounds >= 1
            # writers go on while it runs, and every row is there
            _fill(engine, 1000)
            with engine.connect() as c:
                assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 4000
        finally:
            cp.stop()
        assert not cp._thread.is_alive()
    finally:
        engine.dispose()
    # the database file alone (log removed) holds what was checkpointed
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM t").fetchone()[0] == 4000
    raw.close()


def test_commits_checkpoint_themselves_at_the_default_threshold(tmp_path):
    """The other processes (worker, bridge, CLI) keep SQLite's own checkpoints."""
    path = tmp_path / "d.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        _fill(engine, 3000, width=500)  # ~6 MB of log: past SQLite's 1,000 pages
        assert os.path.getsize(path) >= 2 * 1024 * 1024
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_no_thread_for_a_database_without_a_file(url):
    engine = make_engine(url)
    try:
        assert start_for(engine) is None
    finally:
        engine.dispose()


def test_an_unopenable_database_stops_the_thread_quietly(tmp_path):
    cp = WalCheckpointer(str(tmp_path / "missing-dir" / "x.db"), interval_s=0.01).start()
    cp._thread.join(5)
    assert not cp._thread.is_alive() and cp.rounds == 0
    cp.stop()


def test_the_web_app_runs_one_while_it_serves(settings, engine):
    import threading

    from fastapi.testclient import TestClient

    from agent_console import create_app

    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no WAL of ours to checkpoint")

    def running() -> int:
        return sum(t.name == "wal-checkpoint" for t in threading.enumerate())

    before = running()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert running() == before + 1
    assert running() == before
