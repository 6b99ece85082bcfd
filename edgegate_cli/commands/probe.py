"""`edgegate probe`: find out what a backend can really measure, from real probe runs."""

from __future__ import annotations

import typer

app = typer.Typer(help="Probe a backend: record devices, capabilities and the metric mapping.",
                  invoke_without_command=True)

API_URL_HELP = "AI Hub API URL (default: $EDGEGATE_QAIHUB_API_URL, else the client.ini's, else AI Hub)."


@app.callback()
def probe(
    ctx: typer.Context,
    backend: str = typer.Option("local", "--backend", help="Backend to probe: local or qaihub."),
    device: list[str] = typer.Option(None, "--device", metavar="NAME", help="qaihub: an AI Hub device to probe on "
                                     "(repeatable, at most 5; see `edgegate probe devices`)."),
    api_url: str = typer.Option(None, "--qaihub-api-url", metavar="URL", help=API_URL_HELP),
    json_: bool = typer.Option(False, "--json", help="Print capabilities and mapping as one JSON document."),
) -> None:
    """Run the probe models on a backend, store every raw payload, and derive the metric mapping.

    A metric is stable once it was extracted from at least 2 probe runs; `run` gates only on
    metrics the stored mapping says are available. On qaihub each --device runs the three probe
    models through compile, profile and inference (about 9 jobs, a few device minutes each).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..backends.registry import get_backend
    from ..runs.probe import probe_backend
    from ..ui import render
    from . import open_workspace, start

    out = start(ctx, json_)
    out.ctx.settings.qaihub_api_url = api_url
    ws = open_workspace(out)
    with out.progress(f"Probing the {backend} backend") as advance:
        report = probe_backend(ws, backend, advance, backend=get_backend(backend, out.ctx, ws=ws, devices=device))
    out.emit(report, lambda out, r: render.probe_report(out, r.model_dump(mode="json")))


@app.command("devices")
def devices(
    ctx: typer.Context,
    backend: str = typer.Option("qaihub", "--backend", help="Backend whose devices to list: qaihub or local."),
    api_url: str = typer.Option(None, "--qaihub-api-url", metavar="URL", help=API_URL_HELP),
    json_: bool = typer.Option(False, "--json", help="Print the devices as one JSON document."),
) -> None:
    """List the devices a backend can run on, with chipset, OS and frameworks (AI Hub's live list)."""
    from ..backends.registry import list_devices
    from . import start

    out = start(ctx, json_)
    out.ctx.settings.qaihub_api_url = api_url
    found = list_devices(backend, out.ctx)
    out.emit({"backend": backend, "devices": [d.model_dump() for d in found]}, lambda out, doc: out.table(
        f"{len(found)} {backend} devices", ["name", "os", "chipset", "frameworks"],
        [(d.name, d.os, d.chipset, ", ".join(d.frameworks)) for d in found]))
