"""`callcenter bridge simulate`: the real bridge against the replaying peer, from the CLI."""

from __future__ import annotations

import json

from replay_server import AMI_DIR
from sqlmodel import Session, select
from typer.testing import CliRunner

from callcenter.bridge_cli import bridge_app
from callcenter.models import CallRecord


def test_simulate_command_stores_calls(settings, engine, monkeypatch):
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CALLCENTER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("CALLCENTER_REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CALLCENTER_LOG_LEVEL", "WARNING")
    args = ["simulate", "--fixtures", str(AMI_DIR)]
    args += ["--scenario", "scenario-answered", "--scenario", "scenario-voicemail"]
    r = CliRunner().invoke(bridge_app, args)
    assert r.exit_code == 0, r.output
    assert "SIMULATION" in r.output
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert [x["scenario"] for x in rows] == ["scenario-answered", "scenario-voicemail"]
    assert all(x["calls_stored"] == 1 and x["malformed"] == 0 for x in rows)
    with Session(engine) as s:
        got = {c.call_id: c.disposition for c in s.exec(select(CallRecord)).all()}
    assert got == {"1795569321.0": "answered", "1795569383.14": "voicemail"}


def test_simulate_rejects_missing_fixtures(tmp_path):
    r = CliRunner().invoke(bridge_app, ["simulate", "--fixtures", str(tmp_path / "nope")])
    assert r.exit_code != 0 and "no AMI captures" in r.output


async def test_run_bridge_process_entry(settings, engine):
    """run_bridge(settings): one bridge per configured Asterisk, until told to stop."""
    import asyncio

    from replay_server import SECRET, make_server

    from callcenter.bridge import run_bridge
    from config.settings import AsteriskServer

    server = await make_server("scenario-fastagi")
    cfg = settings.model_copy(
        update={
            "asterisk": [
                AsteriskServer(name="pbx-a", host="127.0.0.1", port=server.port, secret=SECRET)
            ]
        }
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_bridge(cfg, stop=stop))
    try:
        for _ in range(1000):
            with Session(engine) as s:
                rows = s.exec(select(CallRecord)).all()
            if rows:
                break
            await asyncio.sleep(0.02)
        (row,) = rows
        assert row.server == "pbx-a" and row.ivr_path == "2"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await server.close()
