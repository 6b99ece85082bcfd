"""Evidence bundles (SPEC §7): a signed, deterministic zip holding everything a run's verdict rests on.

Layout, bundle format 1 (every JSON file is canonical JSON, `canonical.canonical_json`, unless noted):

- `summary.json`: an in-toto Statement v1. Subject: the model (name, sha256). predicateType:
  `https://edgegate.dev/evidence/v1`. Predicate: run id, pipeline, backend, devices, model, inputs,
  verdict, per-gate results, versions, `created_at` (the run's finish time; verify checks revocation
  against it), `signer`, `raw` (the payload index: file, device, repeat_index, warmup) and `files`
  (`sha256:<hex>` of every other entry).
- `summary.dsse.json`: DSSE envelope over summary.json's exact bytes, payloadType `application/vnd.in-toto+json`.
- `pipeline.json`: the pipeline as the run used it (gates, run policy and devices included).
- `mapping.json`, `capabilities.json`: the snapshots the run used, their exact CAS bytes.
- `promptpack.json` (GenAI runs): the PromptPack's canonical bytes, exactly as hashed.
- `metrics.json`, `gates.json`: metrics per device; the gate evaluation (verdict, per-gate results).
- `raw/<device>/<repeat>.json`: every payload, exact CAS bytes; the warmup is `<repeat>-warmup.json`.
- `baselines.json` and `baselines/<sha256>.json` (runs with relative gates): the baselines the run
  recorded, and each baseline mapping and measurement payload, so relative gates re-derive too.
- `report.md` (`bundle_report.py`), and `model/<file>` only with `include_model`.

Entries are stored, not deflated: payloads would shrink ~3.5×, but inflating costs about four times
what hashing does, and verifying should cost one hashing pass. Entries are sorted, dated 1980-01-01,
mode 0644: the same run and key give the same bytes (Ed25519 signatures are deterministic).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from pydantic import BaseModel

from ..canonical import canonical_json
from ..errors import InvalidInput, VerificationFailed
from .dsse import EVIDENCE_PAYLOAD_TYPE, EVIDENCE_PREDICATE_TYPE, IN_TOTO_STATEMENT_TYPE, sign_envelope
from .zip_safety import ENVELOPE, SUMMARY, open_bundle, write_deterministic_zip


class BundleResult(BaseModel):
    run_id: str
    path: str
    sha256: str  # tagged, of the zip
    bytes: int
    key_id: str
    verdict: str
    files: dict[str, str]  # every entry but summary.json and summary.dsse.json: name -> sha256:<hex>


class BundleSummary(BaseModel):
    path: str
    verified: bool = False  # `bundle show` reads, it does not verify
    run_id: str | None
    pipeline: str | None
    backend: str | None
    verdict: str | None
    error_code: str | None
    model: dict | None
    created_at: str | None
    signer: str | None  # key id named in the envelope's first signature (unchecked)
    files: dict[str, str]  # as summary.json lists them
    entries: dict[str, int]  # every zip entry and its size


def seal(statement: dict, files: dict[str, bytes], signer) -> dict[str, bytes]:
    """Complete a bundle: list every file's sha256 in predicate.files, serialize summary.json, sign it.

    `statement` is an in-toto Statement whose predicate lacks `files`; returns every entry's bytes.
    """
    from ..store.cas import tag

    listed = {name: tag(hashlib.sha256(data).hexdigest()) for name, data in sorted(files.items())}
    full = {**statement, "predicate": {**statement["predicate"], "files": listed,
                                       "signer": {"key_id": signer.key_id}}}
    summary = canonical_json(full)
    envelope = sign_envelope(summary, EVIDENCE_PAYLOAD_TYPE, signer)
    return {**files, SUMMARY: summary, ENVELOPE: canonical_json(envelope)}




def statement_for(run: dict, predicate: dict) -> dict:
    model = json.loads(run["model_json"])
    return {"_type": IN_TOTO_STATEMENT_TYPE, "predicateType": EVIDENCE_PREDICATE_TYPE,
            "subject": [{"name": model["name"], "digest": {"sha256": model["sha256"]}}], "predicate": predicate}


def create_bundle(ws, run_id: str, signer, *, out: Path | str | None = None,
                  include_model: bool = False) -> BundleResult:
    """Bundle a finished run, signed by `signer` (signing.Signer), into the zip `out`.

    `out` defaults to `<run_id>.bundle.zip` in the current directory. The zip is also stored in the
    CAS (kind 'bundle', referenced by the run), its sha256 recorded in runs.bundle_sha256, and an
    audit event written. Returns the BundleResult. Raises NotFound for an unknown run, InvalidInput
    for a run that is still active or never collected payloads (or an unwritable `out`), CorruptBlob
    when a stored blob the bundle needs no longer matches its digest (nothing is signed then).
    """
    from ..store.artifacts import add_ref, store_file
    from ..store.cas import tag
    from ..store.runs import get_run
    from ..store.state import record_audit
    from .bundle_contents import collect_files

    run = get_run(ws.db, run_id)
    files, predicate = collect_files(ws, run, include_model=include_model)
    # The signing time: the run's finish, or the key's creation if the key is younger (an old run bundled
    # after a rotation). Deterministic, so the same run and key still give the same bytes.
    key_row = next(iter(ws.db["signing_keys"].rows_where("key_id = ?", [signer.key_id])), None)
    predicate["signed_at"] = max(predicate["created_at"], (key_row or {}).get("created_at") or "")
    entries = seal(statement_for(run, predicate), files, signer)
    path = Path(out) if out else Path.cwd() / f"{run['id']}.bundle.zip"
    if not path.parent.is_dir():
        raise InvalidInput(f"--out {path}: directory {path.parent} does not exist")
    try:
        write_deterministic_zip(path, entries, compression=zipfile.ZIP_STORED)
    except OSError as exc:
        raise InvalidInput(f"--out {path}: cannot write ({exc.strerror or exc})") from None
    digest = store_file(ws.db, ws.cas, path, "bundle", path.name)
    with ws.db.atomic():
        add_ref(ws.db, digest, "bundle", run["id"])
        ws.db["runs"].update(run["id"], {"bundle_sha256": digest})
        ws.db.execute("INSERT OR IGNORE INTO bundle_records (sha256, key_id, first_seen_at, how) "
                      "VALUES (?, ?, ?, 'created')", [digest, signer.key_id, ws.db.now()])
        record_audit(ws.db, "bundle create", "bundle_created", {
            "run_id": run["id"], "sha256": tag(digest), "key_id": signer.key_id, "path": str(path),
            "include_model": include_model})
    return BundleResult(run_id=run["id"], path=str(path), sha256=tag(digest), bytes=path.stat().st_size,
                        key_id=signer.key_id, verdict=predicate["verdict"],
                        files=json.loads(entries[SUMMARY])["predicate"]["files"])


def show_bundle(path: Path | str) -> BundleSummary:
    """What a bundle claims, read safely (hostile zips rejected) but NOT verified: no signature or hash is checked.

    Every claimed field is untrusted: a non-string is shown as JSON, never trusted as a type. Raises
    InvalidInput (exit 2) for a missing file, an unsafe zip or an unreadable summary.json.
    """
    from .bundle_read import _load_json

    try:
        bundle = open_bundle(path)
        if SUMMARY not in bundle.files:
            raise VerificationFailed(f"{path}: {SUMMARY} is missing; this is not an EdgeGate bundle")
        statement = _load_json(bundle.files[SUMMARY], SUMMARY)
        envelope = _load_json(bundle.files[ENVELOPE], ENVELOPE) if ENVELOPE in bundle.files else {}
    except VerificationFailed as exc:
        raise InvalidInput(exc.message if exc.message.startswith(str(path)) else f"{path}: {exc.message}",
                           hint="`edgegate verify` says whether a bundle can be trusted") from None
    predicate = statement.get("predicate") if isinstance(statement, dict) else None
    if not isinstance(predicate, dict):
        raise InvalidInput(f"{path}: {SUMMARY} has no predicate object; this is not an EdgeGate summary")
    sigs = envelope.get("signatures") if isinstance(envelope, dict) else None
    signer = sigs[0].get("keyid") if isinstance(sigs, list) and sigs and isinstance(sigs[0], dict) else None
    files = predicate.get("files") if isinstance(predicate.get("files"), dict) else {}
    model = predicate.get("model")
    return BundleSummary(
        path=str(path), run_id=_claim(predicate.get("run_id")), pipeline=_claim(predicate.get("pipeline")),
        backend=_claim(predicate.get("backend")), verdict=_claim(predicate.get("verdict")),
        error_code=_claim(predicate.get("error_code")),
        model={"name": _claim(model.get("name")), "sha256": _claim(model.get("sha256"))} if isinstance(model, dict)
        else None, created_at=_claim(predicate.get("created_at")), signer=_claim(signer),
        files={str(k): _claim(v) or "" for k, v in files.items()},
        entries={n: len(d) for n, d in sorted(bundle.files.items())})


def _claim(value) -> str | None:
    """An untrusted claimed value for display: a string as it is (printing escapes its control characters),
    anything else as (short) JSON."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)[:200]
    except (ValueError, TypeError, RecursionError):
        return repr(type(value))


def bundle_after_run(ws, run_id: str, signer, out: Path | str) -> BundleResult:
    """`run --bundle`: bundle the run that just finished; any failure becomes BundleFailed (exit 3).

    The run itself stays recorded with its verdict; the message says how to retry.
    """
    from ..errors import BundleFailed, EdgeGateError

    try:
        return create_bundle(ws, run_id, signer, out=out)
    except (EdgeGateError, OSError) as exc:
        why = exc.message if isinstance(exc, EdgeGateError) else f"{type(exc).__name__}: {exc}"
        raise BundleFailed(f"run {run_id} finished, but its bundle {out} could not be written: {why}",
                           hint=f"retry with `edgegate bundle create {run_id} --out FILE`") from None
