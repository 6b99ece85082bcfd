"""`edgegate keys`: Ed25519 signing keys for evidence bundles (generate, list, export, revoke, rotate)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Manage the Ed25519 keys that sign evidence bundles.")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")


def _key_line(verb: str, key) -> str:
    return f"{verb} {key.key_id}, now the active key"


@app.command()
def generate(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Create a new signing key; it becomes the active key. The seed goes to <home>/keys/<key_id>.key (0600)."""
    from ..evidence.keys import generate_key
    from . import open_workspace, start

    out = start(ctx, json_)
    key = generate_key(open_workspace(out))
    out.emit(key, lambda out, k: (out.line(_key_line("Generated signing key", k)),
                                out.line(f"Private key file: {k.private_key_file} (mode 0600)")))


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List the keys this home knows and which one signs now."""
    from ..evidence.keys import list_keys
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(list_keys(open_workspace(out, write=False)), _show_list)


def _show_list(out, result) -> None:
    if not result.keys:
        out.line("No signing keys. Run `edgegate keys generate`, or set EDGEGATE_SIGNING_KEY.")
        return
    out.table(None, ["key id", "status", "created", "revoked", "retired", "seed"], [
        (k.key_id, "active" if k.key_id == result.active else "revoked" if k.revoked_at else
         "retired" if k.retired_at else "", _minute(k.created_at), _minute(k.revoked_at), _minute(k.retired_at),
         "env" if k.source == "env" else "file" if k.private_key_file else "none") for k in result.keys])


def _minute(stamp: str | None) -> str:
    return f"{stamp[:10]} {stamp[11:16]}Z" if stamp else ""


@app.command()
def export(
    ctx: typer.Context,
    key_id: str = typer.Argument(None, metavar="[KEY_ID]", help="The key id, e.g. eg-0123456789abcdef "
                                 "(default: the active key, the one that signs now)."),
    fmt: str = typer.Option("pem", "--format", help="pem (SubjectPublicKeyInfo, the default) or base64 "
                            "(the raw 32-byte key)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Print a public key, for `edgegate verify --key` or any Ed25519 tool."""
    from ..evidence.keys import active_key_id, export_public_key
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out, write=False)
    key_id = key_id or active_key_id(ws)
    text = export_public_key(ws, key_id, fmt)
    out.emit({"key_id": key_id, "format": fmt, "public_key": text},
                lambda out, r: out.line(r["public_key"].rstrip("\n"), multiline=True))


@app.command()
def revoke(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., help="The key id to revoke."),
    at: str = typer.Option(None, "--at", metavar="TIME", help="Revocation time, ISO-8601 with a zone "
                           "(default: now). Bundles this home recorded before it still verify."),
    json_: bool = JSON_OPTION,
) -> None:
    """Revoke a compromised key from a time on: its signatures stop verifying, except in bundles this home
    recorded (wrote or verified) before that time. To replace a key that was not compromised, use rotate."""
    from ..evidence.keys import revoke_key
    from . import open_workspace, start

    out = start(ctx, json_)
    key = revoke_key(open_workspace(out), key_id, at)
    out.emit(key, lambda out, k: out.line(f"Revoked {k.key_id} as of {k.revoked_at}"))


@app.command()
def rotate(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Generate a new key and retire the previous one as of now: it signs nothing more, and what it signed
    before stays valid (retired, not revoked: use `keys revoke` for a compromised key)."""
    from ..evidence.keys import rotate_key
    from . import open_workspace, start

    out = start(ctx, json_)
    result = rotate_key(open_workspace(out))
    out.emit(result, lambda out, r: (
        out.line(_key_line("New signing key", r.new_key)),
        out.line(f"Retired {r.retired_key.key_id} as of {r.retired_key.retired_at}" if r.retired_key
                 else "No previous key to retire")))
