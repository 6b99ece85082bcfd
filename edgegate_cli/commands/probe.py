"""`edgegate probe`: find out what a backend can really measure, from real probe runs."""

from __future__ import annotations

import typer

app = typer.Typer(help="Probe a backend: record devices, capabilities and the metric mapping.",
                  invoke_without_command=True)


@app.callback()
def probe(
    ctx: typer.Context,
    backend: str = typer.Option("local", "--backend", help="Backend to probe: local or qaihub."),
    json_: bool = typer.Option(False, "--json", help="Print capabilities and mapping as one JSON document."),
) -> None:
    """Run the probe models on a backend, store every raw payload, and derive the metric mapping.

    A metric is stable once it was extracted from at least 2 probe runs; `run` gates only on
    metrics the stored mapping says are available.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .. import output, render
    from ..probe import probe_backend
    from . import open_workspace

    output.set_json(json_)
    ws = open_workspace()
    with output.progress(f"Probing the {backend} backend") as advance:
        report = probe_backend(ws, backend, advance)
    output.emit(report, lambda r: render.probe_report(r.model_dump(mode="json")))
