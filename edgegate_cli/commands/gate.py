"""`edgegate gate check RUN|BUNDLE`, `gate explain RUN`: re-derive and explain a stored or bundled verdict.

`gate baseline set|show|clear` lives in `baseline.py`.
"""

from __future__ import annotations

import typer

from . import JUNIT_OPTION, SUMMARY_OPTION, baseline

app = typer.Typer(help="Check or explain the gates of a stored run; pin baselines.", no_args_is_help=True)
app.add_typer(baseline.app, name="baseline")


@app.command()
def check(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN|BUNDLE", help="Run id (or a unique prefix; see `edgegate runs "
                                 "list`), or the path of a bundle zip."),
    key: list[str] = typer.Option(None, "--key", metavar="PUBFILE", help="For a BUNDLE: trust only this public "
                                  "key (as `edgegate verify --key`); repeatable."),
    junit: str = JUNIT_OPTION,
    summary: str = SUMMARY_OPTION,
    json_: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Recompute RUN's verdict from its raw payloads, mapping, gates and policy; exit 0/1/3 by verdict.

    Given a BUNDLE file, verify it first, then recompute from the bundle's own evidence. Exits 1 also
    when the recomputed verdict differs from the stored or signed one (evidence does not agree).
    """
    from ..errors import ExitCode, InvalidInput
    from ..files import is_regular_file
    from ..gating.reevaluation import reevaluate_run, require_agreement
    from ..ui import render
    from . import open_workspace, start, write_ci_reports

    out = start(ctx, json_)
    if is_regular_file(run_id):
        _check_bundle(out, run_id, key, junit, summary)
    if key:
        raise InvalidInput(f"--key applies to a BUNDLE file, and {run_id} is not a file")
    result = require_agreement(reevaluate_run(open_workspace(out, write=False), run_id))
    write_ci_reports(out, result, junit, summary)
    out.emit(result, lambda out, r: (render.gate_table(out, [g.model_dump() for g in r.evaluation.gates]),
                                   out.line(f"{r.verdict.upper()}: recomputed from raw payloads; agrees "
                                               f"with the stored verdict of run {r.run_id}")))
    raise typer.Exit(int(ExitCode.for_verdict(result.verdict)))


def _check_bundle(out, path: str, key_files: list[str] | None, junit: str | None = None,
                  summary: str | None = None) -> None:
    from ..errors import ExitCode
    from ..evidence.verify import trusted_keys_for
    from ..gating.bundle_reevaluation import check_bundle, require_agreement
    from ..ui import render
    from . import write_ci_reports

    result = require_agreement(check_bundle(path, trusted_keys_for(out.ctx, key_files)[0]))
    write_ci_reports(out, result, junit, summary)
    out.emit(result, lambda out, r: (render.gate_table(out, r.evaluation["gates"]), out.line(
        f"{r.verdict.upper()}: recomputed from the bundle's raw payloads; agrees with the verdict "
        f"signed by {r.key_id} for run {r.run_id}")))
    raise typer.Exit(int(ExitCode.for_verdict(result.verdict)))


@app.command()
def explain(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix)."),
    json_: bool = typer.Option(False, "--json", help="Print the explanation as one JSON document."),
) -> None:
    """Explain, per gate and device, the value, threshold, per-repeat values, CV and why it passed or not."""
    from ..gating.reevaluation import reevaluate_run
    from ..ui import render
    from . import open_workspace, start

    out = start(ctx, json_)
    result = reevaluate_run(open_workspace(out, write=False), run_id)
    out.emit(result, lambda out, r: render.explain(out, r.model_dump(mode="json")))
