"""`callcenter recordings …`: pick up what the PBX wrote, and retention, from the command line.

The bridge process sweeps on its own (callcenter/call_audio.py); these commands are for a machine
where the bridge does not run next to the spool, for a cron job, and for an operator after an
outage. Registered in callcenter/cli.py.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

recordings_app = typer.Typer(
    help="Recordings: import MixMonitor files and voicemails from the PBX spool; retention.",
    no_args_is_help=True,
)


@recordings_app.command("sweep")
def sweep(
    server: Annotated[
        list[str] | None, typer.Option(help="PBX name(s) from CALLCENTER_ASTERISK; default: all.")
    ] = None,
) -> None:
    """Import finished recordings and voicemails, link them to their calls' tickets, queue the
    transcriptions, file tickets for voicemail calls past their grace period. Prints JSON."""
    from callcenter.spool_sweep import Sweeper
    from config.database import make_engine
    from config.settings import Settings

    settings = Settings()
    chosen = [a for a in settings.asterisk if not server or a.name in server]
    if server and len(chosen) != len(set(server)):
        known = ", ".join(a.name for a in settings.asterisk)
        raise typer.BadParameter(f"unknown PBX name; configured: {known}", param_hint="--server")
    engine = make_engine(settings.resolved_database_url)
    out = {}
    try:
        for a in chosen:
            if not a.spool_dir:
                typer.echo(
                    f"{a.name}: no spool_dir configured; only waiting voicemail calls", err=True
                )
            out[a.name] = Sweeper(settings, a).run_once(engine).as_dict()
    finally:
        engine.dispose()
    typer.echo(json.dumps(out, ensure_ascii=False))


@recordings_app.command("purge")
def purge() -> None:
    """Delete recording files past their retention (config recordings.yaml); rows stay."""
    from config.database import make_engine, session_scope
    from config.settings import Settings
    from recordings import purge_expired

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            n = len(purge_expired(s, settings))
    finally:
        engine.dispose()
    typer.echo(json.dumps({"purged": n}))
