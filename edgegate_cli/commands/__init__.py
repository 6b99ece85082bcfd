"""One thin module per subcommand: parse options, call one core function, render through `output`."""

from __future__ import annotations


def open_workspace():
    """The home for this invocation, opened and migrated; --verbose names it on stderr."""
    from .. import output
    from ..workspace import open_workspace as _open

    return _open(on_open=lambda home: output.verbose(f"home: {home.path} (from {home.source})"))


def write_ci_reports(result, junit: str | None, summary: str | None) -> None:
    """`--junit FILE` / `--summary FILE`: the CI reports of a run outcome or a re-evaluation (a pydantic model)."""
    if not (junit or summary):
        return
    from .. import output
    from ..ci_reports import write_reports

    for path in write_reports(result.model_dump(mode="json"), junit=junit, summary=summary):
        output.log(f"Wrote {path}", style=None)
