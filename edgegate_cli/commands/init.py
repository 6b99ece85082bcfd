"""`edgegate init`: create .edgegate/ in the current directory."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def init(ctx: typer.Context, json_: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Create a project home (.edgegate/) in the current directory, with its state and store."""
    from ..store.home import init_home
    from ..store.state import record_audit
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out, init_home(out.ctx.settings.home), create=True)
    record_audit(ws.db, "init", "home_created", {"path": str(ws.home.path)})
    out.emit({"home": str(ws.home.path), "state": str(ws.home.db_path)},
                lambda out, r: out.line(f"Initialised EdgeGate home at {r['home']}"))
