"""commands/params.py: option values skip pydantic where they need no validating, and come out exactly as
typer's own coercion makes them, errors included."""

from __future__ import annotations

import pytest
import typer
import typer.main
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from edgegate_cli.commands.params import PlainValues, fast_coercion


def _params():
    app = typer.Typer()

    @app.command()
    def cmd(name: str = typer.Option(None, "--name"), limit: int = typer.Option(20, "--limit", min=1, max=500),
            count: int = typer.Option(3, "--count"), tags: list[str] = typer.Option(None, "--tag"),
            flag: bool = typer.Option(False, "--flag")) -> None:
        pass

    command = typer.main.get_command(app)
    return command, {p.name: p for p in command.params}


VALUES = {
    "name": [None, "", "plain", " spaced ", "ünï", b"bytes"],
    "limit": [None, 20, "1", "500", "0", "501", "-3", "abc", " 7", "007", "+5", "1_0", "2.0", "99999999999999999999"],
    "count": [None, 3, "-12", "0", "12", "x"],
    "tags": [None, (), ("a",), ("a", "b"), ["c"]],
    "flag": [False, True, "true", "0"],
}


def _outcome(runtime, value, param, ctx):
    try:
        return "ok", runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("name", list(VALUES))
def test_plain_values_agree_with_typers_coercion(name):
    """For every value, PlainValues returns what typer's pydantic coercion returns, or raises its message."""
    command, params = _params()
    param = params[name]
    ctx = command.make_context("cmd", [], resilient_parsing=True)
    for value in VALUES[name]:
        assert _outcome(PlainValues(param.type_descriptor), value, param, ctx) == \
            _outcome(build_runtime_param(param.type_descriptor), value, param, ctx), value


def test_fast_coercion_covers_every_parameter_and_the_help_option():
    """Every parameter of the tree, the lazily made --help option included, gets PlainValues."""
    command, params = _params()
    fast_coercion(command)
    help_option = command.get_help_option(command.make_context("cmd", [], resilient_parsing=True))
    assert all(isinstance(p._runtime_param, PlainValues) for p in [*params.values(), help_option])


def test_a_bad_number_still_gets_typers_message(invoke):
    """Through the CLI: an out-of-range or malformed --limit is typer's usage error (exit 2)."""
    result = invoke("runs", "list", "--limit", "0", expect=2)
    assert "Invalid value for '--limit': Input should be greater than or equal to 1" in result.stderr
    result = invoke("runs", "list", "--limit", "x", expect=2)
    assert "Input should be a valid integer, unable to parse string as an integer" in result.stderr
    assert invoke("runs", "list", "--limit", "3", "--json").stdout == '{\n  "runs": []\n}\n'
