"""The `edgegate` root command: global options, sub-command mounting, and the one place that
turns exceptions into exit codes. Keep the top level light: `--help` must not import heavy modules.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from . import __version__
from .commands import bundle, cas, gate, gc, init, keys, pack, probe, run, runs, status, verify
from .errors import EdgeGateError, ExitCode
from .ui.output import CTX


class ErrorMappingGroup(TyperGroup):
    """Turns an EdgeGateError raised anywhere below into one stderr line and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeGateError as err:
            if CTX.debug:
                raise
            from .ui.output import error

            error(err)
            raise typer.Exit(int(err.exit_code)) from None


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
    home: str = typer.Option(None, "--home", metavar="DIR", help="State directory (default: "
                             "$EDGEGATE_HOME, else nearest .edgegate/, else the user data dir)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more on stderr, including the home used."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Decide, with evidence, whether an edge AI model is fit to ship to Snapdragon devices."""
    from .store.home import set_explicit_home

    set_explicit_home(home)
    CTX.verbose = verbose
    CTX.debug = debug


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


def main() -> None:
    """Console-script entry point: maps unexpected failures to exit 4 and a closed pipe to 141."""
    try:
        app()
    except BrokenPipeError:
        # `edgegate ... | head`: point stdout at devnull so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(ExitCode.BROKEN_PIPE))
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # the catch-all that keeps tracebacks out of CI logs
        if CTX.debug or "--debug" in sys.argv:
            raise
        from .redaction import redact

        sys.stderr.write(redact(f"Internal error: {type(exc).__name__}: {exc} "
                                "(a bug in EdgeGate; rerun with --debug for the traceback)") + "\n")
        sys.exit(int(ExitCode.INTERNAL))


if __name__ == "__main__":
    main()
