"""The `agi` Typer sub-app the main CLI mounts."""

from __future__ import annotations

from typer.testing import CliRunner

from ivr.cli import app


def test_agi_serve_help():
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0
    assert "--port" in r.output and "--host" in r.output


def test_agi_without_command_shows_usage_and_does_not_serve():
    r = CliRunner().invoke(app, [])  # a one-command Typer app would run `serve` here
    assert "serve" in r.output and "Usage" in r.output
