"""`gate check BUNDLE`: re-derive a bundle's verdict from the bundle alone, after verifying it.

Re-deriving uses only the bundle: the measurement payloads under `raw/` (the warmup repeat excluded,
as `predicate.raw` flags it), `mapping.json`, the gates, run policy and devices from `pipeline.json`,
and for relative gates the baseline evidence under `baselines/`, through the same
`evaluate.verdict_from_payloads` a run uses (SPEC §6).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from ..errors import VerificationFailed
from ..evidence.bundle_layout import baseline_file
from ..evidence.bundle_read import BundleTrust, VerifiedBundle
from ..evidence.dsse import TrustedKeys
from ..evidence.verify import verify_bundle_file


class BundleCheck(BaseModel):
    path: str
    run_id: str | None
    pipeline: str | None
    backend: str | None
    key_id: str
    signed_verdict: str | None
    verdict: str
    agrees: bool
    mismatches: list[str]  # "<gate> on <device>: signed <status>, recomputed <status>"
    evaluation: dict  # gating.Evaluation, as JSON
    devices: dict  # recomputed metrics per device


def _signed_json(verified: VerifiedBundle, name: str):
    if name not in verified.files:
        raise VerificationFailed(f"{name}: not in the bundle; the verdict cannot be re-derived without it")
    try:
        return json.loads(verified.files[name])
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationFailed(f"{name}: not valid JSON ({exc})") from None


def verdict_inputs(verified: VerifiedBundle):
    """(payloads by device, mapping, gates, policy, devices, provided) from the bundle alone."""
    from pydantic import ValidationError

    from ..spec.pipeline import Gate, RunPolicy

    pipeline, mapping = _signed_json(verified, "pipeline.json"), _signed_json(verified, "mapping.json")
    try:
        gates = [Gate(**g) for g in pipeline["gates"]]
        policy = RunPolicy(**pipeline["run_policy"])
        devices = [str(d) for d in pipeline["devices"]]
    except (KeyError, TypeError, ValidationError) as exc:
        raise VerificationFailed(f"pipeline.json: no usable gates, run_policy or devices ({exc})") from None
    payloads: dict[str, list[tuple[int, dict]]] = {d: [] for d in devices}
    for entry in verified.statement["predicate"].get("raw") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or \
                not isinstance(entry.get("repeat_index"), int) or not isinstance(entry.get("device"), str):
            raise VerificationFailed(f"summary.json: predicate.raw entry {str(entry)[:80]} is not "
                                     "{file, device, repeat_index, warmup}")
        if not entry.get("warmup"):
            payload = _signed_json(verified, entry["file"])
            payloads.setdefault(entry["device"], []).append((entry["repeat_index"], payload))
    by_device = {d: [p for _, p in sorted(items, key=lambda t: t[0])] for d, items in payloads.items()}
    provided = {"reference_outputs"} if (pipeline.get("model") or {}).get("reference_outputs") else set()
    return by_device, mapping, gates, policy, devices, provided


def _baseline_json(verified: VerifiedBundle, digest: str):
    """A baseline blob, which must hash to the digest it is named and recorded by."""

    name = baseline_file(digest)
    data = _signed_json(verified, name)
    if verified.statement["predicate"]["files"].get(name) != f"sha256:{digest}":
        raise VerificationFailed(f"{name}: content does not hash to the digest it is named by")
    return data


def _baselines(verified: VerifiedBundle) -> dict | None:
    """The baseline evidence of relative gates, from `baselines.json` and `baselines/<sha256>.json`."""
    from ..gating.evaluate import BaselineEvidence

    if "baselines.json" not in verified.files:
        return None
    out = {}
    for key, rec in _signed_json(verified, "baselines.json").items():
        try:
            if rec.get("missing"):
                out[key] = BaselineEvidence(source=rec["source"], missing=rec["missing"])
                continue
            paired = rec.get("paired") or {}
            out[key] = BaselineEvidence(
                source=rec["source"], run_id=rec.get("run_id"), bundle_sha256=rec.get("bundle_sha256"),
                mapping=_baseline_json(verified, rec["mapping_sha256"]),
                payloads=[_baseline_json(verified, d) for d in rec["payloads"]],
                mode=rec.get("mode"), paired_reason=rec.get("paired_reason"),
                paired_payloads=[_baseline_json(verified, d) for d in paired.get("payloads", [])])
        except (KeyError, TypeError, AttributeError) as exc:
            raise VerificationFailed(f"baselines.json: record {key!r} is malformed ({exc})") from None
    return out


def check_bundle(path: Path | str, trusted: TrustedKeys | BundleTrust) -> BundleCheck:
    """Verify a bundle, then recompute its verdict from its own evidence and compare with the signed one.

    Returns the BundleCheck (`agrees` False names each gate whose status differs). Raises InvalidInput
    or VerificationFailed as `verify_file` does, and VerificationFailed when a file needed to
    re-derive is missing or malformed.
    """
    from ..gating.evaluate import verdict_from_payloads

    verified = verify_bundle_file(path, trusted)
    predicate = verified.statement["predicate"]
    metrics, evaluation = verdict_from_payloads(*verdict_inputs(verified), baselines=_baselines(verified))
    signed = {(g["gate"], g["device"]): g["status"] for g in predicate.get("gates") or []}
    recomputed = {(g.gate, g.device): g.status for g in evaluation.gates}
    mismatches = [f"{gate} on {device}: signed {signed.get((gate, device), 'absent')}, recomputed "
                  f"{recomputed.get((gate, device), 'absent')}"
                  for gate, device in sorted(set(signed) | set(recomputed))
                  if signed.get((gate, device)) != recomputed.get((gate, device))]
    return BundleCheck(path=str(path), run_id=predicate.get("run_id"), pipeline=predicate.get("pipeline"),
                       backend=predicate.get("backend"), key_id=verified.key_id,
                       signed_verdict=predicate.get("verdict"), verdict=evaluation.verdict,
                       agrees=evaluation.verdict == predicate.get("verdict") and not mismatches,
                       mismatches=mismatches, evaluation=evaluation.model_dump(mode="json"),
                       devices={d: {k: v.model_dump(mode="json") for k, v in m.items()} for d, m in metrics.items()})


def require_agreement(check: BundleCheck) -> BundleCheck:
    """Return `check` when the recomputed verdict agrees with the signed one; else raise VerificationFailed."""
    if not check.agrees:
        raise VerificationFailed(
            f"{check.path}: recomputed verdict {check.verdict} disagrees with the signed {check.signed_verdict} "
            f"(gates: {'; '.join(check.mismatches) or 'none differ'})",
            hint="the evidence does not support the signed verdict; do not ship on it")
    return check
