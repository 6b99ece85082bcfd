"""Verifying evidence bundles offline (SPEC §7): summary.json (an in-toto Statement) against its DSSE
envelope, the signer against the trusted keys, and every listed file's sha256; nothing may be
missing or extra. The zip itself is read by `zip_safety.open_bundle`, which refuses hostile input.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from ..errors import InvalidInput, VerificationFailed
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

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise bad(f"predicate.files[{name!r}] is not 'sha256:<64 lowercase hex>'")
    return statement["predicate"], files


def verify_bundle(bundle: Bundle, trusted_keys: TrustedKeys, *,
                  expected_payload_type: str = EVIDENCE_PAYLOAD_TYPE,
                  expected_predicate_type: str = EVIDENCE_PREDICATE_TYPE) -> VerifiedBundle:
    """Verify an opened bundle offline; return the VerifiedBundle (statement, listed files, signer).

    Checks, in order: summary.json and summary.dsse.json present; the envelope's payload is
    summary.json's exact bytes; the signature (dsse.verify_envelope, signing time = the predicate's
    created_at); the Statement's _type, predicateType and subject; every file in predicate.files
    present with its sha256; no other files. Raises VerificationFailed naming the file at fault.
    """
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
    signed_at = predicate.get("created_at") if isinstance(predicate, dict) else None
    try:
        when = parse_utc(signed_at, what="predicate.created_at (the signing time)")
    except InvalidInput as exc:
        raise VerificationFailed(f"{SUMMARY}: {exc.message}") from None
    _, key_id = verify_envelope(envelope, trusted_keys, expected_payload_type=expected_payload_type,
                                signed_at=when, where=ENVELOPE)
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
