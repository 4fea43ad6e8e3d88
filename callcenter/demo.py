"""`callcenter demo`: the whole hotline on one machine with NO real PBX — a labelled SIMULATION.

Why it exists: a newcomer (or a reviewer) should see calls, queues, agents and tickets move without
an Asterisk. The replaying AMI peer (callcenter.ami.replay) serves captured Asterisk 22 traffic on a
loopback port and the real bridge ingests it (callcenter.bridge.run_simulation): live state goes to
Redis, finished calls become call records, tickets and callback tasks in the database — the real
code paths. Beside it, the real FastAGI IVR server answers one simulated caller per scenario
(ivr.agi_sim stands in for Asterisk's res_agi) pressing the key the captured caller pressed.

The module is the orchestration; its parts are callcenter.demo_fixtures (the captures),
callcenter.demo_data (the demo database's rows) and callcenter.demo_display (the terminal).

Everything runs on embedded defaults in its own data folder (./var/demo): its own SQLite file,
embedded Redis unless CALLCENTER_REDIS_URL is set (then under the "<namespace>-demo" key prefix),
so a demo never writes simulated calls into a production database or wallboard. The live
snapshot carries `simulation: true` in the simulated server's meta (Publisher.meta), which is
what the web side sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.panel import Panel

from callcenter.demo_data import recordings_line, ticket_rows
from callcenter.demo_display import (
    BANNER_EN,
    BANNER_ZH,
    SIM_TAG,
    LiveDisplay,
    tickets_table,
)
from callcenter.demo_fixtures import (
    DemoError,
    captured_ivr_keys,
    demo_spool,
    find_fixtures,
    scenario_names,
)
from config.settings import DEFAULTS_DIR, AsteriskServer, Settings

DEFAULT_SCENARIOS = (
    "answered",
    "abandoned",
    "voicemail",
    "transfer",
    "fastagi",
    "sip-hold",
)
DEFAULT_SPEED = 5.0
SIMULATED_SERVER = "simulated-pbx"  # the name run_simulation gives the replaying peer


@dataclass
class DemoOptions:
    scenarios: list[str] = field(default_factory=lambda: list(DEFAULT_SCENARIOS))
    fixtures: Path | None = None
    data_dir: Path = Path("var/demo")
    loop: bool = False
    speed: float | None = DEFAULT_SPEED  # None or 0: as fast as possible
    web: bool = False
    duration: float | None = None  # seconds; None: until the replay ends (or Ctrl-C with --web)
    host: str = "127.0.0.1"
    port: int = 8000


# The captures' agents and supervisor are Local channels into an `agents` context (the test PBX
# of ../shared/asterisk has no phones), where the shipped defaults name PJSIP phones.
CAPTURE_PHONE = "Local/{ext}@agents"


def _yaml(settings: Settings, name: str) -> dict[str, Any]:
    return yaml.safe_load(settings.config_file(name).read_text(encoding="utf-8")) or {}


def _demo_config(base: Settings, data_dir: Path) -> Path:
    """The demo's own config dir: the operator's files, with the agent's and the supervisor's
    phones named as in the captures, so that an agent logging in as 8001 is the agent the
    replayed calls ring (the screen-pop matches on that name)."""
    out = data_dir / "config"
    out.mkdir(parents=True, exist_ok=True)
    if base.config_dir.resolve() not in (out, DEFAULTS_DIR.resolve()):  # else: defaults
        for f in base.config_dir.glob("*.yaml"):
            shutil.copyfile(f, out / f.name)
    console = _yaml(base, "console.yaml")
    console["interface_template"] = CAPTURE_PHONE
    wallboard = _yaml(base, "wallboard.yaml")
    wallboard.setdefault("spy", {})["phone_template"] = CAPTURE_PHONE
    for name, cfg in (("console.yaml", console), ("wallboard.yaml", wallboard)):
        (out / name).write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return out


def demo_settings(base: Settings, data_dir: Path, redis_url: str) -> Settings:
    data_dir = data_dir.resolve()
    return base.model_copy(
        update={
            "config_dir": _demo_config(base, data_dir),
            "data_dir": data_dir,
            "database_url": f"sqlite:///{data_dir / 'callcenter.db'}",
            "redis_url": redis_url,
            "redis_namespace": f"{base.redis_namespace}-demo",
            "simulation": True,  # the demo's tickets say 模拟
            "asterisk": [AsteriskServer(name=SIMULATED_SERVER, spool_dir=data_dir / "pbx-spool")],
        }
    )


# ----- the run ----------------------------------------------------------------------------------
async def _ivr_call(settings: Settings, host: str, port: int, keys: list[str], closed: bool):
    """One simulated caller through the real FastAGI server (ivr.agi_sim plays Asterisk)."""
    from ivr import DEFAULT_AGI_ENV as DEFAULT_ENV
    from ivr import SimulatedAsterisk

    env = dict(DEFAULT_ENV, agi_request=f"agi://{host}:{port}/ivr")
    if closed:  # the captured voicemail call came after hours: force that branch
        env["agi_arg_2"] = "mode=closed"
    sim = SimulatedAsterisk(host, port, env=env, keys=keys or [None], timeout=10)
    return await sim.run()


async def _replay(
    settings: Settings,
    opts: DemoOptions,
    fixtures: Path,
    scenarios: list[str],
    console: Console,
    stop: asyncio.Event,
) -> list[dict[str, Any]]:
    import redis
    import redis.asyncio as aioredis

    from callcenter.bridge import run_simulation
    from callcenter.live import load_snapshot
    from config.database import make_engine
    from ivr import AgiServer

    url = str(settings.redis_url)  # demo_settings always sets one
    aredis = aioredis.from_url(url)
    sredis = redis.Redis.from_url(url, socket_timeout=5)
    engine = make_engine(settings.resolved_database_url)
    agi = AgiServer(settings, host="127.0.0.1", port=0)
    agi_host, agi_port = await agi.start()
    console.print(f"{SIM_TAG} FastAGI IVR on agi://{agi_host}:{agi_port}/ivr (simulated callers)")
    ivr_tasks: set[asyncio.Task] = set()
    results: list[dict[str, Any]] = []

    def snapshot() -> dict[str, Any]:
        try:
            return load_snapshot(sredis, settings)
        except Exception as e:  # the display must never end the demo
            return {"calls": [], "queues": [], "agents": [], "error": str(e)}

    def on_progress(name: str, bridge) -> None:
        if bridge.publisher is not None:  # what the web side sees in the live snapshot meta
            bridge.publisher.meta["simulation"] = True
            bridge.publisher.meta["simulation_notice"] = f"{BANNER_ZH} {BANNER_EN}"
            bridge.publisher.meta["scenario"] = name
        console.print(f"{SIM_TAG} 回放 replaying {name}")
        keys = captured_ivr_keys(fixtures, name)[:1]  # the first menu choice of the call
        task = asyncio.ensure_future(
            _ivr_call(settings, agi_host, agi_port, keys, closed=name.endswith("voicemail"))
        )
        task.add_done_callback(functools.partial(_report_ivr, console, name, keys))
        ivr_tasks.add(task)
        task.add_done_callback(ivr_tasks.discard)

    display = LiveDisplay(console, snapshot)
    started = time.monotonic()
    try:
        with display:

            async def refresher() -> None:
                while True:
                    await asyncio.to_thread(display.refresh)
                    await asyncio.sleep(0.5)

            ticker = asyncio.ensure_future(refresher())
            try:
                while not stop.is_set():
                    for name in scenarios:
                        if stop.is_set():
                            break
                        run = asyncio.ensure_future(
                            run_simulation(
                                settings,
                                fixtures,
                                [name],
                                speed=opts.speed or None,
                                redis=aredis,
                                engine=engine,
                                on_progress=on_progress,
                            )
                        )
                        stopper = asyncio.ensure_future(stop.wait())
                        await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
                        stopper.cancel()
                        if not run.done():
                            run.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await run
                            break
                        results.extend(run.result())
                        if ivr_tasks:
                            await asyncio.wait(set(ivr_tasks), timeout=15)
                        await asyncio.to_thread(display.after_scenario)
                    if not opts.loop:
                        break
                # --web keeps the console up until Ctrl-C or --duration
                if opts.web and not stop.is_set():
                    console.print(f"{SIM_TAG} 回放结束，网页继续运行，Ctrl-C 退出 (replay done)")
                    await stop.wait()
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        console.print(
            f"{SIM_TAG} replayed {len(results)} scenario(s) in {time.monotonic() - started:.1f} s"
        )
        return results
    finally:
        for t in list(ivr_tasks):
            t.cancel()
        await agi.close()
        await aredis.aclose()
        sredis.close()
        engine.dispose()


def _report_ivr(console: Console, scenario: str, keys: list[str], task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        console.print(f"{SIM_TAG} IVR caller for {scenario} failed: {type(exc).__name__}: {exc}")
        return
    v = task.result().variables
    console.print(
        f"{SIM_TAG} IVR 语音导航 ({scenario}): keys {'-'.join(keys) or '(none)'} → "
        f"{v.get('IVR_RESULT', '?')} {v.get('IVR_QUEUE', '')} path={v.get('IVR_PATH', '')}"
    )


def run_demo(base: Settings, opts: DemoOptions, console: Console | None = None) -> int:
    """The whole demo; returns the exit code. DemoError for bad options (before anything runs)."""
    from callcenter.run import (
        Child,
        ChildSpec,
        ensure_first_admin,
        prepare_database,
        start_child,
        stop_children,
    )
    from config.logging import configure_logging

    # a pipe or log file gets wide tables instead of 80 truncated columns
    console = console or (Console() if Console().is_terminal else Console(width=160))
    fixtures = find_fixtures(opts.fixtures)
    scenarios = scenario_names(opts.scenarios, fixtures)
    if opts.speed is not None and opts.speed < 0:
        raise DemoError("--speed must be ≥ 0 (0 = as fast as possible)")

    banner = Panel(f"{BANNER_ZH}\n{BANNER_EN}", title=SIM_TAG, style="bold yellow")
    console.print(banner)
    data_dir = opts.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    embedded = None
    redis_url = base.redis_url or os.environ.get("CALLCENTER_REDIS_URL")
    if not redis_url:
        from config.redis import start_embedded

        embedded, redis_url = start_embedded(data_dir)
    settings = demo_settings(base, data_dir, redis_url)
    if not opts.web:  # no worker runs to transcribe: the bridge files voicemail tickets itself
        settings = settings.model_copy(update={"asr_model_path": None})
    if "CALLCENTER_LOG_LEVEL" not in os.environ:  # the tables are the demo's output, not logs
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    console.print(f"{SIM_TAG} data: {data_dir}  db: {settings.resolved_database_url}")

    stop: asyncio.Event | None = None
    children: list[Child] = []
    code = 0
    try:
        prepare_database(settings)
        ensure_first_admin(settings, echo=console.print)
        spool = settings.asterisk[0].spool_dir  # demo_settings always sets one
        if spool is not None:
            demo_spool(fixtures, spool, time.time())
        if opts.web:
            env = os.environ.copy()
            env.update(
                CALLCENTER_DATA_DIR=str(data_dir),
                CALLCENTER_DATABASE_URL=settings.resolved_database_url,
                CALLCENTER_REDIS_URL=redis_url,
                CALLCENTER_REDIS_NAMESPACE=settings.redis_namespace,
                CALLCENTER_SIMULATION="1",
                CALLCENTER_CONFIG_DIR=str(settings.config_dir),  # the captures' phone names
            )
            specs = [
                ChildSpec("worker", ["worker"]),
                ChildSpec("web", ["web", "--host", opts.host, "--port", str(opts.port)]),
            ]
            for spec in specs:
                c = Child(spec)
                start_child(c, env)
                children.append(c)
            pids = " ".join(f"{c.spec.name}={c.proc.pid}" for c in children if c.proc)
            console.print(f"{SIM_TAG} web console: http://{opts.host}:{opts.port}/ ({pids})")

        async def main() -> list[dict[str, Any]]:
            nonlocal stop
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if opts.duration is not None:
                loop.call_later(opts.duration, stop.set)

            async def watch_children() -> None:
                nonlocal code
                while children:
                    for c in children:
                        if c.proc is not None and c.proc.poll() is not None:
                            console.print(f"{SIM_TAG} {c.spec.name} exited ({c.proc.returncode})")
                            code = c.proc.returncode or 1
                            stop.set()
                            return
                    await asyncio.sleep(0.5)

            watcher = asyncio.ensure_future(watch_children())
            try:
                return await _replay(settings, opts, fixtures, scenarios, console, stop)
            finally:
                watcher.cancel()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

        results = asyncio.run(main())
        rows = ticket_rows(settings)
        console.print(tickets_table(rows))
        stored = sum(r.get("calls_stored", 0) for r in results)
        console.print(
            f"{SIM_TAG} {stored} call record(s) stored this run; "
            f"{sum(1 for r in rows if r['ticket'] != '-')} ticket(s) and "
            f"{sum(1 for r in rows if r['callback'] != '-')} callback task(s) in the demo database. "
            "(A capture replayed again is the same call: stored once.)"
        )
        console.print(f"{SIM_TAG} {recordings_line(settings)}")
    finally:
        worst = stop_children(children)
        code = code or worst
        if embedded is not None:
            embedded.shutdown()
        console.print(f"{SIM_TAG} 演示结束 demo finished")
    return code
