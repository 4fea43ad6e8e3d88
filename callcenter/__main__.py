"""`python -m callcenter …`: the same CLI as the `callcenter` command."""

from callcenter.cli import app

app(prog_name="callcenter")
