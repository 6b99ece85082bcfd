"""What goes into a run's evidence bundle: every file but the summary and its envelope, and the predicate.

Everything is read from the home (the run row and CAS blobs, re-hashed on read) and rendered
deterministically, so the same run gives the same bytes. `bundles.seal` then lists and signs them.
"""

from __future__ import annotations

import json
import platform

from .. import __version__
from ..canonical import canonical_json
from ..errors import InvalidInput
from .bundle_layout import BUNDLE_FORMAT, baseline_file, device_slugs

FINAL = ("passed", "failed", "error")
VERSION_KEYS = ("onnxruntime", "onnxruntime_genai", "qai_hub", "python")
GATE_FIELDS = ("gate", "metric", "op", "threshold", "device", "required", "status", "value", "unit", "cv",
               "code", "reason")
RELATIVE_FIELDS = ("baseline", "baseline_source", "baseline_run_id", "baseline_bundle_sha256", "baseline_median",
                   "ratio", "p_value", "max_regression_pct")


def check_bundleable(ws, run: dict) -> None:
    """Raise InvalidInput unless `run` has finished with collected payloads and an evaluation."""
    rid, status = run["id"], run["status"]
    ended = f"ended {status}" + (f" ({run['error_code']})" if run["error_code"] else "")
    if status not in FINAL:
        raise InvalidInput(f"run {rid} is still {status}; a run can be bundled once it has finished",
                           hint=f"wait for it, then `edgegate bundle create {rid}`")
    if not run["mapping_sha256"] or not ws.db["run_payloads"].count_where("run_id = ?", [rid]):
        raise InvalidInput(f"run {rid} {ended} before any payload was collected; there is no evidence to bundle",
                           hint=f"see why with `edgegate runs show {rid}`")
    if not run["gates_eval_json"]:
        raise InvalidInput(f"run {rid} {ended} before its gates were evaluated; there is no verdict to bundle",
                           hint=f"see why with `edgegate runs show {rid}`")


def _versions(payloads: list[dict], capabilities: dict) -> dict[str, str]:
    """EdgeGate's version, and each runtime's version as the payloads' environments report it (else as
    the probe's capabilities recorded it; Python, failing both, is the bundler's)."""
    from .bundle_report import payload_environment

    found: dict[str, set[str]] = {}
    for env in [payload_environment(p) for p in payloads]:
        for key in VERSION_KEYS:
            if env.get(key) is not None:
                found.setdefault(key, set()).add(str(env[key]))
    versions = {key: ", ".join(sorted(values)) for key, values in found.items()}
    probed = capabilities.get("environment") if isinstance(capabilities.get("environment"), dict) else {}
    for key in VERSION_KEYS:
        if key not in versions and probed.get(key) is not None:
            versions[key] = str(probed[key])
    versions.setdefault("python", platform.python_version())
    return {"edgegate": __version__, **versions}


def _raw_entries(ws, run: dict) -> tuple[dict[str, bytes], list[dict], list[dict]]:
    """(files, index, parsed payloads) for every stored payload of the run, warmup included."""
    devices = json.loads(run["devices_json"])
    slugs = device_slugs(devices)
    files, index, parsed = {}, [], []
    # The run's own repeats; paired baseline repeats (role 'baseline') go with the baseline evidence.
    rows = ws.db["run_payloads"].rows_where("run_id = ? and role is null", [run["id"]],
                                            order_by="device, repeat_index")
    for row in rows:
        slug = slugs.get(row["device"]) or device_slugs([*devices, row["device"]])[row["device"]]
        name = f"raw/{slug}/{row['repeat_index']}{'-warmup' if row['warmup'] else ''}.json"
        files[name] = ws.cas.read_bytes(row["sha256"], verify=True)
        parsed.append(json.loads(files[name]))
        index.append({"file": name, "device": row["device"], "repeat_index": row["repeat_index"],
                      "warmup": bool(row["warmup"])})
    return files, index, parsed


def _gates(evaluation: dict) -> list[dict]:
    # Issue 11's fields only when set, so a run evaluated before them bundles to the same bytes.
    return [{k: g.get(k) for k in GATE_FIELDS + (RELATIVE_FIELDS if g.get("baseline") else ())}
            | {k: g[k] for k in ("baseline_mode",) if g.get(k) is not None}
            for g in evaluation["gates"]]


def _baselines(ws, run: dict) -> tuple[dict[str, bytes], dict | None]:
    """The baseline evidence of relative gates, as the run recorded it (`runs.baselines_json`):
    `baselines.json` (the records) plus every baseline mapping and payload blob, exact CAS bytes."""
    if not run.get("baselines_json"):
        return {}, None
    records = json.loads(run["baselines_json"])
    files = {"baselines.json": canonical_json(records)}
    for rec in records.values():
        paired = rec.get("paired") or {}
        for digest in ([rec["mapping_sha256"], *rec["payloads"], *paired.get("payloads", []),
                        *paired.get("warmup", [])] if not rec.get("missing") else []):
            files[baseline_file(digest)] = ws.cas.read_bytes(digest, verify=True)
    summary = {key: {k: rec.get(k) for k in ("source", "run_id", "bundle_sha256", "missing")
                     + (("mode", "paired_reason") if "mode" in rec else ())}
               for key, rec in sorted(records.items())}
    return files, summary


def collect_files(ws, run: dict, *, include_model: bool = False) -> tuple[dict[str, bytes], dict]:
    """Every bundle file but summary.json/summary.dsse.json, and the predicate (without `files`/`signer`).

    Raises InvalidInput (see check_bundleable) and CorruptBlob when a stored blob was altered.
    """
    from .bundle_report import render_report

    check_bundleable(ws, run)
    read = ws.cas.read_bytes
    model = json.loads(run["model_json"])
    inputs = json.loads(run["inputs_json"]) if run["inputs_json"] else None
    evaluation = json.loads(run["gates_eval_json"])
    metrics = json.loads(run["metrics_json"] or "{}")
    files, index, payloads = _raw_entries(ws, run)
    files.update({
        "pipeline.json": canonical_json(json.loads(run["pipeline_json"])),
        "mapping.json": read(run["mapping_sha256"], verify=True),
        "capabilities.json": read(run["capabilities_sha256"], verify=True),
        "metrics.json": canonical_json(metrics),
        "gates.json": canonical_json(evaluation),
    })
    if inputs and str(inputs.get("source", "")).startswith("promptpack "):
        files["promptpack.json"] = read(inputs["sha256"], verify=True)
    baseline_files, baselines = _baselines(ws, run)
    files.update(baseline_files)
    if include_model:
        files.update({f"model/{name}": read(digest, verify=True) for name, digest in sorted(model["files"].items())})
    predicate = {
        "bundle_format": BUNDLE_FORMAT, "run_id": run["id"], "pipeline": run["pipeline"], "backend": run["backend"],
        "devices": json.loads(run["devices_json"]),
        "model": {k: model.get(k) for k in ("name", "sha256", "form", "bytes", "files")},
        "model_included": include_model, "inputs": inputs,
        "verdict": evaluation["verdict"], "error_code": evaluation.get("error_code"),
        "error_detail": evaluation.get("error_detail"), "gates": _gates(evaluation),
        "versions": _versions(payloads, json.loads(files["capabilities.json"])),
        "run_started_at": run["created_at"], "created_at": run["finished_at"],
        "raw": index, "baselines": baselines,
    }
    files["report.md"] = render_report(predicate, metrics, payloads)
    return files, predicate
