"""One thin module per subcommand: parse options, call one core function, render through `ui`."""

from __future__ import annotations

import typer

# Options that several commands share, declared once so their help reads the same everywhere.
JUNIT_OPTION = typer.Option(None, "--junit", metavar="FILE",
                            help="Write a JUnit XML report (one testcase per gate x device).")
SUMMARY_OPTION = typer.Option(None, "--summary", metavar="FILE",
                              help="Write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).")


def start(cli_ctx: typer.Context, json_: bool = False):
    """A command's first call: take this invocation's Context (which `cli.root` put on the root click
    context), record the command's --json choice (so errors, too, come out as JSON), and return its Output."""
    from ..ui.output import Output

    ctx = cli_ctx.find_root().obj
    ctx.output.json = bool(json_)
    return Output(ctx)


def open_workspace(out, home=None, *, write: bool = True, pipeline: str | None = None, create: bool = False):
    """The home for this invocation (or `home`), opened and migrated. --verbose names it on stderr; so does one
    line whenever it is not the home beside `pipeline` or was taken from the per-user data directory.
    `write=False` for commands that only read (they work on a read-only home); `create` for `init`."""
    from ..store.home import home_note
    from ..store.workspace import open_workspace as _open

    def on_open(home) -> None:
        out.verbose(f"home: {home.path} (from {home.source})")
        note = home_note(home, pipeline)
        if note:
            out.log(note, style=None)

    return _open(home, ctx=out.ctx, on_open=on_open, write=write, create=create)


def write_ci_reports(out, result, junit: str | None, summary: str | None) -> None:
    """`--junit FILE` / `--summary FILE`: the CI reports of a run outcome or a re-evaluation (a pydantic model)."""
    if not (junit or summary):
        return
    from ..ui.ci_reports import write_reports

    for path in write_reports(result.model_dump(mode="json"), junit=junit, summary=summary):
        out.log(f"Wrote {path}", style=None)
