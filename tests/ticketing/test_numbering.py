"""Ticket numbers: format, local day, rollback, and real concurrency (threads and processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import select

from config.database import session_scope
from config.settings import Settings
from ticketing.models import TicketCounter
from ticketing.numbering import local_day, next_number

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 2, 0)  # naive UTC = 10:00 in Shanghai


def test_format_and_prefix(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, ticket_prefix="DXE")
    with session_scope(engine) as s:
        assert next_number(s, settings, NOW) == "DXE-20261125-000001"
        assert next_number(s, settings, NOW) == "DXE-20261125-000002"
    other = Settings(data_dir=tmp_path, ticket_prefix="CB")
    with session_scope(engine) as s:
        assert next_number(s, other, NOW) == "CB-20261125-000003"  # one counter per day


def test_day_is_local_shanghai_time(engine, tmp_path):
    settings = Settings(data_dir=tmp_path)
    # 2026-11-24 16:30 UTC is already 00:30 on the 25th in Shanghai
    assert local_day(settings, datetime(2026, 11, 24, 16, 30)) == "20261125"
    assert local_day(settings, datetime(2026, 11, 24, 15, 59)) == "20261124"
    with session_scope(engine) as s:
        assert next_number(s, settings, datetime(2026, 11, 24, 15, 59)).endswith("20261124-000001")
        assert next_number(s, settings, datetime(2026, 11, 24, 16, 30)).endswith("20261125-000001")
        assert next_number(s, settings, datetime(2026, 11, 24, 23, 0)).endswith("20261125-000002")


def test_rolled_back_number_is_reissued(engine, tmp_path):
    """The bump is part of the intake transaction: no gaps from failed intakes."""
    settings = Settings(data_dir=tmp_path)
    with session_scope(engine) as s:
        assert next_number(s, settings, NOW).endswith("-000001")
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        assert next_number(s, settings, NOW).endswith("-000002")
        raise RuntimeError("intake failed")
    with session_scope(engine) as s:
        assert next_number(s, settings, NOW).endswith("-000002")
        counter = s.exec(select(TicketCounter).where(TicketCounter.day == "20261125")).one()
        assert counter.value == 2


def _assert_gap_free(numbers: list[str], expected: int) -> None:
    assert len(numbers) == expected
    assert len(set(numbers)) == expected, "duplicate ticket numbers"
    seqs = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert seqs == list(range(1, expected + 1))


def test_concurrent_threads(engine, tmp_path):
    settings = Settings(data_dir=tmp_path)
    threads, per_thread = 8, 25
    out: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work():
        try:
            barrier.wait()
            for _ in range(per_thread):
                with session_scope(engine) as s:
                    n = next_number(s, settings, NOW)
                with lock:
                    out.append(n)
        except BaseException as e:  # surfaced below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    _assert_gap_free(out, threads * per_thread)


CHILD = r"""
import json, sys
from datetime import datetime
from config.database import make_engine, session_scope
from config.settings import Settings
from ticketing.numbering import next_number
url, n = sys.argv[1], int(sys.argv[2])
settings = Settings(database_url=url)
engine = make_engine(url)
now = datetime(2026, 11, 25, 2, 0)
out = []
for _ in range(n):
    with session_scope(engine) as s:
        out.append(next_number(s, settings, now))
print(json.dumps(out))
"""


def test_concurrent_processes(db_url, engine):
    procs, per_proc = 4, 30
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url, str(per_proc)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    numbers: list[str] = []
    for p in children:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        numbers.extend(json.loads(stdout.strip().splitlines()[-1]))
    _assert_gap_free(numbers, procs * per_proc)
