"""`edgegate bundle create|show`: signed evidence bundles of runs (SPEC §7)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Write and inspect signed evidence bundles of runs.")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as one JSON document.")


@app.command()
def create(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix); see `edgegate runs list`."),
    out_file: str = typer.Option(None, "--out", metavar="FILE", help="Where to write the zip (default: "
                            "<run_id>.bundle.zip in the current directory)."),
    include_model: bool = typer.Option(False, "--include-model", help="Put the model's files under model/."),
    key: str = typer.Option(None, "--key", metavar="KEY_ID", help="Sign with this key (default: "
                            "EDGEGATE_SIGNING_KEY, else the newest non-revoked key of this home)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Write RUN's signed evidence bundle: summary, DSSE envelope, pipeline, mapping, metrics, gates,
    raw payloads and report.md. The same run and key give byte-identical zips."""
    from ..evidence.bundle_write import create_bundle
    from ..evidence.keys import load_signing_key
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    result = create_bundle(ws, run_id, load_signing_key(ws, key), out=out_file, include_model=include_model)
    out.emit(result, bundle_lines)


def bundle_lines(out, r) -> None:
    out.line(f"Wrote {r.path} ({len(r.files) + 2} files, {r.bytes:,} bytes, {r.sha256})")
    out.line(f"Run {r.run_id}: {r.verdict}; signed by {r.key_id}. Check it with `edgegate verify {r.path}`.")


@app.command()
def show(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="The bundle zip."),
    json_: bool = JSON_OPTION,
) -> None:
    """Show what a bundle claims (verdict, run, signer, files) WITHOUT verifying it; use `edgegate verify`."""
    from ..evidence.bundle_write import show_bundle
    from . import start

    out = start(ctx, json_)
    out.emit(show_bundle(file), _show)


def _show(out, s) -> None:
    out.line(f"NOT VERIFIED: {s.path} (this only reads the bundle; run `edgegate verify {s.path}`)",
                style="bold yellow")
    out.line(f"  verdict: {s.verdict}" + (f" ({s.error_code})" if s.error_code else ""))
    out.line(f"  run: {s.run_id} of {s.pipeline} on {s.backend}, finished {s.created_at}")
    if s.model:
        out.line(f"  model: {s.model.get('name')} sha256:{s.model.get('sha256')}")
    out.line(f"  signer (claimed): {s.signer}")
    out.line(f"  files ({len(s.entries)} entries; sha256 as summary.json lists them):")
    for name, size in s.entries.items():
        listed = s.files.get(name, "(the summary itself)" if name in ("summary.json", "summary.dsse.json")
                             else "NOT LISTED: verify rejects it")
        out.line(f"    {name}  {size:,} bytes  {listed}")
