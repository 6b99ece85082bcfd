"""`edgegate gate baseline set | show | clear`: pin the baseline relative gates compare against."""

from __future__ import annotations

import typer

app = typer.Typer(help="Pin, show or clear the baseline run of a pipeline's relative gates, per device.",
                  no_args_is_help=True)


def _table(out, pins, title: str) -> None:
    out.table(title, ["pipeline", "device", "baseline run", "pinned at"],
                 [(p.pipeline, p.device, p.run_id, p.created_at) for p in pins])


@app.command("set")
def set_(
    ctx: typer.Context,
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Pipeline name (as in its file's `name`)."),
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix) of that pipeline."),
    device: str = typer.Option(None, "--device", metavar="D", help="Pin for this device only (default: every "
                               "device RUN measured)."),
    force: bool = typer.Option(False, "--force", help="Pin RUN even though it did not pass."),
    json_: bool = typer.Option(False, "--json", help="Print the pins as one JSON document."),
) -> None:
    """Pin RUN as the baseline of PIPELINE's relative gates; it takes precedence over their `baseline`."""
    from ..gating.baselines import set_pin
    from . import open_workspace, start

    out = start(ctx, json_)
    pins = set_pin(open_workspace(out), pipeline, run_id, device, force=force)
    out.emit({"pins": [p.model_dump() for p in pins]}, lambda out, _: _table(out, pins, "Pinned"))


@app.command()
def show(
    ctx: typer.Context,
    pipeline: str = typer.Argument(None, metavar="[PIPELINE]", help="Only this pipeline's pins."),
    json_: bool = typer.Option(False, "--json", help="Print the pins as one JSON document."),
) -> None:
    """List the pinned baselines (of PIPELINE, or of every pipeline)."""
    from ..gating.baselines import list_pins
    from . import open_workspace, start

    out = start(ctx, json_)
    pins = list_pins(open_workspace(out, write=False), pipeline)
    out.emit({"pins": [p.model_dump() for p in pins]}, lambda out, _: _table(out, pins, "Pinned baselines"))


@app.command()
def clear(
    ctx: typer.Context,
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Pipeline name."),
    device: str = typer.Option(None, "--device", metavar="D", help="Unpin this device only (default: all)."),
    json_: bool = typer.Option(False, "--json", help="Print what was unpinned as one JSON document."),
) -> None:
    """Unpin PIPELINE's baseline (on D only, with --device); its gates fall back to their own `baseline`."""
    from ..gating.baselines import clear_pins
    from . import open_workspace, start

    out = start(ctx, json_)
    pins = clear_pins(open_workspace(out), pipeline, device)
    out.emit({"unpinned": [p.model_dump() for p in pins]}, lambda out, _: _table(out, pins, "Unpinned"))
