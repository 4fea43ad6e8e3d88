"""The `callcenter` command (console script callcenter.cli:app).

Sub-commands live in Typer sub-apps. To add a group from another package, write a `typer.Typer()`
in that package's own module and register it here with ONE line in the block marked
"sub-apps" below, e.g.:

    app.add_typer(demo_app, name="demo")

Every command and group has --help. Heavy imports happen inside the commands so `--help` is fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from config.settings import Settings

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
# ----------------------------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings()


@app.command()
def run(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default settings.host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default settings.port).")] = None,
) -> None:
    """Start everything on embedded defaults (`make run`): migrations, departments, first admin,
    embedded Redis when CALLCENTER_REDIS_URL is unset, an RQ worker and the web server."""
    from callcenter.run import run_all

    raise typer.Exit(run_all(_settings(), host=host, port=port))


@app.command()
def web(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default settings.host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default settings.port).")] = None,
) -> None:
    """Serve the web app/API with uvicorn only (needs a migrated DB and CALLCENTER_REDIS_URL)."""
    from callcenter.run import serve_web

    serve_web(_settings(), host=host, port=port)


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Drain the queues, then exit.")] = False,
) -> None:
    """Run an RQ worker on all namespaced queues (asr, notify, handoff, default)."""
    from callcenter.run import run_worker

    run_worker(_settings(), burst=burst)


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
    from sqlmodel import select

    from callcenter.run import hash_password
    from config.database import make_engine, session_scope
    from ticketing.models import Department, Role, User

    if role not in {r.value for r in Role}:
        _fail(f"unknown role {role!r}; one of: {', '.join(r.value for r in Role)}")
    if role == Role.handler and not department:
        _fail("a handler needs --department CODE")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        _fail("password must be at least 8 characters")

    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            if (
                department is not None
                and not s.exec(select(Department).where(Department.code == department)).first()
            ):
                _fail(f"unknown department {department!r} (run `callcenter db upgrade` first?)")
            if s.exec(select(User).where(User.username == name)).first():
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
    finally:
        engine.dispose()


@user_app.command("list")
def user_list() -> None:
    """List users: id, name, role, department, active."""
    from sqlmodel import select

    from config.database import make_engine, session_scope
    from ticketing.models import User

    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            for u in s.exec(select(User).order_by(User.id)):
                state = "active" if u.active else "inactive"
                typer.echo(f"{u.id}\t{u.username}\t{u.role}\t{u.department_code or '-'}\t{state}")
    finally:
        engine.dispose()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


if __name__ == "__main__":
    app()
