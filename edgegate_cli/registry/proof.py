"""Does an evidence bundle prove a model? The check `publish` makes before signing a release, and
`releases verify` repeats on a release's bundle.

In order, each refusal with its own code (exit 1):
1. the zip is safe and its envelope is signed by a trusted key not revoked *now*
   (EVIDENCE_UNTRUSTED for an unknown or revoked key; EVIDENCE_INVALID for a bad signature or a foreign
   payloadType: a release envelope is not evidence). For `publish` the key must be unrevoked now: a
   compromised key can backdate a bundle's signing time. `releases verify` checks an existing release's
   bundle as `verify` does (revocation at the signing time), since the release signature covers its digest;
2. the signed subject is the model's identity digest (DIGEST_MISMATCH: evidence of another model);
3. every file verifies and the verdict is re-derived from the raw payloads (`gating.check_bundle`;
   EVIDENCE_INVALID for any tampering);
4. the re-derived verdict and gates equal the signed ones (EVIDENCE_INCONSISTENT: a re-signed, flipped
   verdict), and the verdict is `passed` (EVIDENCE_FAILED naming the failed gates; NOT_PROVEN for `error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..canonical import file_sha256, tag
from ..errors import (
    DigestMismatch,
    EvidenceFailed,
    EvidenceInconsistent,
    EvidenceInvalid,
    EvidenceUntrusted,
    InvalidInput,
    KeyRevoked,
    KeyUntrusted,
    NotProven,
    VerificationFailed,
)
from ..evidence.dsse import EVIDENCE_PAYLOAD_TYPE, TrustedKeys, parse_utc
from ..evidence.signed_json import show, verify_signatures

TRUST_HINT = "publish from the home whose key signed the evidence, or re-bundle the run with a current key"


@dataclass(frozen=True)
class Proof:
    path: str
    bundle_sha256: str  # "sha256:<hex>" of the zip
    key_id: str  # the key that signed the evidence
    run_id: str
    pipeline: str
    backend: str
    devices: list[str]
    verdict: str  # re-derived, never copied
    gates: list[dict]  # {gate, device, status, value} as re-derived

    def evidence(self) -> dict:
        """The manifest's `evidence` field."""
        return {"bundle_sha256": self.bundle_sha256, "run_id": self.run_id, "verdict": self.verdict,
                "pipeline": self.pipeline, "backend": self.backend, "devices": self.devices,
                "signer": self.key_id, "gates": self.gates}


def _signed_summary(path: Path, where: str, trusted: TrustedKeys, now: datetime | None) -> dict:
    """Step 1: the summary Statement, after its signature checked out (revocation at `now`, else at the
    signing time the summary claims)."""
    from ..evidence.zip_safety import ENVELOPE, SUMMARY, open_bundle

    try:
        bundle = open_bundle(path, contents=False)
        envelope = json.loads(bundle.files[ENVELOPE]) if ENVELOPE in bundle.files else None
    except VerificationFailed as exc:
        raise EvidenceInvalid(f"{where}: {exc.message}") from None
    except (UnicodeDecodeError, ValueError):
        raise EvidenceInvalid(f"{where}: {ENVELOPE} is not JSON") from None
    if envelope is None or SUMMARY not in bundle.files:
        raise EvidenceInvalid(f"{where}: not an evidence bundle ({SUMMARY} and {ENVELOPE} are missing)",
                              hint="pass the zip `edgegate run --bundle` or `edgegate bundle create` wrote")
    hint = TRUST_HINT if now is not None else "trust the key that signed the evidence too: --key PUBFILE"
    if now is None:  # revocation at the signing time the summary claims, as `verify` checks it
        try:
            now = parse_utc(json.loads(bundle.files[SUMMARY])["predicate"]["created_at"], what="created_at")
        except (ValueError, KeyError, TypeError, InvalidInput):
            raise EvidenceInvalid(f"{where}: {SUMMARY} names no signing time (predicate.created_at)") from None
    try:
        keys = trusted if isinstance(trusted, dict) else trusted.keys  # a home's BundleTrust: its key table
        payload, _ = verify_signatures(envelope, keys, payload_type=EVIDENCE_PAYLOAD_TYPE, now=now, where=where)
    except (KeyUntrusted, KeyRevoked) as exc:
        raise EvidenceUntrusted(exc.message, hint=hint) from None
    except VerificationFailed as exc:
        raise EvidenceInvalid(exc.message, hint="the bundle was altered after signing; do not ship on it") from None
    try:
        return json.loads(payload)
    except ValueError:
        raise EvidenceInvalid(f"{where}: {SUMMARY} is not JSON") from None


def _subject(summary: dict, where: str) -> str:
    try:
        (subject,) = summary["subject"]
        return tag(subject["digest"]["sha256"])
    except (KeyError, TypeError, ValueError):
        raise EvidenceInvalid(f"{where}: the evidence names no single model subject") from None


def _gate_text(g: dict) -> str:
    value = f" = {g['value']:.4g}" if isinstance(g.get("value"), float) else ""
    return f"{g['gate']} on {g['device']}{value} {g.get('unit') or ''}".rstrip()


def prove(path: Path | str, trusted: TrustedKeys, *, identity: str, now: datetime | None,
          where: str | None = None) -> Proof:
    """Check that the bundle at `path` proves the model whose identity digest is `identity`.

    `now` is when a signing key must not be revoked (publish); None checks revocation at the bundle's
    signing time (an existing release's evidence). Returns the Proof; raises InvalidInput for a missing
    file and the refusals listed in the module docstring.
    """
    from ..gating.bundle_reevaluation import check_bundle

    path = Path(path)
    where = where or str(path)
    summary = _signed_summary(path, where, trusted, now)
    subject = _subject(summary, where)
    if subject != identity:
        raise DigestMismatch(f"{where}: the evidence is of model {subject}, not of this model ({identity})",
                             hint="pass the bundle of a run of this exact model (its files, byte for byte)")
    try:
        check = check_bundle(path, trusted)
    except VerificationFailed as exc:
        raise EvidenceInvalid(f"{where}: {exc.message}", hint="the evidence does not verify; do not ship on it") \
            from None
    if not check.agrees:
        raise EvidenceInconsistent(
            f"{where}: the verdict re-derived from the raw payloads is {check.verdict}, but the bundle is signed "
            f"as {show(check.signed_verdict)} ({'; '.join(check.mismatches) or 'the verdicts differ'})",
            hint="the signed verdict is not what its evidence supports; do not ship on it")
    gates = check.evaluation["gates"]
    if check.verdict == "failed":
        failed = [_gate_text(g) for g in gates if g["status"] == "fail" and g["required"]]
        raise EvidenceFailed(f"{where}: the evidence failed gate {'; '.join(failed) or '(none named)'} "
                             f"(verdict re-derived from the bundle: failed)",
                             hint="only a model whose gates passed can be published (or --force, audited)")
    if check.verdict != "passed":
        code = check.evaluation.get("error_code") or "ERROR"
        raise NotProven(f"{where}: the evidence reaches no verdict ({code}: "
                        f"{check.evaluation.get('error_detail') or 'see `edgegate gate check`'})",
                        hint="re-run the pipeline until it gives a verdict, then publish that run's bundle")
    predicate = summary.get("predicate") or {}
    return Proof(path=str(path), bundle_sha256=tag(file_sha256(path)), key_id=check.key_id,
                 run_id=str(check.run_id), pipeline=str(check.pipeline), backend=str(check.backend),
                 devices=[str(d) for d in predicate.get("devices") or []], verdict=check.verdict,
                 gates=[{"gate": g["gate"], "device": g["device"], "status": g["status"], "value": g["value"]}
                        for g in gates])
