"""The `edgegate` root command: global options, sub-command mounting, and the one place that
turns exceptions into exit codes. Keep the top level light: `--help` must not import heavy modules.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from . import __version__
from .commands import (
    agent,
    bundle,
    cas,
    fleet,
    gate,
    gc,
    init,
    keys,
    pack,
    probe,
    publish,
    releases,
    rollout,
    run,
    runs,
    schema,
    status,
    verify,
)
from .commands.params import fast_coercion
from .context import Context
from .errors import EdgeGateError, ExitCode

INTERNAL_HINT = "a bug in EdgeGate; rerun with --debug for the traceback"


def _json_error(invocation: Context, code: str, message: str, hint: str | None, exit_code: int) -> None:
    """Under --json every error is also `{"error": …}` on stdout, so a script always gets a document."""
    if invocation.output.json:
        from .ui.output import Output

        sys.stdout.write(Output(invocation).dumps({"error": {"code": code, "message": message, "hint": hint,
                                                             "exit_code": exit_code}}) + "\n")
        sys.stdout.flush()


def exit_code_for(exc: BaseException, invocation: Context) -> int:
    """The one exception → exit code mapping, reporting on stderr as it goes (and on stdout under --json).
    `--debug` adds the traceback and never changes the code."""
    from .ui.output import Output, printable, write_stderr

    if isinstance(exc, BrokenPipeError):
        # `edgegate ... | head`: point stdout at devnull so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.BROKEN_PIPE)
    if invocation.output.debug:
        import traceback

        write_stderr("".join(traceback.format_exception(exc)))
    if isinstance(exc, KeyboardInterrupt):
        _json_error(invocation, "INTERRUPTED", "Interrupted.", None, int(ExitCode.INTERRUPTED))
        write_stderr("Interrupted.\n")
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, EdgeGateError):
        Output(invocation).error(exc)
        return int(exc.exit_code)
    message = invocation.secrets.redact(f"{type(exc).__name__}: {exc}")
    _json_error(invocation, "INTERNAL", message, INTERNAL_HINT, int(ExitCode.INTERNAL))
    write_stderr(printable(f"Internal error: {message} ({INTERNAL_HINT})") + "\n")
    return int(ExitCode.INTERNAL)


def _wants_json(args: list[str]) -> bool:
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class ErrorMappingGroup(TyperGroup):
    """Turns whatever a command raises into its exit code (`exit_code_for`), before typer's own handling
    (which would make a closed pipe exit 1 and hide our messages). Under --json, usage errors too come
    out as `{"error": …}` on stdout. Parameter values skip pydantic where they need no validating
    (`commands/params.py`)."""

    def make_context(self, *args, **kwargs):
        fast_coercion(self)  # here, not in __init__: typer adds the completion options after that
        return super().make_context(*args, **kwargs)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        if not _wants_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        from typer.core import _click

        invocation = extra.get("obj") or Context()
        invocation.output.json = True
        try:
            rv = super().main(argv, prog_name, complete_var, False, **{**extra, "obj": invocation})
            code = rv if isinstance(rv, int) else 0
        except _click.exceptions.ClickException as exc:
            from .ui.output import printable, write_stderr

            message = exc.format_message()
            _json_error(invocation, "USAGE_ERROR", message, "see --help", exc.exit_code)
            write_stderr(printable(f"Error [USAGE_ERROR]: {message} (see --help)") + "\n")
            code = exc.exit_code
        except _click.exceptions.Abort:
            code = int(ExitCode.INTERRUPTED)
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, *typer_exceptions()):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            raise typer.Exit(exit_code_for(exc, ctx.find_root().obj or Context())) from None


def typer_exceptions() -> tuple[type[BaseException], ...]:
    """typer's own exception bases (it vendors click): usage errors keep typer's message and exit 2."""
    from typer.core import _click
    from typer.exceptions import TyperException

    return _click.exceptions.ClickException, TyperException


app = typer.Typer(
    cls=ErrorMappingGroup,
    name="edgegate",
    help="Decide, with evidence, whether an edge AI model is fit to ship to Snapdragon devices.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgegate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: str = typer.Option(None, "--home", metavar="DIR", help="State directory (default: "
                             "$EDGEGATE_HOME, else nearest .edgegate/, else the user data dir)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more on stderr, including the home used."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr; errors only."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Decide, with evidence, whether an edge AI model is fit to ship to Snapdragon devices."""
    if ctx.obj is None:  # `main()` passes its Context; CliRunner and other callers get a fresh one
        ctx.obj = Context()
    invocation: Context = ctx.obj
    invocation.settings.home = home
    invocation.output.verbose = verbose
    invocation.output.quiet = quiet
    invocation.output.debug = debug


app.add_typer(init.app)
app.add_typer(status.app)
app.add_typer(probe.app, name="probe")
app.add_typer(run.app)
app.add_typer(runs.app, name="runs")
app.add_typer(gate.app, name="gate")
app.add_typer(gc.app)
app.add_typer(cas.app, name="cas")
app.add_typer(keys.app, name="keys")
app.add_typer(pack.app, name="pack")
app.add_typer(bundle.app, name="bundle")
app.add_typer(verify.app)
app.add_typer(publish.app)
app.add_typer(releases.app, name="releases")
app.add_typer(agent.app, name="agent")
app.add_typer(fleet.app, name="fleet")
app.add_typer(rollout.app, name="rollout")
app.add_typer(schema.app, name="schema")


def main() -> None:
    """Console-script entry point: whatever escapes the command group (it maps what commands raise)
    gets the same exit-code mapping."""
    invocation = Context()
    try:
        app(obj=invocation)
    except SystemExit:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        sys.exit(exit_code_for(exc, invocation))


if __name__ == "__main__":
    main()
