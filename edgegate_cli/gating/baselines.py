"""Baselines of relative gates (SPEC §6 step 6): resolve, record, reload, and pin them.

Precedence per pipeline and device: a pinned baseline (`gate baseline set`) > the gate's own
`baseline`: `last-passed` (the newest passed run of the same pipeline with payloads for that
device), a run id (same pipeline and device unless `allow_foreign`), or an evidence bundle zip
(verified against the home's trusted keys first). What was resolved is recorded in the run
(`runs.baselines_json`: digests of the baseline's mapping and measurement payloads, all in the CAS)
so `gate check RUN` re-derives relative gates from stored evidence alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from ..canonical import canonical_json
from ..errors import InvalidInput, NotFound
from ..files import is_regular_file
from ..spec.pipeline import Pipeline
from ..store.runs import get_run
from ..store.state import record_audit
from ..store.workspace import Workspace
from .evaluate import BaselineEvidence, baseline_key

LAST_PASSED = "last-passed"


class BaselinePin(BaseModel):
    pipeline: str
    device: str
    run_id: str
    created_at: str


def _payload_rows(ws: Workspace, run_id: str, device: str) -> list[dict]:
    return list(ws.db["run_payloads"].rows_where("run_id = ? and device = ? and warmup = 0 and role is null",
                                                 [run_id, device], order_by="repeat_index"))


def _from_run(ws: Workspace, run: dict, device: str, source: str) -> tuple[BaselineEvidence, dict]:
    """The evidence of stored run `run` on `device`, and its record (digests) for the candidate run."""
    rows = _payload_rows(ws, run["id"], device)
    payloads = [json.loads(ws.cas.read_bytes(r["sha256"])) for r in rows]
    mapping = json.loads(ws.cas.read_bytes(run["mapping_sha256"]))
    record = {"source": source, "run_id": run["id"], "bundle_sha256": run["bundle_sha256"],
              "mapping_sha256": run["mapping_sha256"], "payloads": [r["sha256"] for r in rows],
              "model": _model_record(json.loads(run["model_json"] or "null"))}
    return BaselineEvidence(source=source, run_id=run["id"], bundle_sha256=run["bundle_sha256"], payloads=payloads,
                            mapping=mapping), record


def _model_record(model: dict | None) -> dict | None:
    """What paired measurement needs to find the baseline's model in the CAS: name, digest, form, files."""
    if not isinstance(model, dict) or not isinstance(model.get("files"), dict):
        return None
    return {k: model.get(k) for k in ("name", "sha256", "form", "files")}


def _bundle_model(ws: Workspace, verified, digest: str) -> dict | None:
    """The bundle's model record; model bytes it includes (`--include-model`) go to the CAS, so paired
    measurement can run the baseline model again."""
    from ..store.artifacts import store_bytes

    model = _model_record(verified.statement["predicate"].get("model"))
    if model is None:
        return None
    for name, file_digest in model["files"].items():
        data = verified.files.get(f"model/{name}")
        if data is not None and hashlib.sha256(data).hexdigest() == file_digest:
            store_bytes(ws.db, ws.cas, data, "model", f"baseline-{digest[:12]}-{Path(name).name}")
    return model


def _last_passed(ws: Workspace, pipeline: str, device: str, exclude: str | None) -> dict | None:
    for run in ws.db["runs"].rows_where("pipeline = ? and status = 'passed' and id != ?", [pipeline, exclude or ""],
                                        order_by="created_at desc"):
        if run["mapping_sha256"] and _payload_rows(ws, run["id"], device):
            return run
    return None


def _check_foreign(run: dict, pipeline: Pipeline, device: str, where: str, allow_foreign: bool) -> None:
    devices = json.loads(run["devices_json"] or "[]")
    problem = None
    if run["pipeline"] != pipeline.name:
        problem = f"is a run of pipeline {run['pipeline']!r}, not {pipeline.name!r}"
    elif device not in devices:
        problem = f"did not run on {device} (it ran on {', '.join(devices)})"
    if problem and not allow_foreign:
        raise InvalidInput(f"{where}: baseline run {run['id']} {problem}",
                           hint="pass --allow-foreign-baseline to compare against it anyway")


def _from_bundle(ws: Workspace, path: str, device: str, where: str) -> tuple[BaselineEvidence, dict]:
    """Verify the bundle, then read its raw payloads and mapping into the CAS (so re-evaluation finds them)."""
    from ..errors import VerificationFailed
    from ..evidence.bundle_trust import bundle_trust
    from ..evidence.verify import verify_bundle_file
    from ..store.artifacts import store_bytes
    from .bundle_reevaluation import verdict_inputs

    try:
        verified = verify_bundle_file(path, bundle_trust(ws))
        payloads_by_device, mapping, *_ = verdict_inputs(verified)
    except (VerificationFailed, InvalidInput) as err:
        raise InvalidInput(f"{where}: baseline bundle {path} failed verification: {err.message}",
                           hint="check it with `edgegate verify`") from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    run_id = verified.statement["predicate"].get("run_id")
    payloads = payloads_by_device.get(device, [])
    record = {"source": "bundle", "run_id": run_id, "bundle_sha256": digest, "path": path,
              "mapping_sha256": store_bytes(ws.db, ws.cas, canonical_json(mapping),
                                            "metric_mappings", f"baseline-{digest[:12]}-mapping.json"),
              "payloads": [store_bytes(ws.db, ws.cas, canonical_json(p), "raw_payload",
                                       f"baseline-{digest[:12]}-{i}.json") for i, p in enumerate(payloads)],
              "model": _bundle_model(ws, verified, digest)}
    missing = None if payloads else f"bundle {path} holds no payloads for {device}"
    return BaselineEvidence(source="bundle", run_id=run_id, bundle_sha256=digest, payloads=payloads,
                            mapping=mapping, missing=missing), record


def _resolve_one(ws: Workspace, pipeline: Pipeline, spec: str, device: str, where: str, *, exclude: str | None,
                 allow_foreign: bool) -> tuple[BaselineEvidence, dict]:
    pin = next(iter(ws.db["baseline_pins"].rows_where("pipeline = ? and device = ?", [pipeline.name, device])), None)
    if pin is not None:
        run = get_run(ws.db, pin["run_id"])
        return _from_run(ws, run, device, "pinned")
    if spec == LAST_PASSED:
        run = _last_passed(ws, pipeline.name, device, exclude)
        if run is None:
            why = f"no passed run of pipeline {pipeline.name} on {device} yet"
            return BaselineEvidence(source=LAST_PASSED, missing=why), {"source": LAST_PASSED, "missing": why}
        return _from_run(ws, run, device, LAST_PASSED)
    if spec.endswith(".zip") or is_regular_file(spec):
        base = Path(pipeline.source).resolve().parent
        path = spec if Path(spec).is_absolute() else str(base / spec)
        return _from_bundle(ws, path, device, where)
    try:
        run = get_run(ws.db, spec)
    except NotFound:
        raise InvalidInput(f"{where}: baseline run {spec!r} is not in this home",
                           hint="list runs with `edgegate runs list`") from None
    _check_foreign(run, pipeline, device, where, allow_foreign)
    if not run["mapping_sha256"] or not _payload_rows(ws, run["id"], device):
        raise InvalidInput(f"{where}: baseline run {run['id']} has no measurement payloads for {device}")
    return _from_run(ws, run, device, "run")


def resolve_baselines(ws: Workspace, pipeline: Pipeline, *, exclude_run: str | None = None,
                      allow_foreign: bool = False) -> tuple[dict[str, BaselineEvidence], dict[str, dict]]:
    """Every relative gate's baseline on every device it applies to.

    Returns (evidence keyed by `gating.baseline_key`, the record to store in the run). A missing
    `last-passed` baseline is evidence with `missing` set (the gate is skipped, NO_BASELINE).
    Raises InvalidInput for an unknown or foreign run id (unless `allow_foreign`) or a bundle that
    fails verification.
    """
    evidence: dict[str, BaselineEvidence] = {}
    records: dict[str, dict] = {}
    for i, gate in enumerate(pipeline.gates):
        if not gate.relative:
            continue
        for device in pipeline.devices:
            key = baseline_key(gate, device)
            if (gate.device and gate.device != device) or key in evidence:
                continue
            where = f"{pipeline.source}: $.gates[{i}].baseline"
            evidence[key], records[key] = _resolve_one(ws, pipeline, gate.baseline, device, where,
                                                       exclude=exclude_run, allow_foreign=allow_foreign)
    return evidence, records


def missing_baselines(evidence: dict[str, BaselineEvidence]) -> list[str]:
    """`<baseline>@<device>: why` for every baseline that could not be found."""
    return [f"{key}: {e.missing}" for key, e in sorted(evidence.items()) if e.missing]


def load_recorded_baselines(ws: Workspace, records: dict[str, dict], *, verify: bool = True,
                            ) -> dict[str, BaselineEvidence]:
    """The evidence a run recorded in `runs.baselines_json`, read back from the CAS (re-hashed if `verify`)."""
    out = {}
    for key, rec in records.items():
        if rec.get("missing"):
            out[key] = BaselineEvidence(source=rec["source"], missing=rec["missing"])
            continue
        paired = rec.get("paired") or {}
        out[key] = BaselineEvidence(
            source=rec["source"], run_id=rec.get("run_id"), bundle_sha256=rec.get("bundle_sha256"),
            mapping=json.loads(ws.cas.read_bytes(rec["mapping_sha256"], verify=verify)),
            payloads=[json.loads(ws.cas.read_bytes(d, verify=verify)) for d in rec["payloads"]],
            mode=rec.get("mode"), paired_reason=rec.get("paired_reason"),
            paired_payloads=[json.loads(ws.cas.read_bytes(d, verify=verify)) for d in paired.get("payloads", [])])
    return out


# --- pins: `gate baseline set | show | clear` --------------------------------------------------------


def set_pin(ws: Workspace, pipeline: str, run_id: str, device: str | None = None, *,
            force: bool = False) -> list[BaselinePin]:
    """Pin run `run_id` as the baseline of `pipeline` on `device` (default: every device it ran on).

    Raises NotFound for an unknown run, InvalidInput when the run is of another pipeline, did not pass (unless
    `force`: a failed or errored run is rarely the yardstick meant), did not run on `device`, or has no
    measurement payloads there.
    """
    run = get_run(ws.db, run_id)
    if run["pipeline"] != pipeline:
        raise InvalidInput(f"run {run['id']} is a run of pipeline {run['pipeline']!r}, not {pipeline!r}")
    if run["status"] != "passed" and not force:
        status = run["status"] + (f" ({run['error_code']})" if run["error_code"] else "")
        raise InvalidInput(f"run {run['id']} did not pass (it is {status}); a baseline is normally a passed run",
                           hint="pass --force to pin it anyway")
    devices = [device] if device else json.loads(run["devices_json"] or "[]")
    for d in devices:
        if not run["mapping_sha256"] or not _payload_rows(ws, run["id"], d):
            raise InvalidInput(f"run {run['id']} has no measurement payloads for {d}; it cannot be a baseline there")
    now = ws.db.now()
    pins = [BaselinePin(pipeline=pipeline, device=d, run_id=run["id"], created_at=now) for d in devices]
    with ws.db.atomic():
        ws.db["baseline_pins"].upsert_all([p.model_dump() for p in pins], pk=("pipeline", "device"))
        record_audit(ws.db, "gate baseline set", "baseline_pinned",
                     {"pipeline": pipeline, "run_id": run["id"], "devices": devices})
    return pins


def list_pins(ws: Workspace, pipeline: str | None = None) -> list[BaselinePin]:
    """The pinned baselines (of one pipeline, or all), by pipeline and device."""
    where, args = ("pipeline = ?", [pipeline]) if pipeline else (None, [])
    return [BaselinePin(**r) for r in ws.db["baseline_pins"].rows_where(where, args, order_by="pipeline, device")]


def clear_pins(ws: Workspace, pipeline: str, device: str | None = None) -> list[BaselinePin]:
    """Unpin `pipeline`'s baselines (on `device` only, if given); return what was removed.

    Raises NotFound when nothing was pinned there.
    """
    removed = [p for p in list_pins(ws, pipeline) if device is None or p.device == device]
    if not removed:
        raise NotFound(f"no baseline pinned for pipeline {pipeline!r}" + (f" on {device}" if device else ""),
                       hint="see the pins with `edgegate gate baseline show`")
    with ws.db.atomic():
        for p in removed:
            ws.db["baseline_pins"].delete((p.pipeline, p.device))
        record_audit(ws.db, "gate baseline clear", "baseline_unpinned",
                     {"pipeline": pipeline, "devices": [p.device for p in removed]})
    return removed
