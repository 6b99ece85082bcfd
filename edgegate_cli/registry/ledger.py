"""Recording a built release: its blobs in the CAS, then its row, blob references and audit events in
one write transaction that re-checks uniqueness under the lock (two publishes of one NAME@VERSION at
once: one wins, the other is a no-op if it had the same bytes, else RELEASE_EXISTS)."""

from __future__ import annotations

from pathlib import Path

from ..canonical import sha256_hex, tag
from ..errors import InvalidInput, ReleaseExists
from ..evidence import release_manifest as rm
from ..store.artifacts import add_ref, store_bytes, store_file
from ..store.state import record_audit
from .names import same_precedence
from .records import release_id, row_of


def check_unique(db, name: str, version: str, existing: dict | None, payload_sha256: str) -> None:
    """Versions are immutable: NAME@VERSION may exist only with these payload bytes, and no other version
    of NAME may have the same semver precedence. Raises ReleaseExists."""
    rid = release_id(name, version)
    if existing is not None and existing["payload_sha256"] != payload_sha256:
        raise ReleaseExists(f"release {rid} is already published with other content ({existing['payload_sha256']}"
                            + (", deleted since" if existing["deleted_at"] else "") + "); versions are immutable",
                            hint="publish a new version (e.g. bump the patch number)")
    others = [r["version"] for r in db.query("SELECT version FROM releases WHERE name = ?", [name])]
    clash = same_precedence(version, others)
    if clash:
        raise ReleaseExists(f"release {rid}: {name}@{clash} is already published and {version} differs "
                            "from it only in build metadata (the same semver precedence)",
                            hint="publish a version of higher precedence")


def payload_digest(statement: dict) -> str:
    """The tagged sha256 of a release statement's canonical payload: what "the same release" compares."""
    return tag(sha256_hex(rm.release_payload(statement)))


def store_blobs(ws, model, bundle: Path | None, reference, envelope: bytes) -> dict[str, str]:
    """Every blob in the CAS; {path in the exported layout: hex}. A model file that changed since it was
    hashed is refused (InvalidInput): the manifest names the bytes that were proven."""
    blobs = {}
    for f in model.files:
        source = model.source_of(f["path"])
        digest = store_file(ws.db, ws.cas, source, "model", Path(f["path"]).name)
        if "sha256:" + digest != f["sha256"]:
            raise InvalidInput(f"{source}: changed while it was being published",
                               hint="publish again once the file is no longer being written")
        blobs[f"model/{f['path']}"] = digest
    if bundle is not None:
        blobs["evidence.zip"] = store_file(ws.db, ws.cas, bundle, "bundle", "evidence.zip")
    if reference is not None:
        blobs["reference/inputs.npz"] = store_bytes(ws.db, ws.cas, reference.inputs, "reference", "inputs.npz")
        blobs["reference/outputs.npz"] = store_bytes(ws.db, ws.cas, reference.outputs, "reference", "outputs.npz")
    blobs["release.dsse.json"] = store_bytes(ws.db, ws.cas, envelope, "release", "release.dsse.json")
    return blobs


def record_release(ws, statement: dict, payload_sha256: str, blobs: dict[str, str], *, forced: bool) -> str:
    """Insert the release row (or restore a deleted one with the same bytes), reference every blob, audit.

    Returns "published", or "unchanged" when the same release was already there. Raises ReleaseExists.
    """
    pred = statement["predicate"]
    name, version, evidence = pred["name"], pred["version"], pred["evidence"] or {}
    rid = release_id(name, version)
    with ws.db.atomic():  # re-read under the write lock: a concurrent publish may have won
        existing = row_of(ws.db, name, version)
        if existing is not None and existing["created_at"] != pred["created_at"]:
            # A concurrent publisher won with its own creation time: the same content is the same release.
            payload_sha256 = payload_digest({**statement, "predicate": {**pred, "created_at": existing["created_at"]}})
        check_unique(ws.db, name, version, existing, payload_sha256)
        if existing is not None and not existing["deleted_at"]:
            return "unchanged"  # this run's blobs stay unreferenced: the stored release keeps its own
        for digest in sorted(set(blobs.values())):
            add_ref(ws.db, digest, "release", rid)
        detail = {"name": name, "version": version, "channel": pred["channel"], "payload_sha256": payload_sha256,
                  "identity": pred["model"]["identity"], "evidence_bundle_sha256": evidence.get("bundle_sha256"),
                  "run_id": evidence.get("run_id"), "forced": forced}
        if existing is None:
            ws.db["releases"].insert({
                "name": name, "version": version, "channel": pred["channel"], "payload_sha256": payload_sha256,
                "envelope_sha256": blobs["release.dsse.json"], "identity": pred["model"]["identity"],
                "model_format": pred["model"]["format"], "model_bytes": sum(f["size"] for f in pred["model"]["files"]),
                "evidence_bundle_sha256": evidence.get("bundle_sha256"), "evidence_verdict": evidence.get("verdict"),
                "run_id": evidence.get("run_id"), "forced": int(forced), "publisher": pred["publisher"],
                "created_at": pred["created_at"], "expires_at": pred["expires_at"]})
            record_audit(ws.db, "publish", "release_published", detail)
            if forced:
                record_audit(ws.db, "publish", "release_forced", {**detail, "evidence": "none"})
            return "published"
        # the same bytes again restore a deleted release
        ws.db.execute("UPDATE releases SET deleted_at = NULL WHERE name = ? AND version = ?", [name, version])
        record_audit(ws.db, "publish", "release_published", {**detail, "restored": True})
        return "published"
