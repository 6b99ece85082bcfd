"""The signed release manifest (RELEASE_CONTRACT.md): a pure builder, the canonical payload bytes, a
strict parser and the envelope verification. `publish` writes it; the edge agent, `releases verify`
and the pull path read it, so it imports only the standard library, `dsse`, `errors` and
`signed_json` (the agent runs on devices: no SQLite, no onnx, no pydantic here).

Verification raises VerificationFailed subclasses whose `code` says which rule refused:
SIGNATURE_INVALID, KEY_UNTRUSTED, KEY_REVOKED, MANIFEST_EXPIRED or MANIFEST_INVALID.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidInput, ManifestExpired, ManifestInvalid, VerificationFailed
from . import dsse
from .signed_json import (
    KEY_ID_RE,
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
    show,
    verify_signatures,
)

RELEASE_FORMAT = 1
PAYLOAD_TYPE = dsse.RELEASE_PAYLOAD_TYPE
PREDICATE_TYPE = dsse.RELEASE_PREDICATE_TYPE
MODEL_FORMATS = ("onnx", "onnx_external", "genai", "aimet", "tflite", "torchscript")
MAX_FILE_BYTES = 500 * 1024 * 1024
VERDICT_RE = re.compile(r"^(passed|failed|error)\Z")
PATH_PART_RE = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}\Z")
PREDICATE_KEYS = {"release_format", "name", "version", "channel", "created_at", "expires_at", "model", "evidence",
                  "compatible", "reference", "publisher", "edgegate_version"}
EVIDENCE_KEYS = {"bundle_sha256", "run_id", "verdict", "pipeline", "backend", "devices", "signer", "gates"}


@dataclass(frozen=True)
class ReleaseFile:
    path: str  # relative POSIX path inside the release's model directory
    sha256: str  # "sha256:<hex>"
    size: int

    @property
    def hexdigest(self) -> str:
        return self.sha256.removeprefix("sha256:")


@dataclass(frozen=True)
class ReleaseManifest:
    name: str
    version: str
    channel: str
    created_at: str
    expires_at: str | None
    model_format: str
    identity: str
    files: tuple[ReleaseFile, ...]
    input_specs: dict | None
    evidence: dict | None
    compatible: tuple[str, ...]
    reference: dict | None  # {"inputs": {"sha256", "size"}, "outputs": {...}} or None
    publisher: str
    raw_payload: bytes
    payload_sha256: str  # "sha256:<hex>" of raw_payload


def release_payload(statement: dict) -> bytes:
    """The canonical payload bytes of a release statement: the same release gives the same bytes."""
    return canonical_json(statement)


def envelope_text(envelope: dict) -> str:
    """The text of `release.dsse.json`."""
    return json.dumps(envelope, sort_keys=True, indent=2) + "\n"


def build_release_statement(*, name: str, version: str, channel: str, created_at: str, model_format: str,
                            identity: str, files: list, publisher: str, edgegate_version: str,
                            expires_at: str | None = None, input_specs: dict | None = None,
                            evidence: dict | None = None, compatible: list[str] | tuple = (),
                            reference: dict | None = None) -> dict:
    """The in-toto Statement of a release (pure). `files` are ReleaseFile or {path, sha256, size}.

    Subjects are the model files in path order. Raises InvalidInput (naming the field) when the
    result would not pass `parse_release_payload`.
    """
    try:
        entries = sorted((f if isinstance(f, ReleaseFile) else ReleaseFile(**f) for f in files),
                         key=lambda f: str(f.path))
    except TypeError as exc:
        raise InvalidInput(f"release manifest: model.files: {exc}") from None
    statement = {
        "_type": dsse.IN_TOTO_STATEMENT_TYPE,
        "predicateType": PREDICATE_TYPE,
        "subject": [{"name": f.path, "digest": {"sha256": f.hexdigest}} for f in entries],
        "predicate": {
            "release_format": RELEASE_FORMAT, "name": name, "version": version, "channel": channel,
            "created_at": created_at, "expires_at": expires_at,
            "model": {"format": model_format, "identity": identity, "input_specs": input_specs,
                      "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in entries]},
            "evidence": evidence, "compatible": list(compatible), "reference": reference,
            "publisher": publisher, "edgegate_version": edgegate_version},
    }
    try:
        parse_release_payload(release_payload(statement), where="release manifest")
    except (VerificationFailed, ValueError, TypeError) as exc:
        raise InvalidInput(getattr(exc, "message", str(exc))) from None
    return statement


def sign_release(statement: dict, signer) -> dict:
    """The DSSE envelope of `statement`, signed by `signer` (a signing.Signer)."""
    return dsse.sign_envelope(release_payload(statement), PAYLOAD_TYPE, signer)


# -- verification -------------------------------------------------------------------------------------

def verify_release_envelope(envelope, trusted_keys: dsse.TrustedKeys, *, now: datetime,
                            where: str) -> ReleaseManifest:
    """Verify a release envelope and return its manifest.

    Order: envelope shape and payloadType, signatures (verify_signatures), the payload (strict), the
    publisher named in it must be a key that signed, then expiry against `now` (ManifestExpired).
    """
    payload, signers = verify_signatures(envelope, trusted_keys, payload_type=PAYLOAD_TYPE, now=now, where=where)
    manifest = parse_release_payload(payload, where=where)
    if manifest.publisher not in signers:
        raise ManifestInvalid(f"{where}: publisher is {manifest.publisher} but the manifest was signed by "
                              f"{', '.join(sorted(signers))}")
    if manifest.expires_at is not None and dsse.parse_utc(manifest.expires_at, what="expires_at") <= now:
        raise ManifestExpired(f"{where}: {manifest.name} {manifest.version} expired at {manifest.expires_at}",
                              hint="publish the release again with a later expiry")
    return manifest


def parse_release_payload(payload: bytes, *, where: str) -> ReleaseManifest:
    """Parse release payload bytes strictly; raise ManifestInvalid naming the field at fault.

    The bytes must be the canonical JSON of an in-toto Statement v1 with the release predicate, every
    field present with its type, no unknown field, and subjects equal to the model files.
    """
    doc = load_canonical(payload, where)
    pred, files = _check_statement(doc, where)
    return ReleaseManifest(
        name=pred["name"], version=pred["version"], channel=pred["channel"], created_at=pred["created_at"],
        expires_at=pred["expires_at"], model_format=pred["model"]["format"], identity=pred["model"]["identity"],
        files=files, input_specs=pred["model"]["input_specs"], evidence=pred["evidence"],
        compatible=tuple(pred["compatible"]), reference=pred["reference"], publisher=pred["publisher"],
        raw_payload=payload, payload_sha256="sha256:" + hashlib.sha256(payload).hexdigest())


# -- field rules ------------------------------------------------------------------------------------

def _check_path(value, where: str, field: str) -> str:
    parts = value.split("/") if isinstance(value, str) and len(value) <= 255 else [""]
    if not all(PATH_PART_RE.match(p) and p not in (".", "..") for p in parts):
        raise fail(where, field, f"is {show(value)}, not a relative POSIX path of letters, digits and ._+-")
    return value


def _check_size(value, where: str, field: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_FILE_BYTES:
        raise fail(where, field, f"is {show(value)}, not a size in bytes up to {MAX_FILE_BYTES}")
    return value


def _check_files(files, where: str) -> tuple[ReleaseFile, ...]:
    if not isinstance(files, list) or not files:
        raise fail(where, "model.files", "is not a non-empty list")
    out = []
    for i, entry in enumerate(files):
        field = f"model.files[{i}]"
        check_keys(entry, {"path", "sha256", "size"}, where, field)
        out.append(ReleaseFile(_check_path(entry["path"], where, f"{field}.path"),
                               check_digest(entry["sha256"], where, f"{field}.sha256"),
                               _check_size(entry["size"], where, f"{field}.size")))
    paths = [f.path for f in out]
    if paths != sorted(set(paths)):
        raise fail(where, "model.files", "is not in path order without duplicates")
    return tuple(out)


def _check_text_list(value, where: str, field: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and TEXT_RE.match(v) for v in value):
        raise fail(where, field, "is not a list of short printable strings")


def _check_evidence(evidence, where: str) -> None:
    check_keys(evidence, EVIDENCE_KEYS, where, "evidence")
    check_digest(evidence["bundle_sha256"], where, "evidence.bundle_sha256")
    check_match(evidence["verdict"], VERDICT_RE, where, "evidence.verdict", "passed, failed or error")
    check_match(evidence["signer"], KEY_ID_RE, where, "evidence.signer", "a key id (eg- and 16 hex)")
    for field in ("run_id", "pipeline", "backend"):
        check_match(evidence[field], TEXT_RE, where, f"evidence.{field}", "a short printable string")
    _check_text_list(evidence["devices"], where, "evidence.devices")
    if not isinstance(evidence["gates"], list) or not all(isinstance(g, dict) for g in evidence["gates"]):
        raise fail(where, "evidence.gates", "is not a list of objects")


def _check_input_specs(specs, where: str) -> None:
    if specs is None:
        return
    if not isinstance(specs, dict):
        raise fail(where, "model.input_specs", "is not an object or null")
    for name, spec in specs.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(type(d) is int and d > 0 for d in shape):
            raise fail(where, f"model.input_specs.{show(name)}.shape", "is not a list of positive integers")


def _check_predicate(pred: dict, where: str) -> None:
    if type(pred["release_format"]) is not int or pred["release_format"] != RELEASE_FORMAT:
        raise fail(where, "release_format", f"is {show(pred['release_format'])}; this EdgeGate reads "
                                            f"format {RELEASE_FORMAT} (upgrade EdgeGate)")
    check_name(pred["name"], where, "name")
    check_name(pred["channel"], where, "channel")
    check_semver(pred["version"], where, "version")
    check_time(pred["created_at"], where, "created_at")
    check_time(pred["expires_at"], where, "expires_at", optional=True)
    check_match(pred["publisher"], KEY_ID_RE, where, "publisher", "a key id (eg- and 16 hex)")
    check_match(pred["edgegate_version"], TEXT_RE, where, "edgegate_version", "a version string")
    _check_text_list(pred["compatible"], where, "compatible")
    if pred["evidence"] is not None:
        _check_evidence(pred["evidence"], where)
    if pred["reference"] is not None:
        check_keys(pred["reference"], {"inputs", "outputs"}, where, "reference")
        for side in ("inputs", "outputs"):
            check_keys(pred["reference"][side], {"sha256", "size"}, where, f"reference.{side}")
            check_digest(pred["reference"][side]["sha256"], where, f"reference.{side}.sha256")
            _check_size(pred["reference"][side]["size"], where, f"reference.{side}.size")


def _check_statement(doc: dict, where: str) -> tuple[dict, tuple[ReleaseFile, ...]]:
    check_keys(doc, {"_type", "predicateType", "subject", "predicate"}, where, "statement")
    if doc["_type"] != dsse.IN_TOTO_STATEMENT_TYPE or doc["predicateType"] != PREDICATE_TYPE:
        raise fail(where, "predicateType", f"is {show(doc['predicateType'])}, expected {PREDICATE_TYPE} "
                                           "(an evidence statement is not a release)")
    pred = check_keys(doc["predicate"], PREDICATE_KEYS, where, "predicate")
    _check_predicate(pred, where)
    model = check_keys(pred["model"], {"format", "identity", "files", "input_specs"}, where, "model")
    if model["format"] not in MODEL_FORMATS:
        raise fail(where, "model.format", f"is {show(model['format'])}, expected one of {', '.join(MODEL_FORMATS)}")
    check_digest(model["identity"], where, "model.identity")
    _check_input_specs(model["input_specs"], where)
    files = _check_files(model["files"], where)
    if doc["subject"] != [{"name": f.path, "digest": {"sha256": f.hexdigest}} for f in files]:
        raise fail(where, "subject", "does not list the model files (name and sha256, in path order)")
    return pred, files
