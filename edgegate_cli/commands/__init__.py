"""One thin module per subcommand: parse options, call one core function, render through `output`."""

from __future__ import annotations


def open_workspace():
    """The home for this invocation, opened and migrated; --verbose names it on stderr."""
    from .. import output
    from ..workspace import open_workspace as _open

    return _open(on_open=lambda home: output.verbose(f"home: {home.path} (from {home.source})"))
