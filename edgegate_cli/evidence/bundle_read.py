"""Verifying evidence bundles offline (SPEC §7): summary.json (an in-toto Statement) against its DSSE
envelope, the signer against the trusted keys, and every listed file's sha256; nothing may be
missing or extra. The zip itself is read by `zip_safety.open_bundle`, which refuses hostile input.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import InvalidInput, KeyRevoked, VerificationFailed
from .dsse import (
    EVIDENCE_PAYLOAD_TYPE,
    EVIDENCE_PREDICATE_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    TrustedKeys,
    parse_envelope,
    parse_utc,
    verify_envelope,
)
from .zip_safety import ENVELOPE, SUMMARY, Bundle, unsafe_name_reason

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # used with fullmatch


@dataclass(frozen=True)
class KeyStanding:
    """What a home knows about a key besides its public bytes (the trust rule of bundles, README "keys"):

    - `revoked_at`: the key is compromised from then on. Its signatures all fail, whatever signing time they
      claim (the signer writes that time), unless this home recorded the bundle's digest before `revoked_at`.
    - `retired_at`: rotated out, not compromised: what it signed before stays valid, later claims fail.
    - `created_at`: for keys generated in this home; a signing time before it is always refused.
    """

    revoked_at: str | None = None
    retired_at: str | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class BundleTrust:
    """Trusted keys with their standing, and how to ask when this home first recorded a bundle (by its path;
    None when it never did). A plain TrustedKeys dict means: revoked keys fail, nothing is recorded."""

    keys: TrustedKeys
    standing: dict[str, KeyStanding] = field(default_factory=dict)
    first_seen: Callable[[str], str | None] | None = None
    record: Callable[[str, str], None] | None = None  # (bundle path, key id): remember a bundle that verified
    source: str = ""


def as_trust(trusted) -> BundleTrust:
    if isinstance(trusted, BundleTrust):
        return trusted
    return BundleTrust(keys=trusted, standing={k: KeyStanding(revoked_at=r) for k, (_pk, r) in trusted.items()})


def _check_standing(bundle: Bundle, trust: BundleTrust, key_id: str, signed_at: datetime) -> None:
    standing = trust.standing.get(key_id) or KeyStanding()
    shown = signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if standing.created_at and signed_at < parse_utc(standing.created_at, what="key creation"):
        raise VerificationFailed(f"{SUMMARY}: its signing time {shown} is before key {key_id} was created "
                                 f"({standing.created_at}); a signature cannot predate its key")
    if standing.revoked_at:
        seen = trust.first_seen(str(bundle.path)) if trust.first_seen else None
        if seen is None or parse_utc(seen, what="record time") >= parse_utc(standing.revoked_at, what="revocation"):
            why = f"this home first recorded this bundle at {seen}" if seen else \
                "this home has no record of this bundle"
            raise KeyRevoked(f"{ENVELOPE}: key {key_id} was revoked at {standing.revoked_at}; a revoked key's "
                             f"signatures are refused unless this home recorded the bundle before then ({why})",
                             hint="ask the publisher to sign it again with a current key")
    if standing.retired_at and signed_at >= parse_utc(standing.retired_at, what="retirement"):
        raise KeyRevoked(f"{ENVELOPE}: key {key_id} was retired at {standing.retired_at}, before the signing time "
                         f"{shown}")


@dataclass(frozen=True)
class VerifiedBundle:
    statement: dict
    files: dict[str, bytes]  # every file listed in the predicate's `files` (those read into memory)
    key_id: str
    signed_at: str


def _load_json(data: bytes, name: str):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ValueError(f"duplicate key {dup!r}")
        return dict(pairs)

    def no_constants(token):
        raise ValueError(f"{token} is not JSON")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VerificationFailed(f"{name}: not valid UTF-8 JSON ({exc})") from None


def _check_statement(statement, predicate_type: str) -> tuple[dict, dict[str, str]]:
    """Check the Statement's shape; return (predicate, files map)."""
    def bad(text: str):
        return VerificationFailed(f"{SUMMARY}: {text}")

    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise bad(f"_type is {statement.get('_type')!r}, expected {IN_TOTO_STATEMENT_TYPE}")
    if statement.get("predicateType") != predicate_type:
        raise bad(f"predicateType is {statement.get('predicateType')!r}, expected {predicate_type}")
    subject = statement.get("subject")
    if not isinstance(subject, list) or not subject or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("digest"), dict)
            and re.fullmatch(r"[0-9a-f]{64}", str(s["digest"].get("sha256"))) for s in subject):
        raise bad("subject must be a non-empty list of {name, digest: {sha256: <64 hex>}}")
    files = statement["predicate"].get("files")
    if not isinstance(files, dict):
        raise bad("predicate.files is missing or not an object")
    for name, digest in files.items():
        if name in (SUMMARY, ENVELOPE) or unsafe_name_reason(name):
            raise bad(f"predicate.files lists {name!r}, which cannot be a bundle file")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise bad(f"predicate.files[{name!r}] is not 'sha256:<64 lowercase hex>'")
    return statement["predicate"], files


def verify_bundle(bundle: Bundle, trusted_keys: TrustedKeys | BundleTrust, *,
                  expected_payload_type: str = EVIDENCE_PAYLOAD_TYPE,
                  expected_predicate_type: str = EVIDENCE_PREDICATE_TYPE) -> VerifiedBundle:
    """Verify an opened bundle offline; return the VerifiedBundle (statement, listed files, signer).

    Checks, in order: summary.json and summary.dsse.json present; the envelope's payload is
    summary.json's exact bytes; the signature (dsse.verify_envelope) by a trusted key in good standing
    (`KeyStanding`: revoked keys fail unless the home recorded the bundle first, never a signing time before
    the key's creation or after its retirement); the Statement's _type, predicateType and subject; every file
    in predicate.files present with its sha256; no other files. Raises VerificationFailed naming the file at
    fault (KeyRevoked for a revoked or retired key).
    """
    trust = as_trust(trusted_keys)
    for name in (SUMMARY, ENVELOPE):
        if name not in bundle.files:
            raise VerificationFailed(f"{name}: missing from the bundle")
    envelope = _load_json(bundle.files[ENVELOPE], ENVELOPE)
    try:
        _, payload, _ = parse_envelope(envelope)
    except VerificationFailed as exc:
        raise VerificationFailed(f"{ENVELOPE}: {exc.message}") from None
    if payload != bundle.files[SUMMARY]:
        raise VerificationFailed(f"{SUMMARY}: bytes differ from the payload signed in {ENVELOPE}")
    statement = _load_json(payload, SUMMARY)
    if not isinstance(statement, dict):
        raise VerificationFailed(f"{SUMMARY}: not a JSON object (expected an in-toto Statement)")
    predicate = statement.get("predicate")
    # The signing time: `signed_at` (bundles since issue 10), else `created_at` (the run's finish, older bundles)
    field_name = "signed_at" if isinstance(predicate, dict) and "signed_at" in predicate else "created_at"
    signed_at = predicate.get(field_name) if isinstance(predicate, dict) else None
    try:
        when = parse_utc(signed_at, what=f"predicate.{field_name} (the signing time)")
    except InvalidInput as exc:
        raise VerificationFailed(f"{SUMMARY}: {exc.message}") from None
    bare = {k: (public_key, None) for k, (public_key, _revoked) in trust.keys.items()}  # standing is checked below
    _, key_id = verify_envelope(envelope, bare, expected_payload_type=expected_payload_type,
                                signed_at=when, where=ENVELOPE)
    _check_standing(bundle, trust, key_id, when)
    _, listed = _check_statement(statement, expected_predicate_type)
    digests = bundle.digests if bundle.digests is not None else {
        name: hashlib.sha256(data).hexdigest() for name, data in bundle.files.items()}
    for name in sorted(listed):
        if name not in digests:
            raise VerificationFailed(f"{name}: listed in {SUMMARY} but missing from the bundle")
        actual = "sha256:" + digests[name]
        if actual != listed[name]:
            raise VerificationFailed(f"{name}: content is {actual}, {SUMMARY} lists {listed[name]} "
                                     "(modified after signing)")
    extra = sorted(set(digests) - set(listed) - {SUMMARY, ENVELOPE})
    if extra:
        raise VerificationFailed(f"{extra[0]}: not listed in {SUMMARY} (extra file)")
    return VerifiedBundle(statement=statement, files={n: bundle.files[n] for n in sorted(listed) if n in bundle.files},
                          key_id=key_id, signed_at=signed_at)
