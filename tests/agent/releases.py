"""Signed releases for the agent tests, written in the exported layout of RELEASE_CONTRACT.md
(`release.dsse.json`, `model/<path>`, `reference/{inputs,outputs}.npz`) through the release_manifest
builder. test_agent_published.py uses the real `edgegate publish` + `releases export` (`read_export`);
the rest build releases here because they need what publish rightly refuses to make: other models
without a run, expired manifests, untrusted or revoked signers, sizes that lie.

Also the release box's side of a push (HEAD/PUT each blob, POST /v1/deploy, poll the deployment),
as the rollout issue will do it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgegate_cli.evidence import dsse
from edgegate_cli.evidence import release_manifest as rm
from edgegate_cli.evidence import rollback_directive as rd


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc(moment: datetime | None = None, **delta) -> str:
    return dsse.format_utc((moment or datetime.now(UTC)) + timedelta(**delta))


@dataclass
class Release:
    dir: Path
    envelope: dict
    name: str
    version: str
    identity: str  # "sha256:<hex>", the model identity
    files: list[tuple[str, bytes]]  # every blob: (path in the export, bytes), model files and reference


def identity_of(models: dict[str, bytes]) -> str:
    """The model identity as `run` computes it: a file's sha256, or for several files the sha256 of the
    canonical {name: sha256} manifest."""
    if len(models) == 1:
        return "sha256:" + sha(next(iter(models.values())))
    manifest = json.dumps({p: sha(b) for p, b in sorted(models.items())}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + sha(manifest.encode())


def write_release(out: Path, signer, *, version: str, models: dict[str, bytes], name: str = "quickstart",
                  model_format: str | None = None, evidence: bool = True, compatible=(), expires_at=None,
                  reference: tuple[bytes, bytes] | None = None, publisher: str | None = None,
                  declared_sizes: dict[str, int] | None = None) -> Release:
    """Write a signed release into `out` (created) and return it. `declared_sizes` lets the manifest
    lie about a file's size (the files written are the real bytes)."""
    model_format = model_format or ("onnx" if len(models) == 1 else "onnx_external")
    sizes = {p: len(b) for p, b in models.items()} | (declared_sizes or {})
    files = [{"path": p, "sha256": "sha256:" + sha(b), "size": sizes[p]} for p, b in sorted(models.items())]
    ev = None
    if evidence:
        ev = {"bundle_sha256": "sha256:" + sha(b"bundle of " + version.encode()), "run_id": "run-test",
              "verdict": "passed", "pipeline": name, "backend": "local", "devices": ["local:cpu"],
              "signer": signer.key_id, "gates": [{"gate": "latency_ms <= 250", "device": "local:cpu",
                                                  "status": "pass", "value": 0.2}]}
    ref = None
    if reference:
        ref = {side: {"sha256": "sha256:" + sha(data), "size": len(data)}
               for side, data in zip(("inputs", "outputs"), reference, strict=True)}
    statement = rm.build_release_statement(
        name=name, version=version, channel="stable", created_at=utc(), expires_at=expires_at,
        model_format=model_format, identity=identity_of(models), files=files, evidence=ev,
        compatible=list(compatible), reference=ref, publisher=publisher or signer.key_id, edgegate_version="0.1.0")
    envelope = rm.sign_release(statement, signer)
    out.mkdir(parents=True)
    (out / "release.dsse.json").write_text(rm.envelope_text(envelope))
    blobs = [(f"model/{p}", b) for p, b in sorted(models.items())]
    if reference:
        blobs += [("reference/inputs.npz", reference[0]), ("reference/outputs.npz", reference[1])]
    for path, data in blobs:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    return Release(out, envelope, name, version, identity_of(models), blobs)


def read_release_dir(path: Path) -> dict:
    return json.loads((path / "release.dsse.json").read_text())


def upload(client, release: Release) -> list[int]:
    """HEAD each blob, PUT those the agent lacks; return the PUT status codes."""
    codes = []
    for _, data in release.files:
        url = f"/v1/blobs/sha256:{sha(data)}"
        if client.head(url).status_code == 200:
            continue
        response = client.put(url, content=data, headers={"X-Edgegate-Size": str(len(data))})
        codes.append(response.status_code)
        assert response.status_code == 201, response.text
    return codes


def deploy_body(release_or_envelope, *, nonce: str | None = None, issued_at: str | None = None,
                rollout_id: str | None = "ro-test") -> dict:
    envelope = release_or_envelope.envelope if isinstance(release_or_envelope, Release) else release_or_envelope
    return {"manifest": envelope, "nonce": nonce or secrets.token_hex(16), "issued_at": issued_at or utc(),
            "rollout_id": rollout_id}


def wait_deployment(client, dep_id: str, timeout: float = 60.0) -> dict:
    """Poll GET /v1/deployments/ID until it is active or failed (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/v1/deployments/{dep_id}").json()
        if record["status"] in ("active", "failed"):
            return record
        time.sleep(0.02)
    raise AssertionError(f"deployment {dep_id} did not end within {timeout} s: {record}")


def push(client, release: Release, **body) -> dict:
    """Upload, deploy, wait: the final deployment record (asserts the deploy was accepted)."""
    upload(client, release)
    response = client.post("/v1/deploy", json=deploy_body(release, **body))
    assert response.status_code == 202, response.text
    return wait_deployment(client, response.json()["id"])


def rollback_envelope(signer, *, from_sha256: str, to: Release, device_id: str | None = "dev-1",
                      cohort: str | None = None, nonce: str | None = None, issued_at: str | None = None,
                      expires_at: str | None = None) -> dict:
    doc = rd.build_rollback_directive(
        rollout_id="ro-test", device_id=device_id, cohort=cohort, from_sha256=from_sha256, to_name=to.name,
        to_version=to.version, to_sha256=to.identity, nonce=nonce or secrets.token_hex(16),
        issued_at=issued_at or utc(), expires_at=expires_at or utc(minutes=10))
    return rd.sign_rollback_directive(doc, signer)


def read_export(path: Path) -> Release:
    """A release directory as `edgegate releases export` writes it (RELEASE_CONTRACT.md layout)."""
    import base64

    envelope = json.loads((path / "release.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    files = [(p.relative_to(path).as_posix(), p.read_bytes()) for p in sorted(path.rglob("*"))
             if p.is_file() and p.relative_to(path).parts[0] in ("model", "reference")]
    return Release(path, envelope, predicate["name"], predicate["version"], predicate["model"]["identity"], files)
