"""`verify`: checking a bundle offline — signature, trusted key, every listed file's hash, no extra files.

Re-deriving a bundle's verdict (`gate check BUNDLE`) verifies first, then lives in
`gating/bundle_reevaluation.py`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ..context import Context
from ..errors import InvalidInput
from .bundle_form import check_envelope_form, check_zip_form
from .bundle_read import BundleTrust, as_trust, verify_bundle
from .dsse import TrustedKeys, read_public_key_file
from .zip_safety import crc_problem, open_bundle


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


def trusted_keys_for(ctx: Context, key_files: list[str] | None) -> tuple[BundleTrust, str]:
    """The keys to trust and a description: the given public key files, else the home's signing_keys with
    their standing (revoked, retired, created) and its bundle records.

    With key files no home is opened or created. The home is opened read-only-capable: on a read-only home
    verification works, it only cannot record what it verified. Raises InvalidInput for an unreadable key
    file, or when no key file is given and the home does not exist.
    """
    if key_files:
        keys = dict(read_public_key_file(path) for path in key_files)
        return BundleTrust(keys={key_id: (raw, None) for key_id, raw in keys.items()}), \
            "key files " + ", ".join(key_files)
    from ..store.home import resolve_home

    home = resolve_home(ctx.settings.home)
    if not home.db_path.is_file():
        raise InvalidInput(f"no EdgeGate home at {home.path} to take trusted keys from",
                           hint="pass the signer's public key with --key PUBFILE (see `edgegate keys export`)")
    from ..store.workspace import open_workspace
    from .bundle_trust import bundle_trust

    return bundle_trust(open_workspace(home, ctx=ctx, reap=False, write=False)), \
        f"signing keys of the home {home.path}"


def verify_bundle_file(path: Path | str, trusted: TrustedKeys | BundleTrust, *, contents: bool = True):
    """Open a bundle safely (zip_safety), check it is exactly the zip EdgeGate writes (bundle_form), verify
    it (bundle_read), and let the home record it. Returns the VerifiedBundle; raises InvalidInput or
    VerificationFailed naming what is wrong."""
    trust = as_trust(trusted)
    bundle = open_bundle(path, contents=contents)
    check_zip_form(bundle)
    check_envelope_form(bundle)
    verified = verify_bundle(bundle, trust)
    problem = crc_problem(bundle)  # after the hashes, so a changed file is named as such first
    if problem is not None:
        raise problem
    if trust.record is not None:
        trust.record(str(path), verified.key_id)
    return verified


def verify_file(path: Path | str, trusted: TrustedKeys | BundleTrust, trusted_from: str = "") -> VerifyResult:
    """Verify a bundle file offline (`verify_bundle_file` without keeping entry bytes); return what it proves.

    Raises InvalidInput (missing or unreadable file) or VerificationFailed naming what is wrong.
    """
    verified = verify_bundle_file(path, trusted, contents=False)
    predicate = verified.statement["predicate"]
    subject = verified.statement["subject"][0]
    return VerifyResult(path=str(path), run_id=_text(predicate.get("run_id")),
                        pipeline=_text(predicate.get("pipeline")),
                        backend=_text(predicate.get("backend")), verdict=_text(predicate.get("verdict")),
                        error_code=_text(predicate.get("error_code")),
                        model={"name": subject["name"], "sha256": subject["digest"]["sha256"]},
                        key_id=verified.key_id, signed_at=verified.signed_at, trusted=trusted_from,
                        files_checked=len(predicate["files"]))


def _text(value) -> str | None:
    """A signed predicate field for display: strings as they are, anything else as JSON."""
    import json

    return value if value is None or isinstance(value, str) else json.dumps(value)[:200]
