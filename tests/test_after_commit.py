"""config.after_commit: work queued in a transaction runs once, after the outermost commit; a
SAVEPOINT's release or rollback neither runs it early nor drops it (the notify copy used to)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from config.after_commit import after_commit


def _engine(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ac.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


def test_runs_after_the_outer_commit_not_a_savepoint(tmp_path: Path) -> None:
    ran: list[list[int]] = []
    seen_rows: list[int] = []
    engine = _engine(tmp_path)

    def action(items: list[int]) -> None:
        ran.append(items)
        with engine.connect() as c:  # another connection: the rows must be committed
            seen_rows.append(c.execute(text("SELECT count(*) FROM t")).scalar_one())

    with Session(engine) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(s, "k", [1], action)
        with s.begin_nested():  # released savepoint: not the commit
            s.execute(text("INSERT INTO t VALUES (2)"))
            after_commit(s, "k", [2], action)
        nested = s.begin_nested()
        after_commit(s, "k", [3], action)
        nested.rollback()  # an inner rollback keeps the outer transaction's work
        assert ran == []
        s.commit()
    assert ran == [[1, 2, 3]]
    assert seen_rows == [2]


def test_dropped_on_rollback_and_fresh_after(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    with Session(_engine(tmp_path)) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))  # queued work follows a write
        after_commit(s, "k", ["lost"], ran.append)
        s.rollback()
        s.execute(text("INSERT INTO t VALUES (2)"))
        after_commit(s, "k", ["kept"], ran.append)
        s.commit()
        s.commit()  # nothing queued: nothing runs again
    assert ran == [["kept"]]
