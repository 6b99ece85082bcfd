"""`publish`: turn a proven model into a signed release (SPEC §10.1).

Order: check the arguments (name, semver, channel, device types, expiry) → load the publisher key →
validate and hash the model → prove it with the evidence (`proof.prove`, on a private copy of the
bundle, so the bytes proven are the bytes kept) → reference inputs/outputs → build the manifest
(`evidence.release_manifest`) → compare with what NAME@VERSION already is (the same bytes: a no-op;
other bytes: RELEASE_EXISTS) → sign → store every blob in the CAS, then the row, its references and
the audit events in one transaction (`ledger`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from .. import __version__
from ..canonical import sha256_hex, tag
from ..errors import InvalidInput, NotProven
from ..evidence import release_manifest as rm
from ..evidence.dsse import format_utc, parse_utc
from .ledger import check_unique, payload_digest, record_release, store_blobs
from .names import check_device_types, check_name, check_version
from .push import PushResult, open_store, parse_expiry, push_release
from .records import row_of


@dataclass(frozen=True)
class PublishRequest:
    model: str
    name: str
    version: str
    bundle: str | None = None
    run: str | None = None
    channel: str = "stable"
    compatible: tuple[str, ...] = ()
    reference_data: str | None = None
    key: str | None = None
    force: bool = False
    expires_at: str | None = None
    to: str | None = None  # s3://BUCKET/PREFIX: also push the release there (registry/push.py)
    channel_expires_in: str = "7d"


class PublishResult(BaseModel):
    name: str
    version: str
    status: str  # "published", or "unchanged" (the same release was already published)
    channel: str
    identity: str
    model_format: str
    files: list[dict]
    payload_sha256: str
    envelope_sha256: str
    publisher: str
    created_at: str
    expires_at: str | None
    compatible: list[str]
    evidence: dict | None  # the manifest's evidence, or None (--force: "evidence: none")
    reference: str | None  # where the reference inputs came from, if any
    forced: bool
    pushed: PushResult | None = None  # with --to


def _check_request(req: PublishRequest, now) -> str | None:
    check_name(req.name, "--name")
    check_version(req.version, "--version")
    check_name(req.channel, "--channel")
    if req.bundle and req.run:
        raise InvalidInput("--bundle and --run both name evidence: give one")
    if req.force and (req.bundle or req.run):
        raise InvalidInput("--force publishes without evidence: drop --bundle/--run, or drop --force")
    if not (req.force or req.bundle or req.run):
        raise NotProven(f"{req.name}@{req.version}: no evidence given; only a proven model becomes a release",
                        hint="pass --bundle FILE or --run RUN_ID (or --force to publish without evidence, audited)")
    if req.expires_at is None:
        return None
    expires = parse_utc(req.expires_at, what="--expires-at")
    if expires <= now:
        raise InvalidInput(f"--expires-at {req.expires_at} is not in the future", field="--expires-at")
    return format_utc(expires)


def _run_bundle(ws, run_id: str, signer, tmp: Path) -> tuple[Path, str]:
    """A private copy of RUN's bundle (created, signed by `signer`, when the run has none in the CAS)."""
    from ..evidence.bundle_write import create_bundle
    from ..store.runs import get_run

    run = get_run(ws.db, run_id)
    where = f"run {run['id']}"
    if run["status"] == "error":
        raise NotProven(f"{where} ended in error ({run['error_code'] or 'no code'}): it proves nothing",
                        hint="re-run the pipeline until it gives a verdict")
    if run["status"] not in ("passed", "failed"):
        raise InvalidInput(f"{where} is still {run['status']}; publish it once it has finished")
    copy = tmp / "evidence.zip"
    if run["bundle_sha256"] and ws.cas.exists(run["bundle_sha256"]):
        shutil.copyfile(ws.cas.path_of(run["bundle_sha256"]), copy)
    else:
        create_bundle(ws, run["id"], signer, out=copy)
    return copy, f"{where}'s bundle"


def _evidence(ws, req: PublishRequest, model, signer, tmp: Path, progress):
    """The Proof (None under --force) and the path of the proven copy."""
    if req.force:
        return None, None
    from ..evidence.keys import trusted_keys
    from .proof import prove

    if req.bundle:
        if not Path(req.bundle).is_file():
            raise InvalidInput(f"--bundle {req.bundle}: no such file")
        copy, where = tmp / "evidence.zip", req.bundle
        shutil.copyfile(req.bundle, copy)
    else:
        copy, where = _run_bundle(ws, req.run, signer, tmp)
    progress("verifying the evidence and re-deriving its verdict")
    return prove(copy, trusted_keys(ws), identity=model.identity, now=ws.ctx.clock.now(), where=where), copy


def _reference(ws, req: PublishRequest, model, proof, progress):
    """Reference data: --reference-data, else the proven run's inputs when this home has them."""
    from .reference import ONNX_FORMS, make_reference

    if req.reference_data:
        try:
            data = Path(req.reference_data).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"--reference-data {req.reference_data}: cannot read ({exc.strerror or exc})") \
                from None
        progress("computing reference outputs")
        return make_reference(model, data, source=req.reference_data, where=f"--reference-data {req.reference_data}")
    run = next(iter(ws.db["runs"].rows_where("id = ?", [proof.run_id])), None) if proof else None
    inputs = json.loads(run["inputs_json"]) if run and run["inputs_json"] else None
    if model.form not in ONNX_FORMS or not inputs or str(inputs.get("source", "")).startswith("promptpack") \
            or not ws.cas.exists(inputs["sha256"]):
        return None
    progress("computing reference outputs from the run's inputs")
    return make_reference(model, ws.cas.read_bytes(inputs["sha256"], verify=True), source=f"run {run['id']}",
                          where=f"run {run['id']}'s inputs")


def _input_specs(model, reference) -> dict | None:
    if reference is not None:
        return reference.input_specs
    specs = {t.name: {"shape": t.shape, "dtype": t.dtype} for t in model.inputs}
    fixed = specs and all(isinstance(d, int) and d > 0 for s in specs.values() for d in s["shape"])
    return specs if fixed else None


def _blob(data: bytes) -> dict:
    return {"sha256": tag(sha256_hex(data)), "size": len(data)}


def publish(ws, req: PublishRequest, progress=lambda _text: None) -> PublishResult:
    """Publish `req.model` as `req.name`@`req.version`; see the module docstring for the order.

    Raises InvalidInput / LimitExceeded (arguments, model, key), the proof's refusals (exit 1), and
    ReleaseExists when NAME@VERSION (or a version of the same precedence) holds other bytes.
    """
    from ..evidence.keys import load_signing_key
    from .model_files import describe_model

    now = ws.ctx.clock.now()
    expires_at = _check_request(req, now)
    compatible = check_device_types(req.compatible)
    signer = load_signing_key(ws, req.key)
    if req.to is not None:  # before anything is published: a bad URL or no credentials stops here
        channel_expiry = parse_expiry(req.channel_expires_in)
        store, _ = open_store(req.to)
    progress(f"hashing {req.model}")
    model = describe_model(req.model)
    existing = row_of(ws.db, req.name, req.version)
    with tempfile.TemporaryDirectory(prefix="edgegate-publish-") as tmp:
        proof, bundle = _evidence(ws, req, model, signer, Path(tmp), progress)
        reference = _reference(ws, req, model, proof, progress)
        statement = rm.build_release_statement(
            name=req.name, version=req.version, channel=req.channel,
            created_at=existing["created_at"] if existing else format_utc(now), expires_at=expires_at,
            model_format=model.form, identity=model.identity, files=model.files,
            input_specs=_input_specs(model, reference), evidence=proof.evidence() if proof else None,
            compatible=compatible, publisher=signer.key_id, edgegate_version=__version__,
            reference={"inputs": _blob(reference.inputs), "outputs": _blob(reference.outputs)} if reference else None)
        payload_sha = payload_digest(statement)
        check_unique(ws.db, req.name, req.version, existing, payload_sha)
        envelope = rm.envelope_text(rm.sign_release(statement, signer)).encode()
        progress("storing the release")
        blobs = store_blobs(ws, model, bundle, reference, envelope)
    status = record_release(ws, statement, payload_sha, blobs, forced=req.force)
    pred = statement["predicate"]
    if status == "unchanged":  # report the release as stored (a concurrent publisher may have won)
        stored = row_of(ws.db, req.name, req.version)
        pred = {**pred, "created_at": stored["created_at"]}
        payload_sha, blobs = stored["payload_sha256"], {**blobs, "release.dsse.json": stored["envelope_sha256"]}
    pushed = None
    if req.to is not None:
        progress(f"pushing to {store.location.url()}")
        pushed = _push(ws, req, store, channel_expiry, progress)
    return PublishResult(
        pushed=pushed, name=req.name, version=req.version, status=status, channel=req.channel, identity=model.identity,
        model_format=model.form, files=model.files, payload_sha256=payload_sha,
        envelope_sha256=tag(blobs["release.dsse.json"]), publisher=pred["publisher"], created_at=pred["created_at"],
        expires_at=pred["expires_at"], compatible=pred["compatible"], evidence=pred["evidence"],
        reference=reference.source if reference else None, forced=req.force)




def _push(ws, req: PublishRequest, store, expires_in, progress) -> PushResult:
    """Push the release just published; a failure says it is published here and how to push again."""
    from ..errors import EdgeGateError

    try:
        return push_release(ws, f"{req.name}@{req.version}", req.to, key=req.key, expires_in=expires_in,
                            progress=progress, store=store)
    except EdgeGateError as exc:
        exc.message = f"{req.name}@{req.version} is published in this home, but the push failed: {exc.message}"
        exc.args = (exc.message,)
        exc.hint = (exc.hint + "; then " if exc.hint else "") + \
            f"push it with `edgegate releases push {req.name}@{req.version} {store.location.url()}`"
        raise
