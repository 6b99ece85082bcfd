"""Signing keys (SPEC §7): Ed25519 through PyNaCl, private seeds under `<home>/keys/`, public keys in SQLite.

Formats (contracts; change them only with a new version):

- **key id v1**: `eg-` + the first 16 lowercase hex digits of sha256(raw 32-byte public key),
  e.g. `eg-21fe31dfa154a261` (`dsse.key_id_for`). The `eg-` prefix and the 16-hex length together
  mean "v1"; a later scheme will use a different prefix, so ids never collide across versions.
- **private key file** `<home>/keys/<key_id>.key`: the 32-byte Ed25519 seed, standard base64, one line,
  mode 0600 from the moment it exists (created with O_CREAT|O_EXCL and mode 0o600). The same base64
  seed is what `EDGEGATE_SIGNING_KEY` holds for CI secrets.
- **public key export**: `pem` (the default) is a SubjectPublicKeyInfo `-----BEGIN PUBLIC KEY-----`
  block that `openssl pkey -pubin` and `cryptography`'s `load_pem_public_key` read; `base64` is the
  raw 32-byte key in standard base64 (what `signing_keys.public_key` stores).

The seed never reaches SQLite, logs, errors or JSON output: only public keys are stored, and every
seed read is registered with the redactor. Times are ISO-8601 UTC strings as the state database writes them.

Standing (the trust rule, `bundle_read.KeyStanding`): a *revoked* key is compromised: its signatures all fail,
unless this home recorded the bundle (`bundle_records`) before the revocation, because the signing time in a
bundle is the signer's own claim. A revocation can be moved earlier but never later. A *retired* key (what
`keys rotate` does to the previous key) is not compromised: it signs nothing more, and what it signed before
its retirement stays valid. A signing time before a key generated here was created is always refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ..config import SIGNING_KEY_ENV, signing_key_text
from ..context import Secrets
from ..errors import InvalidInput, NotFound
from ..store.state import record_audit
from .dsse import format_utc, key_id_for, parse_public_key, parse_utc, public_key_pem, read_public_key_file

if TYPE_CHECKING:
    from ..store.workspace import Workspace

__all__ = ["KeyInfo", "KeyList", "Rotation", "Signer", "env_signer", "export_public_key", "format_utc",
           "generate_key", "get_key", "key_id_for", "list_keys", "load_signing_key", "parse_public_key",
           "parse_utc", "public_key_pem", "read_public_key_file", "revoke_key", "rotate_key",
           "signer_from_seed", "trusted_keys"]

ENV_VAR = SIGNING_KEY_ENV
KEY_ID_RE = re.compile(r"eg-[0-9a-f]{16}")  # used with fullmatch: no trailing line feed slips through
SEED_BYTES = 32
EXPORT_FORMATS = ("pem", "base64")
DEFAULT_EXPORT_FORMAT = "pem"
_GENERATE_HINT = "run `edgegate keys generate`, or set EDGEGATE_SIGNING_KEY to a base64 Ed25519 seed"


class KeyInfo(BaseModel):
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    created_at: str
    revoked_at: str | None = None  # compromised from then on
    retired_at: str | None = None  # rotated out then (what it signed before stays valid)
    source: str  # "generated" (a key file in this home) or "env" (EDGEGATE_SIGNING_KEY)
    private_key_file: str | None = None  # path of the seed file, when this home holds one


class KeyList(BaseModel):
    keys: list[KeyInfo]
    active: str | None  # the key id that would sign now, if any


class Rotation(BaseModel):
    new_key: KeyInfo
    retired_key: KeyInfo | None


class Signer:
    """A loaded private key. `sign(message)` returns the 64-byte Ed25519 signature. The repr hides the seed."""

    def __init__(self, signing_key, key_id: str, source: str):
        self._key = signing_key
        self.key_id = key_id
        self.source = source
        self.public_key: bytes = bytes(signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, source={self.source!r})"


def signer_from_seed(seed: bytes, source: str = "memory", secrets: Secrets | None = None) -> Signer:
    """A Signer for a 32-byte Ed25519 seed; the seed's base64 form is registered with `secrets`."""
    from nacl.signing import SigningKey

    if secrets is not None:
        secrets.register(base64.b64encode(seed).decode())
    key = SigningKey(seed)
    return Signer(key, key_id_for(bytes(key.verify_key)), source)


def _decode_seed(text: str, *, what: str, secrets: Secrets) -> bytes:
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        seed = None
    if seed is None or len(seed) != SEED_BYTES:
        got = "not valid base64" if seed is None else f"{len(seed)} bytes"
        raise InvalidInput(f"{what} is not a base64 Ed25519 seed (expected 32 bytes, got {got})",
                           hint="use the one-line content of a key file made by `edgegate keys generate`")
    secrets.register(base64.b64encode(seed).decode())
    return seed


def env_signer(ws: Workspace) -> Signer | None:
    """The key held by EDGEGATE_SIGNING_KEY (base64 seed), or None when unset. Raises InvalidInput if malformed.

    The variable's value is registered as a secret before anything else happens to it.
    """
    secrets = ws.ctx.secrets
    raw = signing_key_text(ws.ctx)
    if not raw:
        return None
    return signer_from_seed(_decode_seed(raw, what=ENV_VAR, secrets=secrets), "env", secrets)


def _key_file(ws: Workspace, key_id: str) -> Path:
    return ws.home.keys_path / f"{key_id}.key"


def _info(row: dict, ws: Workspace) -> KeyInfo:
    path = _key_file(ws, row["key_id"])
    return KeyInfo(key_id=row["key_id"], public_key=row["public_key"], created_at=row["created_at"],
                   revoked_at=row["revoked_at"], retired_at=row.get("retired_at"), source=row["source"] or "generated",
                   private_key_file=str(path) if path.is_file() else None)


def _row(ws: Workspace, key_id: str) -> dict | None:
    rows = list(ws.db["signing_keys"].rows_where("key_id = ?", [key_id]))
    return rows[0] if rows else None


def _is_revoked(revoked_at: str | None, at: datetime, retired_at: str | None = None) -> bool:
    """Can the key no longer sign at `at` (revoked, or retired, by then)?"""
    return any(t is not None and parse_utc(t, what="revoked_at") <= at for t in (revoked_at, retired_at))


def _write_seed_file(path: Path, seed: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, base64.b64encode(seed) + b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def generate_key(ws: Workspace) -> KeyInfo:
    """Create an Ed25519 key: seed file `<home>/keys/<key_id>.key` (mode 0600) and a `signing_keys` row.

    Returns the new key's KeyInfo (public data only). The new key becomes the active one.
    """
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    seed = bytes(key)
    ws.ctx.secrets.register(base64.b64encode(seed).decode())
    signer = Signer(key, key_id_for(bytes(key.verify_key)), "generated")
    _write_seed_file(_key_file(ws, signer.key_id), seed)
    row = {"key_id": signer.key_id, "public_key": base64.b64encode(signer.public_key).decode(),
           "created_at": ws.db.now(), "revoked_at": None, "source": "generated"}
    with ws.db.conn:
        ws.db["signing_keys"].insert(row)
        record_audit(ws.db, "keys generate", "key_generated",
                     {"key_id": signer.key_id, "public_key": row["public_key"]})
    return _info(row, ws)


def _env_info(ws: Workspace, signer: Signer) -> KeyInfo:
    row = _row(ws, signer.key_id)
    if row:
        return _info(row, ws)
    return KeyInfo(key_id=signer.key_id, public_key=base64.b64encode(signer.public_key).decode(),
                   created_at=ws.db.now(), source="env")


def _newest_usable_file_key(ws: Workspace, now: datetime) -> dict | None:
    for row in ws.db["signing_keys"].rows_where(order_by="created_at desc, key_id desc"):
        if not _is_revoked(row["revoked_at"], now, row.get("retired_at")) and _key_file(ws, row["key_id"]).is_file():
            return row
    return None


def list_keys(ws: Workspace) -> KeyList:
    """Every key this home knows (oldest first) and the id of the one that would sign now.

    A key from EDGEGATE_SIGNING_KEY that was never used here is listed too (source "env"), without
    being recorded. Raises InvalidInput if EDGEGATE_SIGNING_KEY is set but malformed.
    """
    keys = [_info(r, ws) for r in ws.db["signing_keys"].rows_where(order_by="created_at, key_id")]
    env = env_signer(ws)
    now = ws.ctx.clock.now()
    if env is not None:
        if not any(k.key_id == env.key_id for k in keys):
            keys.append(_env_info(ws, env))
        active = next(k for k in keys if k.key_id == env.key_id)
        return KeyList(keys=keys, active=None if _is_revoked(active.revoked_at, now, active.retired_at)
                       else env.key_id)
    newest = _newest_usable_file_key(ws, now)
    return KeyList(keys=keys, active=newest["key_id"] if newest else None)


def _require_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise InvalidInput(f"{key_id!r} is not a key id (expected eg- and 16 lowercase hex digits)",
                           hint="run `edgegate keys list` to see the key ids of this home")


def get_key(ws: Workspace, key_id: str) -> KeyInfo:
    """The public KeyInfo for `key_id` (including an unrecorded EDGEGATE_SIGNING_KEY key). Raises NotFound."""
    _require_key_id(key_id)
    row = _row(ws, key_id)
    if row:
        return _info(row, ws)
    env = env_signer(ws)
    if env is not None and env.key_id == key_id:
        return _env_info(ws, env)
    raise NotFound(f"signing key {key_id} is not known to this home",
                   hint="run `edgegate keys list` to see the key ids of this home")


def active_key_id(ws: Workspace) -> str:
    """The id of the key that would sign now; InvalidInput when there is none."""
    active = list_keys(ws).active
    if active is None:
        raise InvalidInput("no active signing key in this home to export", hint=_GENERATE_HINT)
    return active


def export_public_key(ws: Workspace, key_id: str | None, fmt: str = DEFAULT_EXPORT_FORMAT) -> str:
    """The public key of `key_id` (default: the active key) as text: `pem` (SPKI PEM, default) or `base64`.

    Raises InvalidInput for an unknown format or no active key, NotFound for an unknown key.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"--format is {fmt!r}, expected one of: {', '.join(EXPORT_FORMATS)}")
    info = get_key(ws, key_id or active_key_id(ws))
    if fmt == "base64":
        return info.public_key + "\n"
    return public_key_pem(base64.b64decode(info.public_key))


def revoke_key(ws: Workspace, key_id: str, at: str | None = None) -> KeyInfo:
    """Revoke `key_id` from `at` (ISO-8601 with zone; default now). Signatures made at or after it fail.

    Revoking again can move the time earlier but never later. Returns the updated KeyInfo.
    Raises NotFound for an unknown key, InvalidInput for a malformed time.
    """
    when = parse_utc(at, what="--at") if at is not None else ws.ctx.clock.now()
    info = get_key(ws, key_id)
    if _row(ws, key_id) is None:  # an env key never used here: record it so the revocation sticks
        _record_env_key(ws, info, "keys revoke")
    revoked_at = format_utc(when)
    with ws.db.conn:  # one statement decides, so two concurrent revokes can't postpone each other
        changed = ws.db.execute("UPDATE signing_keys SET revoked_at = ? WHERE key_id = ? AND "
                                "(revoked_at IS NULL OR revoked_at > ?)", [revoked_at, key_id, revoked_at])
        if changed.rowcount:
            record_audit(ws.db, "keys revoke", "key_revoked", {"key_id": key_id, "revoked_at": revoked_at})
    return get_key(ws, key_id)


def rotate_key(ws: Workspace) -> Rotation:
    """Generate a new key and retire the previously active key file's key as of now (retired, not revoked:
    it was not compromised, so what it signed before now keeps verifying). Returns both keys' KeyInfo
    (`retired_key` is None when there was no active key file).
    """
    previous = _newest_usable_file_key(ws, ws.ctx.clock.now())
    new_key = generate_key(ws)
    retired = None
    if previous:
        with ws.db.conn:
            ws.db.execute("UPDATE signing_keys SET retired_at = ? WHERE key_id = ? AND retired_at IS NULL",
                          [ws.db.now(), previous["key_id"]])
        retired = get_key(ws, previous["key_id"])
    record_audit(ws.db, "keys rotate", "key_rotated",
                 {"new_key_id": new_key.key_id, "retired_key_id": retired.key_id if retired else None})
    return Rotation(new_key=new_key, retired_key=retired)


def _record_env_key(ws: Workspace, info: KeyInfo, command: str) -> None:
    with ws.db.conn:
        ws.db["signing_keys"].insert({"key_id": info.key_id, "public_key": info.public_key,
                                      "created_at": ws.db.now(), "revoked_at": None, "source": "env"},
                                     ignore=True)
        record_audit(ws.db, command, "key_recorded", {"key_id": info.key_id, "source": "env"})


def _read_key_file(path: Path, key_id: str, secrets: Secrets) -> Signer:
    mode = path.stat().st_mode
    if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        raise InvalidInput(f"{path}: permissions {stat.S_IMODE(mode):04o} are too open for a private key",
                           hint=f"run `chmod 600 {path}`")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
        raise InvalidInput(f"{path}: cannot read private key ({reason})") from None
    signer = signer_from_seed(_decode_seed(text, what=str(path), secrets=secrets), "generated", secrets)
    if signer.key_id != key_id:
        raise InvalidInput(f"{path}: holds key {signer.key_id}, not {key_id} (was the file renamed?)")
    return signer


def load_signing_key(ws: Workspace, key_id: str | None = None) -> Signer:
    """The key to sign with: EDGEGATE_SIGNING_KEY if set, else the newest non-revoked key file.

    With `key_id`, that key (from the env var when it matches, else its key file). A key from the
    env var is recorded in `signing_keys` (source "env") so this home can verify what it signs.
    Raises InvalidInput when there is no usable key, the key is revoked, or a key file is bad.
    """
    now = ws.ctx.clock.now()
    env = env_signer(ws)
    if env is not None and key_id in (None, env.key_id):
        row = _row(ws, env.key_id)
        if row is None:
            _record_env_key(ws, _env_info(ws, env), "sign")
        elif _is_revoked(row["revoked_at"], now, row.get("retired_at")):
            raise InvalidInput(f"{ENV_VAR} holds key {env.key_id}, "
                               + (f"revoked at {row['revoked_at']}" if row["revoked_at"] else
                                  f"retired at {row['retired_at']}"),
                               hint="put a current key in EDGEGATE_SIGNING_KEY, or unset it")
        return env
    if key_id is None:
        row = _newest_usable_file_key(ws, now)
        if row is None:
            raise InvalidInput("no signing key: this home has no non-revoked key file", hint=_GENERATE_HINT)
        key_id = row["key_id"]
    info = get_key(ws, key_id)
    if _is_revoked(info.revoked_at, now, info.retired_at):
        state = f"revoked at {info.revoked_at}" if info.revoked_at else f"retired at {info.retired_at}"
        raise InvalidInput(f"signing key {key_id} was {state}", hint="run `edgegate keys rotate` to make a new key")
    if info.private_key_file is None:
        raise InvalidInput(f"{_key_file(ws, key_id)}: no private key file for {key_id} in this home",
                           hint=_GENERATE_HINT)
    return _read_key_file(Path(info.private_key_file), key_id, ws.ctx.secrets)


def trusted_keys(ws: Workspace) -> dict[str, tuple[bytes, str | None]]:
    """Every public key this home knows, as {key_id: (raw public key, revoked_at or None)} for dsse.verify_envelope."""
    return {row["key_id"]: (base64.b64decode(row["public_key"]), row["revoked_at"])
            for row in ws.db["signing_keys"].rows}

