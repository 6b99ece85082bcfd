"""`releases verify FILE|DIR|NAME@VERSION`: check a release offline, naming the file at fault.

- FILE (a `release.dsse.json`): the manifest only — signature by a trusted key not revoked now
  (SIGNATURE_INVALID, KEY_UNTRUSTED, KEY_REVOKED), not expired (MANIFEST_EXPIRED), strictly valid, its
  identity the one its files imply (MANIFEST_INVALID).
- DIR (what `releases export` writes): the manifest, then no file the manifest does not name
  (EXTRA_FILE), every named file present (FILE_MISSING) with its declared length (LENGTH_MISMATCH,
  checked before hashing) and sha256 (DIGEST_MISMATCH), then the evidence bundle as `proof.prove`
  checks it, its verdict re-derived, and its claims equal to the manifest's (EVIDENCE_INCONSISTENT).
- NAME@VERSION: the same checks on the blobs in this home's CAS.

With `--key PUBFILE` only those keys are trusted and no home is opened (except for NAME@VERSION).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from pydantic import BaseModel

from ..canonical import CHUNK, tag
from ..errors import (
    DigestMismatch,
    EvidenceInconsistent,
    ExtraFile,
    FileMissing,
    InvalidInput,
    KeyRevoked,
    KeyUntrusted,
    LengthMismatch,
    ManifestInvalid,
    SignatureInvalid,
    VerificationFailed,
)
from ..evidence import release_manifest as rm
from .manifests import export_entries, read_manifest
from .model_files import identity_of
from .records import find_release

ENVELOPE_FILE = "release.dsse.json"


class ReleaseVerifyResult(BaseModel):
    target: str
    kind: str  # manifest | directory | home
    valid: bool = True
    name: str
    version: str
    channel: str
    identity: str
    publisher: str
    payload_sha256: str
    created_at: str
    expires_at: str | None
    files_checked: int  # model files, reference files and the evidence bundle, each by length and sha256
    evidence: dict | None  # {verdict (re-derived), signer, run_id, bundle_sha256}, or None
    trusted: str
    note: str | None = None


def release_keys(trusted) -> dict:
    """The dsse key table a release manifest is checked against: a home's BundleTrust (evidence.verify) gives
    its keys, and a retired (rotated) key counts as revoked from its retirement: manifests it signed before
    still verify, later ones do not. A plain key table passes through."""
    if isinstance(trusted, dict):
        return trusted
    return {key_id: (raw, revoked_at or getattr(trusted.standing.get(key_id), "retired_at", None))
            for key_id, (raw, revoked_at) in trusted.keys.items()}


def check_manifest(envelope_bytes: bytes, trusted, *, now, where: str) -> rm.ReleaseManifest:
    try:
        envelope = json.loads(envelope_bytes)
    except (UnicodeDecodeError, ValueError):
        raise ManifestInvalid(f"{where}: not JSON (expected a DSSE envelope)") from None
    try:
        manifest = rm.verify_release_envelope(envelope, release_keys(trusted), now=now, where=where)
    except (KeyUntrusted, KeyRevoked, SignatureInvalid) as exc:
        exc.hint = ("the manifest was altered after signing" if isinstance(exc, SignatureInvalid) else
                    "trust the publisher's current key: --key PUBFILE (from `edgegate keys export`)")
        raise
    implied = identity_of(manifest.files, manifest.model_format)
    if implied != manifest.identity:
        raise ManifestInvalid(f"{where}: model.identity is {manifest.identity}, but its files imply {implied}")
    return manifest


def check_blob(path: Path, name: str, sha256: str, size: int | None) -> None:
    """`path` is a regular file of `size` bytes (when given) whose sha256 is `sha256`; refusals name `name`."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise FileMissing(f"{name}: missing (the manifest names it)") from None
    if not stat.S_ISREG(st.st_mode):
        raise VerificationFailed(f"{name}: not a regular file (a symlink or a directory)")
    if size is not None and st.st_size != size:
        raise LengthMismatch(f"{name}: {st.st_size} bytes, the manifest declares {size}")
    digest, left = hashlib.sha256(), st.st_size
    with open(path, "rb") as f:  # never past the length checked above, even if the file grows meanwhile
        while left > 0 and (chunk := f.read(min(CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
    if tag(digest.hexdigest()) != sha256:
        raise DigestMismatch(f"{name}: content is {tag(digest.hexdigest())}, the manifest declares {sha256}")


def _extra_files(root: Path, expected: set[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked directories
        base = Path(dirpath)
        for entry in sorted(filenames + [d for d in dirnames if (base / d).is_symlink()]):
            rel = (base / entry).relative_to(root).as_posix()
            if rel not in expected:
                raise ExtraFile(f"{rel}: not named by {ENVELOPE_FILE} (an exported release holds only the "
                                "files its manifest names)", hint="re-export the release into an empty directory")


def check_files(manifest: rm.ReleaseManifest, locate, trusted, *, where: str) -> tuple[int, dict | None]:
    """Check every file the manifest names (`locate(export path)` gives where it is) and the evidence.

    Returns (files checked, evidence summary or None).
    """
    from .proof import prove

    entries = export_entries(manifest)
    for name, (sha256, size) in sorted(entries.items()):
        check_blob(locate(name), name, sha256, size)
    if manifest.evidence is None:
        return len(entries), None
    claimed = manifest.evidence
    proof = prove(locate("evidence.zip"), trusted, identity=manifest.identity, now=None,
                  where=f"{where}: evidence.zip")
    for field, found in (("signer", proof.key_id), ("run_id", proof.run_id), ("verdict", proof.verdict)):
        if claimed[field] != found:
            raise EvidenceInconsistent(f"{where}: evidence.zip: its {field} is {found}, the manifest says "
                                       f"{claimed[field]}")
    return len(entries), {"verdict": proof.verdict, "signer": proof.key_id, "run_id": proof.run_id,
                          "bundle_sha256": proof.bundle_sha256}


def _result(target: str, kind: str, manifest: rm.ReleaseManifest, checked: int, evidence: dict | None,
            trusted_from: str, note: str | None = None) -> ReleaseVerifyResult:
    return ReleaseVerifyResult(target=target, kind=kind, name=manifest.name, version=manifest.version,
                               channel=manifest.channel, identity=manifest.identity, publisher=manifest.publisher,
                               payload_sha256=manifest.payload_sha256, created_at=manifest.created_at,
                               expires_at=manifest.expires_at, files_checked=checked, evidence=evidence,
                               trusted=trusted_from, note=note)


def verify_release(ctx, target: str, key_files: list[str] | None = None) -> ReleaseVerifyResult:
    """Verify a manifest FILE, an exported DIR, or NAME@VERSION of the home; see the module docstring.

    Raises InvalidInput (nothing at `target`, unreadable key) or a VerificationFailed / release refusal
    naming the file at fault.
    """
    from ..evidence.verify import trusted_keys_for

    path, now = Path(target), ctx.clock.now()
    if path.is_dir():
        envelope = path / ENVELOPE_FILE
        if envelope.is_symlink() or not envelope.is_file():
            raise FileMissing(f"{path}: no {ENVELOPE_FILE} (not a directory `releases export` wrote)")
        trusted, trusted_from = trusted_keys_for(ctx, key_files)
        manifest = check_manifest(envelope.read_bytes(), trusted, now=now, where=ENVELOPE_FILE)
        _extra_files(path, {ENVELOPE_FILE, *export_entries(manifest)})
        checked, evidence = check_files(manifest, lambda name: path / name, trusted, where=str(path))
        return _result(target, "directory", manifest, checked, evidence, trusted_from)
    if path.is_file():
        trusted, trusted_from = trusted_keys_for(ctx, key_files)
        manifest = check_manifest(path.read_bytes(), trusted, now=now, where=str(path))
        return _result(target, "manifest", manifest, 0, None, trusted_from,
                       note="only the manifest was checked: verify the exported directory to check its files")
    if "/" in target or "@" not in target:
        raise InvalidInput(f"{target}: no such file or directory (and not NAME@VERSION of this home)")
    return _verify_stored(ctx, target, key_files, now)


def _verify_stored(ctx, ref: str, key_files: list[str] | None, now) -> ReleaseVerifyResult:
    """NAME@VERSION: the stored envelope and every blob it names, from this home's CAS."""
    from ..evidence.verify import trusted_keys_for
    from ..store.workspace import open_workspace

    ws = open_workspace(ctx=ctx, reap=False)
    row = find_release(ws, ref)
    trusted, trusted_from = trusted_keys_for(ctx, key_files)
    where = f"{row['name']}@{row['version']}"
    data, _, stored = read_manifest(ws, row)
    manifest = check_manifest(data, trusted, now=now, where=f"{where}: {ENVELOPE_FILE}")
    blobs = {name: sha for name, (sha, _) in export_entries(stored).items()}
    checked, evidence = check_files(manifest, lambda name: ws.cas.path_of(blobs[name]), trusted, where=where)
    return _result(ref, "home", manifest, checked, evidence, trusted_from)
