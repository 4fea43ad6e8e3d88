"""The `callcenter` command (console script callcenter.cli:app).

Sub-commands live in Typer sub-apps. To add a group from another package, write a `typer.Typer()`
in that package's own module and register it here with ONE line in the block marked
"sub-apps" below, e.g.:

    app.add_typer(demo_app, name="demo")

Every command and group has --help. Heavy imports happen inside the commands so `--help` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from asr import cli_app as asr_app
from asr import transcribe_command as transcribe_cmd
from callcenter.asterisk_cli import asterisk_app
from callcenter.bridge_cli import bridge_app
from callcenter.recordings_cli import recordings_app
from config.settings import Settings
from ivr import cli_app as agi_app

app = typer.Typer(
    name="callcenter",
    help="店小二 hotline call-center backend: run the service, manage the database and users.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
user_app = typer.Typer(
    help="Console users (agents, dispatchers, handlers, …).", no_args_is_help=True
)

# --- sub-apps: one add_typer line each --------------------------------------------------------
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(bridge_app, name="bridge")
app.add_typer(agi_app, name="agi")
app.add_typer(asr_app, name="asr")
app.add_typer(recordings_app, name="recordings")
app.add_typer(asterisk_app, name="asterisk")
app.command("transcribe")(transcribe_cmd)
# ----------------------------------------------------------------------------------------------


def _settings() -> Settings:
    """Settings for a command; the data dir and every file the command (and its children) will
    write there are made private first (config.datadir)."""
    from config.datadir import private_umask, secure_data_dir

    settings = Settings()
    private_umask()
    secure_data_dir(settings.data_dir)
    return settings


@app.command()
def run(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default settings.host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default settings.port).")] = None,
) -> None:
    """Web side only (`make run`): web server + RQ worker on embedded defaults, no PBX.

    Migrations, departments, first admin, embedded Redis when CALLCENTER_REDIS_URL is unset, an
    RQ worker and the web server.

    Every child (web, worker, scheduler, embedded Redis) is restarted with backoff when it dies.
    The data dir is locked: a second instance on it is refused (exit code 3) and touches nothing.
    Ctrl-C / SIGTERM stops everything; children die with this process even on SIGKILL.

    No PBX side: a fresh machine has no Asterisk. Next to a real Asterisk use `callcenter up`;
    to see calls move without one, `callcenter demo`."""
    from callcenter.run import run_all

    raise typer.Exit(run_all(_settings(), host=host, port=port))


@app.command()
def up(
    host: Annotated[
        str | None, typer.Option(help="Web listen address (default settings.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Web listen port (default settings.port).")
    ] = None,
    agi_host: Annotated[
        str | None, typer.Option(help="FastAGI listen address (default settings.agi_host).")
    ] = None,
    agi_port: Annotated[
        int | None, typer.Option(help="FastAGI listen port (default settings.agi_port, 4573).")
    ] = None,
) -> None:
    """Everything beside a real Asterisk: `run` PLUS the AMI bridge and the FastAGI IVR server.

    The bridge logs in to each PBX in CALLCENTER_ASTERISK, a JSON list such as
    '[{"name": "pbx1", "host": "127.0.0.1", "port": 5038, "username": "callcenter",
    "secret": "…"}]'.

    Children that die are restarted with backoff (the same supervisor as `run`, same data-dir
    lock); a crash loop stops everything with a non-zero exit code. Ctrl-C / SIGTERM stops all
    children cleanly."""
    from callcenter.run import up_all

    raise typer.Exit(
        up_all(_settings(), host=host, port=port, agi_host=agi_host, agi_port=agi_port)
    )


@app.command()
def demo(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Captured scenario to replay (repeatable): answered, abandoned, voicemail, "
            "transfer, fastagi, sip-hold. Default: all of them."
        ),
    ] = None,
    loop: Annotated[bool, typer.Option(help="Replay the scenarios again and again.")] = False,
    speed: Annotated[
        float, typer.Option(help="Replay speed: 1 = real time, 5 = five times faster, 0 = at once.")
    ] = 5.0,
    web: Annotated[
        bool, typer.Option(help="Also start the web console/API (and an RQ worker) on --port.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (with --loop or --web).")
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="The demo's own data folder (SQLite, embedded Redis).")
    ] = Path("var/demo"),
    fixtures: Annotated[
        Path | None,
        typer.Option(
            help="AMI captures folder (default $CALLCENTER_SHARED_DIR/fixtures/ami or "
            "../shared/fixtures/ami)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Web listen address (with --web).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Web listen port (with --web).")] = 8000,
) -> None:
    """SIMULATION (模拟演示): replayed Asterisk traffic instead of a PBX; watch calls and tickets.

    Captured Asterisk traffic is replayed in place of a PBX, so you can watch calls, queues,
    agents and tickets move. No Asterisk needed.

    The real bridge, IVR (FastAGI, driven by a simulated caller), ticketing and database run on
    embedded defaults in --data-dir (its own SQLite; embedded Redis unless CALLCENTER_REDIS_URL).
    Everything it shows and stores is labelled as a simulation."""
    from callcenter.demo import DemoError, DemoOptions, run_demo

    opts = DemoOptions(
        scenarios=scenario or DemoOptions().scenarios,
        fixtures=fixtures,
        data_dir=data_dir,
        loop=loop,
        speed=speed,
        web=web,
        duration=duration,
        host=host,
        port=port,
    )
    try:
        code = run_demo(_settings(), opts)
    except DemoError as e:
        _fail(str(e))
    raise typer.Exit(code)


@app.command()
def web(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default settings.host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default settings.port).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Web processes on the port (default CALLCENTER_WEB_WORKERS, else 1 on SQLite "
            "and one per core, up to 4, on PostgreSQL).",
        ),
    ] = None,
) -> None:
    """Serve the web app/API with uvicorn only (needs a migrated DB and CALLCENTER_REDIS_URL)."""
    from callcenter.run import serve_web

    serve_web(_settings(), host=host, port=port, workers=workers)


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Drain the queues, then exit.")] = False,
) -> None:
    """Run an RQ worker on all namespaced queues (asr, notify, handoff, default)."""
    from callcenter.run import run_worker

    run_worker(_settings(), burst=burst)


@app.command()
def scheduler() -> None:
    """Put the periodic jobs on the queues (§13 warning scan …); one per deployment."""
    from callcenter.scheduler import run_scheduler

    run_scheduler(_settings())


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Apply migrations (to all heads by default) and sync departments from config."""
    from callcenter.run import prepare_database
    from callcenter.schema import upgrade

    settings = _settings()
    if revision == "heads":
        prepare_database(settings)
    else:
        upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin|dispatcher|agent|supervisor|handler|leader")],
    department: Annotated[
        str | None, typer.Option(help="Department code (required for handler).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (first line).")
    ] = False,
    display_name: Annotated[str, typer.Option(help="Name shown in the console.")] = "",
) -> None:
    """Create a console user. The password is read from stdin or prompted; never echoed."""
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import select

    from config.database import make_engine, session_scope
    from ticketing import (
        Department,
        Role,
        User,
        hash_password,
        password_problem,
        username_taken,
    )

    if role not in {r.value for r in Role}:
        _fail(f"unknown role {role!r}; one of: {', '.join(r.value for r in Role)}")
    if role == Role.handler and not department:
        _fail("a handler needs --department CODE")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password)  # the web's rule: ticketing.users
    if problem:
        _fail(problem)

    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            if (
                department is not None
                and not s.exec(select(Department).where(Department.code == department)).first()
            ):
                _fail(f"unknown department {department!r} (run `callcenter db upgrade` first?)")
            if username_taken(s, name):  # whatever its case, as on the web
                _fail(f"user {name!r} already exists")
            user = User(
                username=name,
                display_name=display_name,
                password_hash=hash_password(password),
                role=role,
                department_code=department,
            )
            s.add(user)
            s.flush()
            typer.echo(f"created user {name} (id {user.id}, role {role})")
    except IntegrityError:  # created meanwhile by another hand
        _fail(f"user {name!r} already exists")
    finally:
        engine.dispose()


@user_app.command("list")
def user_list() -> None:
    """List users: id, name, role, department, active."""
    from sqlmodel import col, select

    from config.database import make_engine, session_scope
    from ticketing import User

    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            for u in s.exec(select(User).order_by(col(User.id))):
                state = "active" if u.active else "inactive"
                typer.echo(f"{u.id}\t{u.username}\t{u.role}\t{u.department_code or '-'}\t{state}")
    finally:
        engine.dispose()


@app.command()
def outbox(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 10,
    phone: Annotated[
        str | None, typer.Option(help="Only texts to this number (as typed, e.g. 13912345678).")
    ] = None,
) -> None:
    """The latest texts (SMS) and their state. With the default gateway (`outbox`) nothing leaves
    the machine: this is where a notice's link or a 进度查询 code is read on a test install."""
    from sqlmodel import col, select

    from config.database import make_engine, session_scope
    from ticketing import InvalidInput, OutboxMessage, mask_phone, normalise_phone

    query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
    if phone:
        try:
            query = query.where(OutboxMessage.to_phone == normalise_phone(phone))
        except InvalidInput as e:
            _fail(str(e))
    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            for m in s.exec(query):
                when = m.created_at.strftime("%Y-%m-%d %H:%M:%S")
                typer.echo(f"{m.id}\t{when}Z\t{mask_phone(m.to_phone)}\t{m.status}\t{m.body}")
    finally:
        engine.dispose()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


if __name__ == "__main__":
    app()
