"""`edgegate verify FILE`: check an evidence bundle offline (signature, trusted key, every file's hash)."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def verify(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="The bundle zip to check."),
    key: list[str] = typer.Option(None, "--key", metavar="PUBFILE", help="Trust only this public key (PEM or "
                                  "base64, from `edgegate keys export`); repeatable. No home is needed or created."),
    json_: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Verify a bundle offline: exactly the zip EdgeGate writes, the DSSE signature by a trusted key in good
    standing, every listed file present with its sha256, no extra files, no hostile zip entries.

    Without --key, the keys of this home are trusted: a revoked key's bundles verify only if this home recorded
    them before the revocation; a retired key's earlier bundles still verify. Exit codes: 0 valid, 1 not
    valid, 2 unusable arguments (missing bundle, unreadable key file).
    """
    from ..evidence.verify import trusted_keys_for, verify_file
    from . import start

    out = start(ctx, json_)
    trusted, trusted_from = trusted_keys_for(out.ctx, key)
    result = verify_file(file, trusted, trusted_from)
    out.emit(result, _show)


def _show(out, r) -> None:
    out.line(f"VALID: {r.path}", style="bold green")
    out.line(f"  verdict: {r.verdict}" + (f" ({r.error_code})" if r.error_code else ""))
    out.line(f"  run: {r.run_id} of {r.pipeline} on {r.backend}")
    out.line(f"  model: {r.model['name']} sha256:{r.model['sha256']}")
    out.line(f"  signer: {r.key_id}, signed at {r.signed_at} (trusted: {r.trusted})")
    out.line(f"  files checked: {r.files_checked} (every listed sha256 matches; no extra files)")
