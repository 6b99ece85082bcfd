"""The signed rollback directive (RELEASE_CONTRACT.md): the only way an edge agent goes below the
highest version it accepted. A publisher key signs it; it names the rollout, the device or a cohort,
the model identity to leave and the one to return to, a nonce and an expiry.

Standard library, `dsse`, `errors` and `signed_json` only: the edge agent imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidInput, ManifestExpired, VerificationFailed
from . import dsse
from .signed_json import (
    TEXT_RE,
    canonical_json,
    check_digest,
    check_keys,
    check_match,
    check_name,
    check_semver,
    check_time,
    fail,
    load_canonical,
    verify_signatures,
)

PAYLOAD_TYPE = "application/vnd.edgegate.rollback+json"
DIRECTIVE_FORMAT = 1
NONCE_RE = re.compile(r"^[0-9a-f]{32,64}\Z")
ROLLOUT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
KEYS = {"directive_format", "rollout_id", "device_id", "cohort", "from_sha256", "to_name", "to_version",
        "to_sha256", "nonce", "issued_at", "expires_at"}


@dataclass(frozen=True)
class RollbackDirective:
    rollout_id: str
    device_id: str | None
    cohort: str | None
    from_sha256: str  # the model identity active on the device now
    to_name: str
    to_version: str
    to_sha256: str  # the model identity to return to
    nonce: str
    issued_at: str
    expires_at: str
    signer: str  # the key id whose signature was accepted ("" before verification)


def build_rollback_directive(*, rollout_id: str, from_sha256: str, to_name: str, to_version: str, to_sha256: str,
                             nonce: str, issued_at: str, expires_at: str, device_id: str | None = None,
                             cohort: str | None = None) -> dict:
    """The directive document (pure). Raises InvalidInput naming the field when it would not parse."""
    doc = {"directive_format": DIRECTIVE_FORMAT, "rollout_id": rollout_id, "device_id": device_id, "cohort": cohort,
           "from_sha256": from_sha256, "to_name": to_name, "to_version": to_version, "to_sha256": to_sha256,
           "nonce": nonce, "issued_at": issued_at, "expires_at": expires_at}
    try:
        parse_rollback_payload(canonical_json(doc), where="rollback directive")
    except (VerificationFailed, ValueError) as exc:
        raise InvalidInput(getattr(exc, "message", str(exc))) from None
    return doc


def sign_rollback_directive(doc: dict, signer) -> dict:
    """The DSSE envelope of a directive document, signed by `signer` (a signing.Signer)."""
    return dsse.sign_envelope(canonical_json(doc), PAYLOAD_TYPE, signer)


def parse_rollback_payload(payload: bytes, *, where: str, signer: str = "") -> RollbackDirective:
    """Parse directive payload bytes strictly (canonical JSON, every field, no other); ManifestInvalid."""
    doc = check_keys(load_canonical(payload, where), KEYS, where, "directive")
    if type(doc["directive_format"]) is not int or doc["directive_format"] != DIRECTIVE_FORMAT:
        raise fail(where, "directive_format", f"is {doc['directive_format']!r}; this EdgeGate reads format "
                                              f"{DIRECTIVE_FORMAT}")
    check_match(doc["rollout_id"], ROLLOUT_ID_RE, where, "rollout_id", "a rollout id")
    for field in ("device_id", "cohort"):
        if doc[field] is not None:
            check_match(doc[field], TEXT_RE, where, field, "a short printable string or null")
    if doc["device_id"] is None and doc["cohort"] is None:
        raise fail(where, "device_id", "and cohort are both null: a directive must name a device or a cohort")
    for field in ("from_sha256", "to_sha256"):
        check_digest(doc[field], where, field)
    check_name(doc["to_name"], where, "to_name")
    check_semver(doc["to_version"], where, "to_version")
    check_match(doc["nonce"], NONCE_RE, where, "nonce", "32 to 64 lowercase hex digits")
    check_time(doc["issued_at"], where, "issued_at")
    check_time(doc["expires_at"], where, "expires_at")
    if doc["expires_at"] <= doc["issued_at"]:  # same fixed format, so text order is time order
        raise fail(where, "expires_at", f"{doc['expires_at']} is not after issued_at {doc['issued_at']}")
    return RollbackDirective(**{k: v for k, v in doc.items() if k != "directive_format"}, signer=signer)


def verify_rollback_envelope(envelope, trusted_keys: dsse.TrustedKeys, *, now: datetime,
                             where: str) -> RollbackDirective:
    """Verify a directive envelope: signatures first (KeyUntrusted, SignatureInvalid, KeyRevoked), then
    the payload (ManifestInvalid), then expiry against `now` (ManifestExpired). Returns the directive."""
    payload, signers = verify_signatures(envelope, trusted_keys, payload_type=PAYLOAD_TYPE, now=now, where=where)
    directive = parse_rollback_payload(payload, where=where, signer=min(signers))
    if dsse.parse_utc(directive.expires_at, what="expires_at") <= now:
        raise ManifestExpired(f"{where}: rollback directive for {directive.rollout_id} expired at "
                              f"{directive.expires_at}", hint="sign a new directive")
    return directive

