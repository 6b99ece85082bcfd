"""`edgegate run PIPELINE`: measure a model on a device matrix and gate it."""

from __future__ import annotations

import typer

from . import JUNIT_OPTION, SUMMARY_OPTION

app = typer.Typer()


@app.command()
def run(
    ctx: typer.Context,
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Pipeline file (YAML or JSON)."),
    model: str = typer.Option(None, "--model", metavar="PATH",
                              help="Model to run instead of the pipeline's model.path."),
    wait: bool = typer.Option(False, "--wait", help="If another run holds this home (one run at a time), wait "
                              "for it to finish (up to an hour; stderr names it) instead of failing with RUN_ACTIVE."),
    evidence: list[str] = typer.Option([], "--evidence", metavar="[DEVICE=]genie:FILE",
                                       help="A genie-t2t-run --profile JSON from a physical device: adds ttft_ms, "
                                            "tps and prompt_tps for that device. Repeatable."),
    bundle: str = typer.Option(None, "--bundle", metavar="FILE", help="When the run finishes, write its signed "
                               "evidence bundle to FILE (as `edgegate bundle create`)."),
    key: str = typer.Option(None, "--key", metavar="KEY_ID", help="With --bundle: sign with this key (default: "
                            "EDGEGATE_SIGNING_KEY, else the newest non-revoked key of this home)."),
    api_url: str = typer.Option(None, "--qaihub-api-url", metavar="URL", help="backend qaihub: the AI Hub API URL "
                                "(default: $EDGEGATE_QAIHUB_API_URL, else the client.ini's, else AI Hub)."),
    require_baseline: bool = typer.Option(False, "--require-baseline", help="A relative gate with no baseline "
                                          "is a run error (NO_BASELINE, exit 3) instead of skipped."),
    allow_foreign_baseline: bool = typer.Option(False, "--allow-foreign-baseline", help="Accept a baseline run id "
                                                "of another pipeline or device."),
    junit: str = JUNIT_OPTION,
    summary: str = SUMMARY_OPTION,
    json_: bool = typer.Option(False, "--json", help="Print the outcome as one JSON document."),
) -> None:
    """Run PIPELINE's model on its devices (1 warmup + N repeats), evaluate its gates, exit 0/1/3.

    Exit codes: 0 passed, 1 a required gate failed, 2 invalid input, 3 run error (flaky or missing
    metric, device failure, timeout, another run active, BUNDLE_FAILED when --bundle could not be written).
    """
    from ..errors import BundleFailed, ExitCode, InvalidInput
    from ..files import check_output_file
    from ..runs.execute import RunRequest, execute_run
    from ..spec.pipeline import load_pipeline
    from ..ui import render
    from . import open_workspace, start, write_ci_reports

    out = start(ctx, json_)
    out.ctx.settings.qaihub_api_url = api_url
    spec = load_pipeline(pipeline, model_override=model)
    if key and not bundle:
        raise InvalidInput("--key names the key that signs the --bundle; pass --bundle FILE too")
    for option, path in (("--bundle", bundle), ("--junit", junit), ("--summary", summary)):
        if path:  # before any device time: a run must not be measured only to fail writing its evidence
            check_output_file(path, option=option)
    ws = open_workspace(out, pipeline=spec.source)
    signer = None
    if bundle:  # the key before any device time: no key fails fast
        from ..evidence.keys import load_signing_key

        signer = load_signing_key(ws, key)
    with out.progress(f"Running {spec.name} on {', '.join(spec.devices)}") as advance:
        outcome = execute_run(ws, RunRequest(spec, wait=wait, evidence=tuple(evidence),
                                             require_baseline=require_baseline,
                                             allow_foreign_baseline=allow_foreign_baseline), advance)
    failure = None
    if signer is not None:
        from ..evidence.bundle_write import bundle_after_run

        try:
            written = bundle_after_run(ws, outcome.run_id, signer, bundle)
        except BundleFailed as err:  # the run finished: its verdict and tables are still printed
            failure = err
            outcome.bundle = {"error": err.to_dict()}
        else:
            outcome.bundle = {"path": str(written.path), "sha256": written.sha256, "key_id": written.key_id}
            out.log(f"Bundle: {written.path} ({written.sha256}), signed by {written.key_id}", style=None)
    write_ci_reports(out, outcome, junit, summary)
    out.emit(outcome, lambda out, o: render.run_outcome(out, o.model_dump(mode="json")))
    if failure is not None:
        out.error(failure, document=False)  # --json: the outcome above is the one document, with bundle.error
        raise typer.Exit(int(failure.exit_code))
    raise typer.Exit(int(ExitCode.for_verdict(outcome.verdict)))
