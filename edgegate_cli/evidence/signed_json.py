"""What every signed EdgeGate document (release manifest, rollback directive) shares: the canonical
JSON rule, DSSE signature checks that say *which* rule refused, and strict field checks.

Standard library, `dsse`, `canonical` and `errors` only (PyNaCl inside a function): the edge agent imports it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from ..canonical import canonical_json
from ..errors import KeyRevoked, KeyUntrusted, ManifestInvalid, SignatureInvalid, VerificationFailed
from . import dsse

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
KEY_ID_RE = re.compile(r"^eg-[0-9a-f]{16}\Z")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")
TEXT_RE = re.compile(r"^[\x20-\x7e]{1,128}\Z")


def load_canonical(payload: bytes, where: str) -> dict:
    """Parse payload bytes that must be the canonical JSON of an object; ManifestInvalid otherwise.

    Requiring the canonical form also refuses duplicate keys and NaN, which JSON readers disagree on.
    """
    def no_constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalid(f"{where}: payload is not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict) or canonical_json(doc) != payload:
        raise ManifestInvalid(f"{where}: payload is not the canonical JSON of an object")
    return doc


def verify_signatures(envelope, trusted_keys: dsse.TrustedKeys, *, payload_type: str, now: datetime,
                      where: str) -> tuple[bytes, set[str]]:
    """Check a DSSE envelope before its payload is parsed; return (payload, key ids that signed it).

    A signature counts when its key id is trusted, it verifies over PAE, and its key is not revoked at
    `now` (a revoked key can backdate, so no time claimed inside the payload matters). When none counts,
    raises KeyRevoked if a trusted key was revoked, else SignatureInvalid if a trusted key's signature
    is bad, else KeyUntrusted. A malformed envelope or another payloadType raises ManifestInvalid.
    """
    try:
        found_type, payload, signatures = dsse.parse_envelope(envelope)
    except VerificationFailed as exc:
        raise ManifestInvalid(f"{where}: {exc.message}") from None
    if found_type != payload_type:
        raise ManifestInvalid(f"{where}: payloadType is {show(found_type)}, expected {payload_type}")
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    message = dsse.pae(found_type, payload)
    accepted, failures = set(), {}
    for keyid, sig in signatures:
        if keyid not in trusted_keys:
            failures.setdefault(KeyUntrusted, f"{where}: signed by untrusted key {show(keyid)}")
            continue
        public_key, revoked_at = trusted_keys[keyid]
        try:
            VerifyKey(public_key).verify(message, sig)
        except (BadSignatureError, ValueError, TypeError):
            failures.setdefault(SignatureInvalid, f"{where}: bad signature by key {keyid} "
                                                  "(the payload or the signature was altered)")
            continue
        if revoked_at is not None and dsse.parse_utc(revoked_at, what=f"revocation of {keyid}") <= now:
            failures.setdefault(KeyRevoked, f"{where}: signed by key {keyid}, revoked at {revoked_at}")
            continue
        accepted.add(keyid)
    if not accepted:
        kind = next(k for k in (KeyRevoked, SignatureInvalid, KeyUntrusted) if k in failures)
        raise kind(failures[kind], hint="a device trusts only the publisher keys listed in its agent config")
    return payload, accepted


# -- strict field checks (each raises ManifestInvalid naming `where` and the field) -------------------

def show(value) -> str:
    """A value from an untrusted document, safe for a one-line message (no control characters)."""
    return value if isinstance(value, str) and TEXT_RE.match(value) else repr(value)[:80]


def fail(where: str, field: str, problem: str) -> ManifestInvalid:
    return ManifestInvalid(f"{where}: {field} {problem}", field=field)


def check_keys(doc, expected: set[str], where: str, field: str) -> dict:
    """`doc` is an object with exactly the `expected` keys."""
    if not isinstance(doc, dict):
        raise fail(where, field, "is not an object")
    missing, extra = sorted(expected - set(doc)), sorted(set(doc) - expected)
    if missing or extra:
        raise fail(where, field, f"has missing field(s) {missing} / unknown field(s) {[show(k) for k in extra]}")
    return doc


def check_match(value, pattern: re.Pattern, where: str, field: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise fail(where, field, f"is {show(value)}, not {what}")
    return value


def check_digest(value, where: str, field: str) -> str:
    return check_match(value, DIGEST_RE, where, field, "sha256:<64 lowercase hex>")


def check_name(value, where: str, field: str) -> str:
    return check_match(value, NAME_RE, where, field, "a name of [a-z0-9._-] (at most 64, no path characters)")


def check_semver(value, where: str, field: str) -> str:
    """A semver 2.0 version string, as the `semver` library parses it."""
    import semver

    try:
        semver.Version.parse(value)
    except (ValueError, TypeError):
        raise fail(where, field, f"is {show(value)}, not a semver 2.0 version (e.g. 1.2.0)") from None
    return value


def check_time(value, where: str, field: str, *, optional: bool = False) -> str | None:
    """EdgeGate's UTC time format (2026-01-02T03:04:05.000000Z); None only when `optional`."""
    if value is None and optional:
        return None
    return check_match(value, TIME_RE, where, field, "a UTC time like 2026-01-02T03:04:05.000000Z")
