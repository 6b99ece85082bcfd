"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, envelope.md and protocol.md), Ed25519,
and what offline verification needs besides: public key formats, key ids and times.

An envelope is `{"payloadType", "payload": base64(payload), "signatures": [{"keyid", "sig": base64}]}`;
each signature is over `PAE(payloadType, payload)`, so any DSSE implementation can check EdgeGate's
evidence. Evidence and releases use different payloadType and predicateType values, so one can
never be passed off as the other.

Contracts (change only with a new version):
- **key id v1**: `eg-` + the first 16 lowercase hex digits of sha256(raw 32-byte public key). The
  `eg-` prefix with 16 hex means v1; a later scheme gets another prefix, so ids never collide.
- **public key text**: `pem` is SubjectPublicKeyInfo (RFC 8410) `-----BEGIN PUBLIC KEY-----`, as
  openssl and `cryptography` read and write it; `base64` is the raw 32-byte key, standard base64.
- **times**: ISO-8601 with a zone; EdgeGate writes UTC as `2025-01-02T03:04:05.000000Z`.

This module stays light (no SQLite, no pydantic; PyNaCl only inside functions) so `verify` starts fast.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidInput, VerificationFailed

EVIDENCE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
RELEASE_PAYLOAD_TYPE = "application/vnd.edgegate.release+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
EVIDENCE_PREDICATE_TYPE = "https://edgegate.dev/evidence/v1"
RELEASE_PREDICATE_TYPE = "https://edgegate.dev/release/v1"

KEY_ID_PREFIX = "eg-"  # v1
KEY_ID_HEX = 16
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # SEQUENCE{SEQUENCE{OID 1.3.101.112}, BIT STRING}

TrustedKeys = dict[str, tuple[bytes, str | None]]  # key_id -> (raw Ed25519 public key, revoked_at or None)
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,200}")  # used with fullmatch


def key_id_for(public_key: bytes) -> str:
    """The v1 key id of a raw 32-byte Ed25519 public key."""
    return KEY_ID_PREFIX + hashlib.sha256(public_key).hexdigest()[:KEY_ID_HEX]


def parse_utc(text: str, *, what: str) -> datetime:
    """Parse an ISO-8601 time with a zone (e.g. `2025-01-02T03:04:05Z`); raise InvalidInput naming `what`."""
    try:
        parsed = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(f"{what} is {text!r}, not an ISO-8601 time with a zone (e.g. 2025-01-02T03:04:05Z)")
    return parsed.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_key_pem(public_key: bytes) -> str:
    """SubjectPublicKeyInfo PEM for a raw 32-byte Ed25519 public key (RFC 8410)."""
    body = base64.b64encode(ED25519_SPKI_PREFIX + public_key).decode()
    return "-----BEGIN PUBLIC KEY-----\n" + body + "\n-----END PUBLIC KEY-----\n"


def parse_public_key(text: str, *, what: str) -> bytes:
    """Read a public key exported by `keys export` (PEM SPKI or base64 raw); return the raw 32 bytes.

    Raises InvalidInput naming `what` (usually the file) when it is neither.
    """
    body = text.strip()
    pem = body.startswith("-----BEGIN PUBLIC KEY-----") and body.endswith("-----END PUBLIC KEY-----")
    if pem:
        body = "".join(body.splitlines()[1:-1])
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if pem and len(raw) == 44 and raw.startswith(ED25519_SPKI_PREFIX):
        return raw[len(ED25519_SPKI_PREFIX):]
    if not pem and len(raw) == 32:
        return raw
    raise InvalidInput(f"{what}: not an Ed25519 public key (expected the PEM or base64 output of "
                       "`edgegate keys export`)")


def read_public_key_file(path: Path | str) -> tuple[str, bytes]:
    """Read a public key file (PEM or base64 raw) and return (key id, raw public key).

    Raises InvalidInput when the file is missing, unreadable or not an Ed25519 public key.
    """
    from ..files import read_regular

    try:
        text = read_regular(path, max_bytes=64 * 1024).decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: cannot read public key (not ASCII text)") from None
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: cannot read public key ({exc.message.removeprefix(f'{path}: ')})") from None
    raw = parse_public_key(text, what=str(path))
    return key_id_for(raw), raw



def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.

    LEN is the byte length as ASCII decimal with no leading zeros; the type is UTF-8 encoded.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, signer) -> dict:
    """Sign `payload` with `signer` (a signing.Signer: `.key_id`, `.sign(bytes) -> 64 bytes`).

    Returns the DSSE envelope as a dict, base64 in standard encoding with padding.
    """
    sig = signer.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode("ascii")}]}


def _show(value) -> str:
    """A value from an untrusted document, safe to put in a one-line message."""
    return value if isinstance(value, str) and _PRINTABLE.fullmatch(value) else repr(value)[:80]


def _b64(value) -> bytes | None:
    """Decode standard or URL-safe base64 (DSSE allows both); None when it is neither."""
    if not isinstance(value, str) or not value.isascii():
        return None
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(value.encode("ascii"), altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def parse_envelope(envelope) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """Check an envelope's shape; return (payloadType, payload bytes, [(keyid, signature bytes)]).

    Raises VerificationFailed("malformed DSSE envelope: ...") naming the field at fault.
    """
    def bad(detail: str):
        return VerificationFailed(f"malformed DSSE envelope: {detail}")

    if not isinstance(envelope, dict):
        raise bad("not a JSON object")
    if not isinstance(envelope.get("payloadType"), str):
        raise bad("payloadType is missing or not a string")
    payload = _b64(envelope.get("payload"))
    if payload is None:
        raise bad("payload is missing or not base64")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise bad("signatures is missing or empty")
    out = []
    for i, entry in enumerate(sigs):
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str):
            raise bad(f"signatures[{i}].keyid is missing or not a string")
        sig = _b64(entry.get("sig"))
        if sig is None:
            raise bad(f"signatures[{i}].sig is missing or not base64")
        out.append((entry["keyid"], sig))
    return envelope["payloadType"], payload, out


def _check_signature(keyid: str, sig: bytes, message: bytes, trusted_keys: TrustedKeys,
                     signed_at: datetime) -> str | None:
    """None when `sig` is a good signature by a trusted key not revoked at `signed_at`; else why not."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if keyid not in trusted_keys:
        return f"signature by untrusted key {_show(keyid)}"
    public_key, revoked_at = trusted_keys[keyid]
    try:
        VerifyKey(public_key).verify(message, sig)
    except (BadSignatureError, ValueError, TypeError):  # nacl's ValueError: wrong length
        return f"bad signature by key {keyid} (the payload or the signature was altered)"
    if revoked_at is not None and parse_utc(revoked_at, what=f"revocation time of {keyid}") <= signed_at:
        return f"signature by key {keyid}, revoked at {revoked_at}, before the signing time {_show_time(signed_at)}"
    return None


def _show_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_envelope(envelope, trusted_keys: TrustedKeys, *, expected_payload_type: str,
                    signed_at: str | datetime, where: str | None = None) -> tuple[bytes, str]:
    """Verify a DSSE envelope; return (payload bytes, key id of the accepted signature).

    A signature is accepted when its key id is in `trusted_keys`, it verifies over
    PAE(payloadType, payload), and its key was not revoked at or before `signed_at`. With several
    signatures one accepted signature suffices; otherwise the first signature's failure is reported.
    Raises VerificationFailed (prefixed with `where`, e.g. the file name) with one of:
    "malformed DSSE envelope: ...", "payloadType is X, expected Y", "signature by untrusted key K",
    "signature by key K, revoked at R, before the signing time S", "bad signature by key K (...)".
    """
    prefix = f"{where}: " if where else ""
    try:
        when = signed_at if isinstance(signed_at, datetime) else parse_utc(signed_at, what="signing time")
        payload_type, payload, signatures = parse_envelope(envelope)
    except (InvalidInput, VerificationFailed) as exc:
        raise VerificationFailed(prefix + exc.message) from None
    if payload_type != expected_payload_type:
        raise VerificationFailed(f"{prefix}payloadType is {_show(payload_type)}, expected {expected_payload_type}")
    message = pae(payload_type, payload)
    failures = [(keyid, _check_signature(keyid, sig, message, trusted_keys, when)) for keyid, sig in signatures]
    for keyid, failure in failures:
        if failure is None:
            return payload, keyid
    keyid, failure = failures[0]
    hint = None if keyid in trusted_keys else "pass the signer's public key with --key if you trust it"
    raise VerificationFailed(prefix + failure, hint=hint)
