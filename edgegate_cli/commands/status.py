"""`edgegate status`: where the home is and what it holds."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def status(ctx: typer.Context, json_: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Show the home in use, schema version, store size and the active run, if any."""
    from ..store.status import describe_status
    from . import open_workspace, start

    out = start(ctx, json_)
    report = describe_status(open_workspace(out, write=False))
    out.emit(report, lambda out, r: out.table(None, ["", ""], [
        ("home", f"{r['home']} (from {r['home_source']})"), ("schema version", r["schema_version"]),
        ("store", f"{r['cas_blobs']} blobs, {r['cas_bytes']:,} bytes"),
        ("runs", r["runs"]), ("active run", r["active_run"] or "none"),
    ]))
