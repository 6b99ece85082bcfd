"""`verify`: checking a bundle offline — signature, trusted key, every listed file's hash, no extra files.

Re-deriving a bundle's verdict (`gate check BUNDLE`) verifies first, then lives in
`gating/bundle_reevaluation.py`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ..context import Context
from ..errors import InvalidInput
from .bundle_read import verify_bundle
from .dsse import TrustedKeys, read_public_key_file
from .zip_safety import open_bundle


class VerifyResult(BaseModel):
    path: str
    valid: bool = True
    run_id: str | None
    pipeline: str | None
    backend: str | None
    verdict: str | None
    error_code: str | None
    model: dict  # name, sha256 (the Statement's subject)
    key_id: str
    signed_at: str
    trusted: str  # where the trusted keys came from
    files_checked: int  # files whose sha256 matched the signed list


def trusted_keys_for(ctx: Context, key_files: list[str] | None) -> tuple[TrustedKeys, str]:
    """The keys to trust and a description: the given public key files, else the home's signing_keys.

    With key files no home is opened or created. Raises InvalidInput for an unreadable key file, or
    when no key file is given and the home does not exist.
    """
    if key_files:
        keys = dict(read_public_key_file(path) for path in key_files)
        return {key_id: (raw, None) for key_id, raw in keys.items()}, "key files " + ", ".join(key_files)
    from ..store.home import resolve_home

    home = resolve_home(ctx.settings.home)
    if not home.db_path.is_file():
        raise InvalidInput(f"no EdgeGate home at {home.path} to take trusted keys from",
                           hint="pass the signer's public key with --key PUBFILE (see `edgegate keys export`)")
    from ..store.workspace import open_workspace
    from .keys import trusted_keys

    return trusted_keys(open_workspace(home, ctx=ctx, reap=False)), f"signing keys of the home {home.path}"


def verify_file(path: Path | str, trusted: TrustedKeys, trusted_from: str = "") -> VerifyResult:
    """Verify a bundle file offline (zip_safety.open_bundle + bundle_reader.verify_bundle); return what it proves.

    Raises InvalidInput (missing or unreadable file) or VerificationFailed naming what is wrong.
    """
    verified = verify_bundle(open_bundle(path, contents=False), trusted)
    predicate = verified.statement["predicate"]
    subject = verified.statement["subject"][0]
    return VerifyResult(path=str(path), run_id=predicate.get("run_id"), pipeline=predicate.get("pipeline"),
                        backend=predicate.get("backend"), verdict=predicate.get("verdict"),
                        error_code=predicate.get("error_code"),
                        model={"name": subject["name"], "sha256": subject["digest"]["sha256"]},
                        key_id=verified.key_id, signed_at=verified.signed_at, trusted=trusted_from,
                        files_checked=len(predicate["files"]))
