"""Paired measurement for relative gates (SPEC §6 item 7): measure the baseline's model again, in this run.

Back-to-back runs of one unchanged model drift by more than the spread inside a run, so a candidate
compared with *stored* baseline samples is compared with another hour's host as much as with another
model. Where a relative gate's baseline model is still at hand (its files in this home's CAS, or in the
baseline bundle with `--include-model`), the run measures it again on the same device with the same inputs
and policy, interleaved with the candidate repeat by repeat (B, A, B, A …; each a fresh process on the
local backend, each a profiling job on the same AI Hub device), and the gate compares those paired
samples. Otherwise the gate compares with the recorded samples, and its result says why.

The baseline's paired payloads are the run's own payloads with role `baseline` (repeat_index from
2000 + 100 × its number on the device), listed in the run's baseline record (`paired`), so `gate check`
re-derives the comparison from stored evidence, and a bundle carries them under `baselines/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..backends.base import MeasureRequest, Progress, RawPayload
from ..canonical import canonical_json
from ..errors import EdgeGateError
from ..gating.evaluate import baseline_key
from ..gating.paired import PAIRED, RECORDED, wants_paired
from ..spec.pipeline import Pipeline
from ..store.artifacts import add_ref, store_bytes
from ..store.workspace import Workspace

PAIRED_INDEX = 2000  # repeat_index of the first paired baseline's warmup on a device; the next one +100


@dataclass
class PairedBaseline:
    """One baseline model to measure again on one device, beside the candidate."""

    key: str  # gating.baseline_key: "<baseline>@<device>"
    device: str
    number: int  # 0, 1, …: which paired baseline of this device (repeat_index PAIRED_INDEX + 100 × number + i)
    model_sha256: str
    request: MeasureRequest


class NotPairable(Exception):
    """Why a baseline cannot be measured again in this run (the gate then compares with recorded samples)."""


def _materialize(ws: Workspace, model: dict, where: Path) -> Path:
    """Write the baseline model's files from the CAS under `where`; return the path to validate and run."""
    files = model["files"]
    missing = [name for name, digest in files.items() if not ws.cas.exists(digest)]
    if missing:
        raise NotPairable(f"the baseline model {model['name']} (sha256:{model['sha256'][:12]}…) is no longer in "
                          f"this home's store ({', '.join(sorted(missing))} removed, e.g. by `edgegate gc`)")
    single = len(files) == 1 and next(iter(files)) == model["name"]
    root = where / (model["name"] if single else Path(model["name"]).name)
    for name, digest in files.items():
        target = root if single else root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ws.cas.read_bytes(digest, verify=True))
    return root


def _signature(info) -> list[tuple]:
    return sorted((t.name, t.dtype, tuple(t.shape)) for t in info.inputs)


def _show(info) -> str:
    return ", ".join(f"{name} {dtype}{list(shape)}" for name, dtype, shape in _signature(info))


def _baseline_request(ws: Workspace, pipeline: Pipeline, backend, candidate: MeasureRequest, cand_info,
                      record: dict, where: Path) -> tuple[str, MeasureRequest]:
    """(model digest, measure request) for the baseline of `record`, or NotPairable with the reason."""
    from ..spec.validators import validate_model

    model = record.get("model")
    if not model:
        if record.get("source") == "bundle":
            raise NotPairable(f"bundle {record.get('path')} records no model files")
        raise NotPairable(f"baseline run {record.get('run_id')} recorded no model")
    if record.get("source") == "bundle" and not all(ws.cas.exists(d) for d in model["files"].values()):
        raise NotPairable(f"bundle {record.get('path')} holds no model bytes (it was made without "
                          "--include-model) and this home does not have the model")
    path = _materialize(ws, model, where)
    try:
        info = validate_model(path, pipeline.model.input_specs if pipeline.model else None)
        backend.check_model_form(info.form, pipeline.source)
    except EdgeGateError as err:
        raise NotPairable(f"the baseline model cannot run here: {err.message}") from None
    if (info.form == "genai") != (cand_info.form == "genai"):
        raise NotPairable(f"the baseline model is a {info.form} model and the candidate a {cand_info.form} model")
    if info.form != "genai" and _signature(info) != _signature(cand_info):
        raise NotPairable(f"the baseline model's inputs ({_show(info)}) differ from the candidate's "
                          f"({_show(cand_info)}), so they cannot be fed the same inputs")
    request = candidate.model_copy(update={
        "model_form": info.form, "model_path": info.path if info.form == "genai" else (info.onnx_path or info.path),
        "model_source": info.path, "model_sha256": model["sha256"], "reference_outputs": None,
        "context_length": info.context_length})
    return model["sha256"], request


def plan_pairing(ws: Workspace, pipeline: Pipeline, backend, records: dict[str, dict],
                 requests: list[MeasureRequest], cand_info, tmp: Path) -> dict[str, list[PairedBaseline]]:
    """The baselines to measure again, per device; sets every record's `mode` and `paired_reason`."""
    by_device = {r.device: r for r in requests}
    plans: dict[str, list[PairedBaseline]] = {d: [] for d in by_device}
    wanted = {baseline_key(g, d) for g in pipeline.gates if wants_paired(g) for d in pipeline.devices
              if not g.device or g.device == d}
    for key, record in sorted(records.items()):
        if record.get("missing"):
            continue
        device = key.rsplit("@", 1)[1]
        if key not in wanted or device not in by_device:
            record.update(mode=RECORDED, paired_reason="every relative gate on this baseline asks for "
                                                       "baseline_mode: recorded")
            continue
        number = len(plans[device])
        try:
            sha, request = _baseline_request(ws, pipeline, backend, by_device[device], cand_info, record,
                                             tmp / f"baseline-{device.replace(':', '-')}-{number}")
        except NotPairable as why:
            record.update(mode=RECORDED, paired_reason=str(why))
            continue
        repeats = by_device[device].repeats
        record.update(mode=PAIRED, paired_reason=f"the baseline model (sha256:{sha[:12]}…) was measured again in "
                      f"this run on {device}, interleaved with the candidate repeat by repeat ({repeats} repeats "
                      "each, after a warmup each)")
        plans[device].append(PairedBaseline(key=key, device=device, number=number, model_sha256=sha,
                                            request=request))
    return plans


def measure_device(backend, req: MeasureRequest, pairs: list[PairedBaseline], progress: Progress,
                   stop=None) -> tuple[list[RawPayload], list[tuple[PairedBaseline, RawPayload]]]:
    """One device's candidate payloads and its paired baselines' payloads.

    A backend with `measure_paired` (AI Hub: every job submitted at once, in B, A, B, A order) does the
    pairing itself; one with `measure_repeat` (local) is interleaved here, each repeat a fresh process.
    """
    kwargs = {"stop": stop} if stop is not None else {}
    if not pairs:
        return backend.measure(req, progress, **kwargs), []
    if hasattr(backend, "measure_paired"):
        candidate, paired = backend.measure_paired(req, [(p.key, p.request) for p in pairs], progress, **kwargs)
        by_key = {p.key: p for p in pairs}
        return candidate, [(by_key[key], payload) for key, payload in paired]
    candidate, paired = [], []
    for index in range(req.warmup + req.repeats):
        for pair in pairs:
            paired.append((pair, backend.measure_repeat(pair.request, index, progress, role="baseline")))
        candidate.append(backend.measure_repeat(req, index, progress))
    return candidate, paired


def store_paired(ws: Workspace, run_id: str, records: dict[str, dict],
                 paired: list[tuple[PairedBaseline, RawPayload]]) -> None:
    """Store the paired baseline payloads as the run's (role 'baseline') and list them in their records."""
    for pair, payload in paired:
        index = PAIRED_INDEX + 100 * pair.number + payload.repeat_index
        digest = store_bytes(ws.db, ws.cas, canonical_json(payload.data), "raw_payload",
                             f"{run_id}-{pair.device}-{index}.json")
        add_ref(ws.db, digest, "run", run_id)
        ws.db["run_payloads"].insert({"run_id": run_id, "device": pair.device, "repeat_index": index,
                                      "warmup": int(payload.warmup), "sha256": digest, "created_at": ws.db.now(),
                                      "role": "baseline"})
        entry = records[pair.key].setdefault("paired", {"model_sha256": pair.model_sha256, "payloads": [],
                                                        "warmup": []})
        entry["warmup" if payload.warmup else "payloads"].append(digest)
    ws.db["runs"].update(run_id, {"baselines_json": json.dumps(records, sort_keys=True)})


def paired_evidence(evidence: dict, records: dict[str, dict],
                    paired: list[tuple[PairedBaseline, RawPayload]]) -> dict:
    """The baseline evidence with each record's mode and reason, and the paired payloads measured."""
    by_key: dict[str, list[dict]] = {}
    for pair, payload in paired:
        if not payload.warmup:
            by_key.setdefault(pair.key, []).append(payload.data)
    return {key: e if key not in records else e.model_copy(update={
        "mode": records[key].get("mode"), "paired_reason": records[key].get("paired_reason"),
        "paired_payloads": by_key.get(key, [])}) for key, e in evidence.items()}
