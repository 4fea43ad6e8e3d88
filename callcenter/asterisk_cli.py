"""`callcenter asterisk …`: the PBX-side files of a deployment, written from its settings.

Registered in callcenter/cli.py with: app.add_typer(asterisk_app, name="asterisk")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

asterisk_app = typer.Typer(
    help="Asterisk configuration written from the project's settings.", no_args_is_help=True
)


@asterisk_app.callback()
def asterisk() -> None:
    """Asterisk configuration written from the project's settings."""


@asterisk_app.command("write-config")
def write_config_cmd(
    out: Annotated[Path, typer.Option(help="Folder to write the .conf files into.")],
    server: Annotated[
        str | None, typer.Option(help="Which CALLCENTER_ASTERISK entry (default: the first).")
    ] = None,
) -> None:
    """Write extensions/manager/queues/voicemail/cdr .conf files for one PBX into OUT."""
    from callcenter.asterisk_config import AsteriskConfigError, write_config
    from config.settings import Settings

    try:
        written = write_config(Settings(), out, server)
    except AsteriskConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for w in written:
        typer.echo(f"{w.path}" + (f"  ({', '.join(w.changed)})" if w.changed else ""))
