"""`edgegate publish MODEL`: make a signed release of a model its evidence proves (SPEC §10.1)."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def publish(
    ctx: typer.Context,
    model: str = typer.Argument(..., metavar="MODEL", help="The model file or directory (as `run` takes it)."),
    name: str = typer.Option(..., "--name", metavar="NAME", help="Release name: a-z, 0-9, '.', '_', '-'."),
    version: str = typer.Option(..., "--version", metavar="SEMVER", help="Semantic version, e.g. 1.2.0 "
                                "(immutable: the same NAME@VERSION with other content is refused)."),
    bundle: str = typer.Option(None, "--bundle", metavar="FILE", help="The evidence bundle that proves MODEL "
                               "(from `run --bundle` or `bundle create`)."),
    run_id: str = typer.Option(None, "--run", metavar="RUN_ID", help="Use this run's bundle (created, signed "
                               "with --key, if it has none)."),
    channel: str = typer.Option("stable", "--channel", metavar="CHANNEL", help="Release channel."),
    compatible: list[str] = typer.Option([], "--compatible", metavar="TYPE", help="A device type the release "
                                         "is for; repeatable (none: any device type)."),
    reference_data: str = typer.Option(None, "--reference-data", metavar="NPZ", help="Reference inputs (.npz "
                                       "keyed by input name; default: the run's inputs). The model's outputs on "
                                       "them travel with the release for on-device agreement checks."),
    key: str = typer.Option(None, "--key", metavar="KEY_ID", help="Sign with this key (default: "
                            "EDGEGATE_SIGNING_KEY, else the newest non-revoked key of this home)."),
    expires_at: str = typer.Option(None, "--expires-at", metavar="TIME", help="ISO-8601 time after which "
                                   "agents refuse the release (default: never)."),
    force: bool = typer.Option(False, "--force", help="Publish WITHOUT evidence (audited; the release says "
                               "`evidence: none` and agents that require evidence refuse it)."),
    to: str = typer.Option(None, "--to", metavar="s3://BUCKET/PREFIX", help="Also push the release to an "
                           "S3-compatible store for agents that pull (as `releases push`)."),
    channel_expires_in: str = typer.Option("7d", "--channel-expires-in", metavar="DURATION", help="With --to: "
                                           "how long agents accept the channel manifest (7d, 36h, 90m)."),
    json_: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Publish MODEL as NAME@VERSION: a DSSE-signed release manifest naming the model's files by digest
    and the evidence that proved it.

    Refused (exit 1, each with its code) unless the bundle verifies with a trusted, unrevoked key
    (EVIDENCE_UNTRUSTED, EVIDENCE_INVALID), is of this exact model (DIGEST_MISMATCH), and its verdict
    re-derived from its raw payloads agrees with the signed one (EVIDENCE_INCONSISTENT) and is passed
    (EVIDENCE_FAILED names the failed gates; NOT_PROVEN: no evidence or no verdict). Publishing the same
    release again is a no-op (exit 0); other content under a published version is RELEASE_EXISTS (exit 2).

    Example: edgegate publish model.onnx --name quickstart --version 1.0.0 --bundle q.zip

    Example: edgegate publish model.onnx --name quickstart --version 1.0.0 --bundle q.zip --to s3://fleet/edgegate
    """
    from ..registry.publish import PublishRequest
    from ..registry.publish import publish as do_publish
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    request = PublishRequest(model=model, name=name, version=version, bundle=bundle, run=run_id, channel=channel,
                             compatible=tuple(compatible), reference_data=reference_data, key=key, force=force,
                             expires_at=expires_at, to=to, channel_expires_in=channel_expires_in)
    with out.progress(f"Publishing {name}@{version}") as advance:
        result = do_publish(ws, request, advance)
    out.emit(result, _show)


def _show(out, r) -> None:
    verb = "Already published (unchanged)" if r.status == "unchanged" else "Published"
    out.line(f"{verb}: {r.name}@{r.version} on channel {r.channel}", style="bold green")
    out.line(f"  model: {r.model_format}, {len(r.files)} file(s), identity {r.identity}")
    if r.evidence:
        out.line(f"  evidence: {r.evidence['verdict']} (re-derived) for run {r.evidence['run_id']} of "
                 f"{r.evidence['pipeline']}, signed by {r.evidence['signer']}, bundle {r.evidence['bundle_sha256']}")
    else:
        out.line("  evidence: none (--force; audited): agents that require evidence refuse this release",
                 style="bold yellow")
    out.line(f"  reference data: {r.reference or 'none'}")
    out.line(f"  compatible: {', '.join(r.compatible) or 'any device type'}; expires: {r.expires_at or 'never'}")
    out.line(f"  manifest: {r.payload_sha256}, signed by {r.publisher}")
    if r.pushed is not None:
        from .releases import show_push

        show_push(out, r.pushed)
    else:
        out.line(f"Export it with `edgegate releases export {r.name}@{r.version} DIR`.")
