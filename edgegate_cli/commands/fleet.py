"""`edgegate fleet`: the devices the release box ships to (SPEC §10.2)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="The fleet: its CA, devices, tags, and their health.")
ca_app = typer.Typer(no_args_is_help=True, help="The fleet's TLS certificate authority.")
app.add_typer(ca_app, name="ca")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")
FILTER_OPTION = typer.Option("", "--filter", metavar="EXPR", help="A device filter, e.g. "
                             "'region=eu and type=qcs6490' (README: Fleet).")


def _rows(out, devices) -> None:
    out.table("Fleet", ["id", "type", "region", "address", "tags", "active", "last seen"],
              [[d["device_id"], d["device_type"], d["region"] or "", d["address"],
                ",".join(f"{k}={v}" for k, v in d["tags"].items()), d["active_release"] or "",
                d["last_seen"] or "never"] for d in devices])


@ca_app.command("init")
def ca_init(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Make the fleet CA and the release box's client certificate in the home (keys 0600).

    Example: edgegate fleet ca init
    """
    from ..fleet.certs import create_ca, issue_client_cert
    from ..fleet.tls import fleet_paths
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    paths = fleet_paths(ws)
    ca = create_ca(paths.ca_cert.parent)
    client = issue_client_cert(paths.ca_cert.parent, paths.client_cert.parent, "release-box")
    out.emit({"ca": ca.cert, "ca_sha256": ca.sha256, "client": client.cert, "not_after": ca.not_after},
             lambda o, r: o.line(f"Fleet CA {r['ca']} ({r['ca_sha256']}); client certificate {r['client']}"))


@app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., metavar="FILE", help="A .csv or .json fleet file."),
            json_: bool = JSON_OPTION) -> None:
    """Add or update devices from a CSV or JSON file (idempotent: a second import changes nothing).

    Example: edgegate fleet import examples/rollout/fleet.csv
    """
    from ..fleet.inventory import import_devices, read_fleet_file
    from ..store.state import record_audit
    from . import open_workspace, start

    out = start(ctx, json_)
    devices = read_fleet_file(file)
    ws = open_workspace(out)
    counts = import_devices(ws.db, devices)
    record_audit(ws.db, "fleet import", "fleet_imported", {"file": str(file), **counts})
    out.emit(counts, lambda o, r: o.line(f"{r['added']} added, {r['changed']} changed, {r['unchanged']} unchanged"))


@app.command("list")
def list_(ctx: typer.Context, filter_: str = FILTER_OPTION, json_: bool = JSON_OPTION) -> None:
    """List devices (matching --filter).

    Example: edgegate fleet list --filter 'region=eu and line=3'
    """
    from dataclasses import asdict

    from ..fleet.devices import list_devices
    from ..fleet.filters import parse_filter
    from . import open_workspace, start

    out = start(ctx, json_)
    device_filter = parse_filter(filter_)
    ws = open_workspace(out, write=False)
    devices = [asdict(d) for d in list_devices(ws.db, device_filter)]
    if not devices and not out.mode.json:
        out.log(f"no device matches {str(device_filter)!r}")
    out.emit({"filter": str(device_filter), "devices": devices}, lambda o, r: _rows(o, r["devices"]))


@app.command("show")
def show(ctx: typer.Context, device_id: str = typer.Argument(..., metavar="DEVICE_ID"),
         json_: bool = JSON_OPTION) -> None:
    """Show one device and what the last health poll saw.

    Example: edgegate fleet show dev-1
    """
    import json
    from dataclasses import asdict

    from ..fleet.devices import get_device
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out, write=False)
    doc = asdict(get_device(ws.db, device_id))
    row = ws.db["devices"].get(device_id)
    doc.update(last_error=row["last_error"], cert_fingerprint=row["cert_fingerprint"],
               last_status=json.loads(row["last_status_json"]) if row["last_status_json"] else None)
    out.emit(doc, lambda o, r: [o.line(f"{k}: {v}") for k, v in r.items() if k != "last_status"])


@app.command("tag")
def tag(ctx: typer.Context, device_id: str = typer.Argument(..., metavar="DEVICE_ID"),
        tags: list[str] = typer.Argument(None, metavar="NAME=VALUE...", help="Tags to set."),
        remove: list[str] = typer.Option([], "--remove", metavar="NAME", help="A tag to remove (repeatable)."),
        json_: bool = JSON_OPTION) -> None:
    """Set or remove a device's tags.

    Example: edgegate fleet tag dev-1 line=3 --remove old
    """
    from dataclasses import asdict

    from ..fleet.inventory import parse_tags, tag_device
    from . import open_workspace, start

    out = start(ctx, json_)
    new = parse_tags(tags or [], "tag")
    ws = open_workspace(out)
    device = tag_device(ws.db, device_id, new, list(remove))
    out.emit(asdict(device), lambda o, r: o.line(f"{r['device_id']}: " + ",".join(f"{k}={v}" for k, v in
                                                                                   r["tags"].items())))


@app.command("remove")
def remove(ctx: typer.Context, device_id: str = typer.Argument(..., metavar="DEVICE_ID"),
           json_: bool = JSON_OPTION) -> None:
    """Forget a device (refused while an unfinished rollout targets it).

    Example: edgegate fleet remove dev-1
    """
    from ..fleet.inventory import remove_device
    from ..store.state import record_audit
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    remove_device(ws.db, device_id)
    record_audit(ws.db, "fleet remove", "device_removed", {"device_id": device_id})
    out.emit({"removed": device_id}, lambda o, r: o.line(f"removed {r['removed']}"))


@app.command("health")
def health(ctx: typer.Context, filter_: str = FILTER_OPTION,
           concurrency: int = typer.Option(32, "--concurrency", min=1, max=1024, help="Polls at once."),
           timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per device."),
           json_: bool = JSON_OPTION) -> None:
    """Poll every (matching) device's agent over mutual TLS and record what it reports. Exit 3 when a
    device is unreachable.

    Example: edgegate fleet health --filter region=eu --concurrency 64
    """
    from ..errors import ExitCode
    from ..fleet.devices import list_devices
    from ..fleet.filters import parse_filter
    from ..fleet.health import poll_health
    from ..fleet.tls import fleet_tls
    from . import open_workspace, start

    out = start(ctx, json_)
    device_filter = parse_filter(filter_)
    ws = open_workspace(out)
    tls = fleet_tls(ws)
    devices = list_devices(ws.db, device_filter)
    with out.progress("polling agents", total=len(devices)) as advance:
        rows = poll_health(ws.db, tls, devices, concurrency=concurrency, timeout=timeout, advance=advance)
    bad = [r for r in rows if r["health"] != "healthy"]
    out.emit({"devices": rows, "healthy": len(rows) - len(bad), "unhealthy": len(bad)},
             lambda o, r: o.table("Health", ["id", "health", "active", "error"],
                                  [[x["device_id"], x["health"], x["active_release"] or "", x["error"] or ""]
                                   for x in r["devices"]]))
    if bad:
        raise typer.Exit(int(ExitCode.RUN_ERROR))


@app.command("enroll")
def enroll(ctx: typer.Context, device_id: str = typer.Argument(..., metavar="DEVICE_ID"),
           url: str = typer.Option(..., "--url", metavar="https://HOST:PORT", help="Where the release box dials "
                                   "the device's agent."),
           type_: str = typer.Option(..., "--type", help="The device type (a release's `compatible` names it)."),
           region: str = typer.Option(None, "--region", help="The device's region."),
           tags: list[str] = typer.Option([], "--tag", metavar="NAME=VALUE", help="A tag (repeatable)."),
           out_dir: Path = typer.Option(..., "--out", metavar="DIR", help="Where to write the agent bundle."),
           json_: bool = JSON_OPTION) -> None:
    """Register a device and write its agent bundle (server certificate + key, fleet CA, publisher keys,
    a starter agent.toml). Copy DIR to the device and run `edgegate agent serve --config DIR/agent.toml`.

    Example: edgegate fleet enroll cam-eu-01 --url https://10.0.1.11:8443 --type qcs6490 --region eu --out ./cam-eu-01
    """
    from ..fleet.enroll import enroll as enroll_device
    from ..fleet.inventory import parse_tags
    from ..store.state import record_audit
    from . import open_workspace, start

    out = start(ctx, json_)
    fields = {"id": device_id, "address": url, "type": type_, "region": region,
              "tags": parse_tags(tags, "--tag")}
    ws = open_workspace(out)
    result = enroll_device(ws, out_dir, fields)
    record_audit(ws.db, "fleet enroll", "device_enrolled", {"device_id": device_id, "cert": result["cert_sha256"]})
    out.emit(result, lambda o, r: o.line(f"enrolled {r['device_id']}; agent bundle in {r['bundle']} "
                                         f"(edgegate agent serve --config {r['config']})"))
