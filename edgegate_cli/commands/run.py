"""`edgegate run PIPELINE`: measure a model on a device matrix and gate it."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def run(
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Pipeline file (YAML or JSON)."),
    model: str = typer.Option(None, "--model", metavar="PATH",
                              help="Model to run instead of the pipeline's model.path."),
    wait: bool = typer.Option(False, "--wait", help="If another run holds this home, wait for it instead of failing."),
    json_: bool = typer.Option(False, "--json", help="Print the outcome as one JSON document."),
) -> None:
    """Run PIPELINE's model on its devices (1 warmup + N repeats), evaluate its gates, exit 0/1/3.

    Exit codes: 0 passed, 1 a required gate failed, 2 invalid input, 3 run error (flaky or missing
    metric, device failure, timeout, another run active).
    """
    from .. import output, render
    from ..errors import ExitCode
    from ..pipeline import load_pipeline
    from ..runner import execute_run
    from . import open_workspace

    output.set_json(json_)
    spec = load_pipeline(pipeline, model_override=model)
    ws = open_workspace()
    steps = len(spec.devices) * (spec.run_policy.warmup + spec.run_policy.repeats)
    with output.progress(f"Running {spec.name} on {', '.join(spec.devices)}", total=steps) as advance:
        outcome = execute_run(ws, spec, advance, wait=wait)
    output.emit(outcome, lambda o: render.run_outcome(o.model_dump(mode="json")))
    raise typer.Exit(int({"passed": ExitCode.OK, "failed": ExitCode.GATES_FAILED}.get(outcome.verdict,
                                                                                       ExitCode.RUN_ERROR)))
