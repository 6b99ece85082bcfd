"""`edgegate gate check|explain RUN`: re-derive and explain a stored run's verdict."""

from __future__ import annotations

import typer

app = typer.Typer(help="Check or explain the gates of a stored run.", no_args_is_help=True)


@app.command()
def check(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix); see `edgegate runs list`."),
    json_: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Recompute RUN's verdict from its raw payloads, mapping, gates and policy; exit 0/1/3 by verdict.

    Exits 1 also when the recomputed verdict differs from the stored one (evidence does not agree).
    """
    from .. import output, render
    from ..errors import ExitCode, VerificationFailed
    from ..reevaluation import reevaluate_run
    from . import open_workspace

    output.set_json(json_)
    result = reevaluate_run(open_workspace(), run_id)
    if not result.agrees:
        raise VerificationFailed(f"run {result.run_id}: recomputed verdict {result.verdict} disagrees with the "
                                 f"stored {result.stored_verdict} (gates: {', '.join(result.mismatches) or 'none'})")
    output.emit(result, lambda r: (render.gate_table([g.model_dump() for g in r.evaluation.gates]),
                                   output.line(f"{r.verdict.upper()}: recomputed from raw payloads; agrees "
                                               f"with the stored verdict of run {r.run_id}")))
    raise typer.Exit(int({"passed": ExitCode.OK, "failed": ExitCode.GATES_FAILED}.get(result.verdict,
                                                                                      ExitCode.RUN_ERROR)))


@app.command()
def explain(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix)."),
    json_: bool = typer.Option(False, "--json", help="Print the explanation as one JSON document."),
) -> None:
    """Explain, per gate and device, the value, threshold, per-repeat values, CV and why it passed or not."""
    from .. import output, render
    from ..reevaluation import reevaluate_run
    from . import open_workspace

    output.set_json(json_)
    result = reevaluate_run(open_workspace(), run_id)
    output.emit(result, lambda r: render.explain(r.model_dump(mode="json")))
