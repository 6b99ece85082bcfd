"""`edgegate agent`: run the edge agent on a device (`serve`), and make the certificates for mutual TLS
between the release box and its devices (`certs ca|device|client`)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Run the edge agent on a device, and make its TLS certificates.")
certs_app = typer.Typer(no_args_is_help=True, help="Make the fleet CA, device server certificates and release-box "
                                                   "client certificates (ECDSA P-256).")
app.add_typer(certs_app, name="certs")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")
CA_OPTION = typer.Option(..., "--ca", metavar="DIR", help="Directory holding fleet-ca.crt and fleet-ca.key.")
DAYS_HELP = "Validity in days."


@app.command()
def serve(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", metavar="FILE", help="The agent config (TOML)."),
    check: bool = typer.Option(False, "--check", help="Check the config and the TLS files, print them, and exit."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error (stderr)."),
    channel: str = typer.Option(None, "--channel", metavar="URL", help="Pull mode: poll this channel manifest "
                                "(s3://BUCKET/PREFIX/channels/NAME.json, https:// or a path) and converge on what "
                                "it says; credentials from the standard AWS chain."),
    poll: float = typer.Option(60.0, "--poll", metavar="SECONDS", min=0.2, help="Pull mode: seconds between "
                               "polls (±20 % jitter; backs off up to 8x while the store fails)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Serve the edge agent over HTTPS with required client certificates (mutual TLS); with --channel,
    also pull releases from an S3-compatible store and report status there (SPEC §10.5).

    Example: edgegate agent serve --config /etc/edgegate/agent.toml

    Example: edgegate agent serve --config agent.toml --channel s3://fleet/edgegate/channels/stable.json --poll 60
    """
    from ..agent.config import load_config
    from ..agent.server import serve as run_server
    from ..agent.server import server_ssl_context
    from . import start

    out = start(ctx, json_)
    cfg = load_config(config)
    if log_level not in ("debug", "info", "warning", "error"):
        from ..errors import InvalidInput

        raise InvalidInput(f"--log-level is {log_level!r}, expected debug, info, warning or error")
    location = None
    if channel is not None:
        from ..agent.pull_loop import check_pull
        from ..download.channel import channel_location

        location = channel_location(channel)
        check_pull(location, cfg.device_id)
    if check:
        server_ssl_context(cfg)
        out.emit({"config": str(cfg.source), "device_id": cfg.device_id, "device_type": cfg.device_type,
                  "listen": f"{cfg.host}:{cfg.port}", "state_dir": str(cfg.state_dir),
                  "trusted_keys": sorted(cfg.trusted_keys), "require_evidence": cfg.require_evidence,
                  "channel": location.where if location else None, "poll_s": poll if location else None},
                 lambda out, r: out.line(f"{r['config']}: OK — device {r['device_id']} ({r['device_type']}) "
                                         f"on https://{r['listen']}, trusting {', '.join(r['trusted_keys'])}"
                                         + (f"; pulling {r['channel']} every {r['poll_s']:g} s" if r['channel']
                                            else "")))
        return
    run_server(cfg, out.ctx, log_level=log_level, channel=location, poll_s=poll)


def _issued(out, result) -> None:
    from dataclasses import asdict

    out.emit(asdict(result), lambda out, r: (out.line(f"Wrote {r['cert']} and {r['key']} (mode 0600)"),
                                             out.line(f"Subject {r['subject']}, valid until {r['not_after']}, "
                                                      f"{r['sha256']}")))


@certs_app.command("ca")
def certs_ca(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., metavar="DIR", help="Where to write fleet-ca.crt and fleet-ca.key."),
    days: int = typer.Option(3650, "--days", min=1, help=DAYS_HELP),
    json_: bool = JSON_OPTION,
) -> None:
    """Make the fleet CA. Keep fleet-ca.key on the release box; copy fleet-ca.crt to every device.

    Example: edgegate agent certs ca ./fleet
    """
    from ..fleet.certs import create_ca
    from . import start

    out = start(ctx, json_)
    _issued(out, create_ca(out_dir, days=days))


@certs_app.command("device")
def certs_device(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., metavar="DIR", help="Where to write device.crt and device.key."),
    ca: Path = CA_OPTION,
    device_id: str = typer.Option(..., "--device-id", help="The device id (the certificate's common name)."),
    host: list[str] = typer.Option(..., "--host", help="An IP address or DNS name the release box dials "
                                                       "(repeat for several)."),
    days: int = typer.Option(397, "--days", min=1, help=DAYS_HELP),
    json_: bool = JSON_OPTION,
) -> None:
    """Issue a device's TLS server certificate, signed by the fleet CA.

    Example: edgegate agent certs device ./dev-1 --ca ./fleet --device-id dev-1 --host 10.0.0.7
    """
    from ..fleet.certs import issue_device_cert
    from . import start

    out = start(ctx, json_)
    _issued(out, issue_device_cert(ca, out_dir, device_id, host, days=days))


@certs_app.command("client")
def certs_client(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., metavar="DIR", help="Where to write NAME.crt and NAME.key."),
    ca: Path = CA_OPTION,
    name: str = typer.Option("release-box", "--name", help="The client's name (common name and file name)."),
    days: int = typer.Option(397, "--days", min=1, help=DAYS_HELP),
    json_: bool = JSON_OPTION,
) -> None:
    """Issue a client certificate (for the release box) that agents accept, signed by the fleet CA.

    Example: edgegate agent certs client ./box --ca ./fleet
    """
    from ..fleet.certs import issue_client_cert
    from . import start

    out = start(ctx, json_)
    _issued(out, issue_client_cert(ca, out_dir, name, days=days))
