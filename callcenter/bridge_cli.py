"""`callcenter bridge …`: the AMI bridge process, and a simulation against captured traffic.

Registered in callcenter/cli.py with: app.add_typer(bridge_app, name="bridge")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

bridge_app = typer.Typer(
    help="AMI bridge: Asterisk events → live state (Redis) → call records and tickets.",
    no_args_is_help=True,
)

DEFAULT_SCENARIOS = [
    "scenario-answered",
    "scenario-abandoned",
    "scenario-voicemail",
    "scenario-transfer",
    "scenario-fastagi",
    "scenario-sip-hold",
]


def _logging(settings) -> None:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@bridge_app.command("run")
def run() -> None:
    """Connect to every Asterisk in settings.asterisk (CALLCENTER_ASTERISK) and run until Ctrl-C."""
    from callcenter.bridge import run_bridge
    from config.settings import Settings

    settings = Settings()
    _logging(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_bridge(settings))


@bridge_app.command("simulate")
def simulate(
    scenario: Annotated[
        list[str] | None, typer.Option(help="Transcript name(s); default: every call scenario.")
    ] = None,
    fixtures: Annotated[
        Path | None,
        typer.Option(help="Directory of the AMI captures (default ../shared/fixtures/ami)."),
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="1.0 = real time; omit for as fast as possible.")
    ] = None,
) -> None:
    """SIMULATION: replay captured Asterisk traffic through the real bridge (no PBX needed)."""
    import redis.asyncio as aioredis

    from callcenter.bridge import run_simulation
    from config.database import make_engine
    from config.redis import redis_url
    from config.settings import Settings

    settings = Settings()
    _logging(settings)
    fixtures = (
        fixtures
        or Path(
            os.environ.get("CALLCENTER_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
        )
        / "fixtures"
        / "ami"
    )
    if not fixtures.is_dir():
        raise typer.BadParameter(f"no AMI captures in {fixtures}", param_hint="--fixtures")
    typer.echo("*** SIMULATION: a replaying peer stands in for Asterisk (captured traffic) ***")

    async def go():
        r = aioredis.from_url(redis_url(settings))
        engine = make_engine(settings.resolved_database_url)
        try:
            return await run_simulation(
                settings,
                fixtures,
                scenario or DEFAULT_SCENARIOS,
                speed=speed,
                redis=r,
                engine=engine,
                on_progress=lambda name, _b: typer.echo(f"[simulation] replaying {name}"),
            )
        finally:
            await r.aclose()
            engine.dispose()

    for row in asyncio.run(go()):
        typer.echo(json.dumps(row, ensure_ascii=False))
