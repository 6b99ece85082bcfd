"""`edgegate runs list|show`: run history."""

from __future__ import annotations

import typer

app = typer.Typer(help="List and show past runs.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    pipeline: str = typer.Option(None, "--pipeline", help="Only runs of this pipeline name."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs, newest first."),
    json_: bool = typer.Option(False, "--json", help="Print the runs as one JSON document."),
) -> None:
    """List runs, newest first: id, pipeline, backend, status, error code, model, time."""
    from ..runs.history import summarize_runs
    from . import open_workspace, start

    out = start(ctx, json_)
    runs = summarize_runs(open_workspace(out, write=False), pipeline=pipeline, limit=limit)
    out.emit({"runs": runs}, lambda out, r: out.table(None, ["run", "pipeline", "backend", "status", "error",
                                                              "model", "created"],
        [(x["id"], x["pipeline"], x["backend"], x["status"], x["error_code"] or "", x["model_name"] or "",
          x["created_at"]) for x in r["runs"]]))


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix)."),
    json_: bool = typer.Option(False, "--json", help="Print the run as one JSON document."),
) -> None:
    """Show one run: its state transitions, metrics, gates and verdict."""
    from ..runs.history import describe_run
    from ..ui import render
    from . import open_workspace, start

    out = start(ctx, json_)
    detail = describe_run(open_workspace(out, write=False), run_id)
    out.emit(detail, render.run_detail)
