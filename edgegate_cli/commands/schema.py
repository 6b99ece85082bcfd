"""`edgegate schema list|show`: the JSON Schemas of the files a user writes, wherever EdgeGate is installed."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Show the JSON Schemas of pipelines, PromptPacks and other input files.")


@app.command("list")
def list_(ctx: typer.Context, json_: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """List the schemas and where this installation keeps them."""
    from ..spec.schemas import schema_files
    from . import start

    out = start(ctx, json_)
    files = schema_files()
    out.emit({"schemas": {name: str(path) for name, path in files.items()}},
             lambda out, doc: out.table(None, ["name", "file"], sorted(doc["schemas"].items())))


@app.command()
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="pipeline, promptpack, model_metadata, "
                               "workspace_capabilities or metric_mapping."),
    json_: bool = typer.Option(False, "--json", help="Print the schema document (the same JSON)."),
) -> None:
    """Print a schema (draft 2020-12), e.g. `edgegate schema show pipeline > pipeline.schema.json`."""
    from ..spec.schemas import load_schema_named
    from . import start

    out = start(ctx, json_)
    out.emit(load_schema_named(name), lambda out, doc: out.line(out.dumps(doc), multiline=True))
