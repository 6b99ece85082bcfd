"""`edgegate releases list|show|history|deprecate|verify|export|delete`: the release registry (SPEC §10.1)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="List, show, verify, export, deprecate and delete signed releases.")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as one JSON document.")


@app.command("list")
def list_(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", metavar="NAME", help="Only releases of this name."),
    channel: str = typer.Option(None, "--channel", metavar="CHANNEL", help="Only releases on this channel."),
    json_: bool = JSON_OPTION,
) -> None:
    """List releases (not deleted): by name, newest version first, with channel, evidence and status."""
    from ..registry.records import list_releases
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(list_releases(open_workspace(out), name=name, channel=channel), _show_list)


def _show_list(out, result) -> None:
    if not result.releases:
        out.line("No releases. Publish one with `edgegate publish`.")
        return
    out.table(None, ["release", "channel", "evidence", "status", "model", "created"],
              [(f"{r.name}@{r.version}", r.channel, r.evidence, r.status, r.identity[:15] + "…",
                r.created_at[:16].replace("T", " ")) for r in result.releases])


@app.command()
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@VERSION|NAME", help="A release, or a name for its newest "
                              "version that is not deprecated."),
    json_: bool = JSON_OPTION,
) -> None:
    """Show a release: files, evidence, reference data, compatibility, status (reads; see `releases verify`)."""
    from ..registry.manifests import show_release
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(show_release(open_workspace(out), ref), _show)


def _show(out, d) -> None:
    r = d.release
    out.line(f"{r.name}@{r.version} ({r.status}) on channel {r.channel}, published {r.created_at} by {r.publisher}",
             style="bold")
    if r.deprecated_at:
        out.line(f"  deprecated {r.deprecated_at}: {r.deprecated_reason}", style="yellow")
    out.line(f"  model: {r.model_format}, identity {r.identity}")
    for f in d.files:
        out.line(f"    {f['path']}  {f['size']:,} bytes  {f['sha256']}")
    ev = d.evidence
    if ev is None:
        out.line("  evidence: none (published with --force)", style="yellow")
    else:
        out.line(f"  evidence: {ev['verdict']} for run {ev['run_id']} of {ev['pipeline']} on "
                 f"{', '.join(ev['devices'])}, signed by {ev['signer']} ({ev['bundle_sha256']})")
        for g in ev["gates"]:
            out.line(f"    {g['status'].upper():5} {g['gate']} on {g['device']}")
    out.line(f"  reference data: {'inputs and outputs' if d.reference else 'none'}")
    out.line(f"  compatible: {', '.join(d.compatible) or 'any device type'}; expires: {r.expires_at or 'never'}")
    out.line(f"  manifest: {r.payload_sha256}")


@app.command()
def history(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="A release name."),
    json_: bool = JSON_OPTION,
) -> None:
    """Every publish, deprecation and deletion of NAME's versions, oldest first (from the audit log)."""
    from ..registry.names import check_name
    from ..registry.records import history as release_history
    from . import open_workspace, start

    out = start(ctx, json_)
    events = release_history(open_workspace(out), check_name(name, "NAME"))
    out.emit({"name": name, "events": events}, lambda out, r: out.table(
        None, ["at", "event", "version", "detail", "by"],
        [(e["at"], e["event"], e["version"], e.get("reason") or ("forced: evidence none" if e.get("forced") else
          e.get("payload_sha256", "")), e["actor"]) for e in r["events"]]))


@app.command()
def deprecate(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="The release to deprecate."),
    reason: str = typer.Option(..., "--reason", metavar="TEXT", help="Why (one line; recorded and shown)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Deprecate a release: it stays verifiable and exportable, but `releases show NAME` skips it. Audited."""
    from ..registry.records import deprecate as do_deprecate
    from . import open_workspace, start

    out = start(ctx, json_)
    row = do_deprecate(open_workspace(out), ref, reason)
    out.emit(row, lambda out, r: out.line(f"Deprecated {r.name}@{r.version} at {r.deprecated_at}: "
                                          f"{r.deprecated_reason}"))


@app.command()
def verify(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="FILE|DIR|NAME@VERSION", help="A release.dsse.json, an exported "
                                 "directory, or a release of this home."),
    key: list[str] = typer.Option(None, "--key", metavar="PUBFILE", help="Trust only this public key (from "
                                  "`edgegate keys export`); repeatable. No home is needed for FILE or DIR."),
    json_: bool = JSON_OPTION,
) -> None:
    """Verify a release offline: the manifest's signature (trusted key, not revoked, not expired), every
    file's length and sha256 with nothing extra, and the evidence bundle with its verdict re-derived.

    Exit codes: 0 valid, 1 not valid (the message names the file), 2 unusable arguments.
    """
    from ..registry.verify import verify_release
    from . import start

    out = start(ctx, json_)
    out.emit(verify_release(out.ctx, target, key), _show_verified)


def _show_verified(out, r) -> None:
    out.line(f"VALID: {r.name}@{r.version} ({r.target})", style="bold green")
    out.line(f"  manifest: {r.payload_sha256}, signed by {r.publisher} (trusted: {r.trusted})")
    out.line(f"  model identity: {r.identity}; expires: {r.expires_at or 'never'}")
    if r.note:
        out.line(f"  {r.note}", style="yellow")
    else:
        out.line(f"  files checked: {r.files_checked} (length and sha256; nothing extra)")
    if r.evidence:
        out.line(f"  evidence: {r.evidence['verdict']} (re-derived) for run {r.evidence['run_id']}, signed by "
                 f"{r.evidence['signer']}")
    elif not r.note:
        out.line("  evidence: none (published with --force)", style="yellow")


@app.command()
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="The release (a bare NAME: its newest version)."),
    directory: str = typer.Argument(..., metavar="DIR", help="A new or empty directory."),
    json_: bool = JSON_OPTION,
) -> None:
    """Write a self-contained release directory: release.dsse.json, model/, evidence.zip, reference/.
    Check it anywhere with `edgegate releases verify DIR --key publisher.pem`."""
    from ..registry.export import export_release
    from . import open_workspace, start

    out = start(ctx, json_)
    result = export_release(open_workspace(out), ref, directory)
    out.emit(result, lambda out, r: out.line(f"Exported {r.name}@{r.version} to {r.directory} "
                                             f"({len(r.files)} files, {r.bytes:,} bytes)"))


@app.command()
def delete(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="The release to delete."),
    json_: bool = JSON_OPTION,
) -> None:
    """Delete a release: refused (RELEASE_IN_USE) while a device runs it or a rollout targets it. Audited;
    the version is never reused, and `gc` frees its blobs once nothing else keeps them."""
    from ..registry.records import delete as do_delete
    from . import open_workspace, start

    out = start(ctx, json_)
    row = do_delete(open_workspace(out), ref)
    out.emit(row, lambda out, r: out.line(f"Deleted {r.name}@{r.version} (its version stays reserved)"))


@app.command()
def push(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="The release (a bare NAME: its newest version)."),
    url: str = typer.Argument(..., metavar="s3://BUCKET/PREFIX", help="Where agents pull from."),
    expires_in: str = typer.Option("7d", "--channel-expires-in", metavar="DURATION", help="How long agents "
                                   "accept the new channel manifest (7d, 36h, 90m); push again before then."),
    key: str = typer.Option(None, "--key", metavar="KEY_ID", help="Sign the channel manifest with this key "
                            "(default: EDGEGATE_SIGNING_KEY, else the newest non-revoked key of this home)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Put a release on an S3-compatible store (AWS S3, MinIO, Ceph RGW, SeaweedFS) for agents that pull:
    its files and signed manifest as content-addressed objects first, then a new signed channel manifest
    (version + 1) that makes it the channel's current release. Pushing again renews the channel's expiry.

    Credentials and endpoint come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE, ~/.aws; AWS_ENDPOINT_URL for stores other than AWS); never stored or printed.

    Example: edgegate releases push quickstart@1.0.0 s3://fleet/edgegate
    """
    from ..registry.push import parse_expiry, push_release
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    with out.progress(f"Pushing {ref}") as advance:
        result = push_release(ws, ref, url, key=key, expires_in=parse_expiry(expires_in), progress=advance)
    out.emit(result, show_push)


def show_push(out, r) -> None:
    c = r.channel
    out.line(f"Pushed {r.name}@{r.version} to {r.root}: {r.uploaded} of {r.objects} objects sent "
             f"({r.bytes_uploaded:,} bytes), the rest already there", style="bold green")
    out.line(f"  channel {c.channel}: version {c.version}, current {c.current}, expires {c.expires_at}"
             + (f", rollout {c.rollout['id']} of {c.rollout['release']['name']}@{c.rollout['release']['version']}"
                if c.rollout else ""))
    out.line(f"  agents: edgegate agent serve --config agent.toml --channel {c.url}")
