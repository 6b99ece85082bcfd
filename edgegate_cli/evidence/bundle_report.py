"""`report.md` inside an evidence bundle: verdict, gates per device, metrics with their repeats, environment.

A pure function of the bundle's own data (predicate, metrics, payloads), so the same run renders the
same bytes. Values print with 4 significant digits; the exact numbers are in metrics.json.
"""

from __future__ import annotations

STATUS = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP", "error": "ERROR"}
ENV_ROWS = (("EdgeGate", None), ("ONNX Runtime", "onnxruntime"), ("onnxruntime-genai", "onnxruntime_genai"),
            ("AI Hub SDK (qai_hub)", "qai_hub"), ("Python", "python"), ("NumPy", "numpy"), ("CPU", "cpu"),
            ("CPU count", "cpu_count"), ("Machine", "machine"), ("OS", "os"), ("Execution providers", "providers"),
            ("Threads", "threads"), ("Device", "device_name"))


def payload_environment(payload: dict) -> dict:
    """What a payload says about where it ran: its `environment` (local backend), plus the SDK version
    an AI Hub payload records under `edgegate.sdk_version`."""
    env = dict(payload["environment"]) if isinstance(payload.get("environment"), dict) else {}
    provenance = payload.get("edgegate") if isinstance(payload.get("edgegate"), dict) else {}
    if provenance.get("sdk_version") is not None:
        env.setdefault("qai_hub", provenance["sdk_version"])
    return env


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _unit(unit: str | None) -> str:
    return "" if unit == "1" else unit or ""  # "1" is the dimensionless unit


def _table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _verdict(p: dict) -> list[str]:
    model = p["model"]
    line = (f"**Verdict: {p['verdict'].upper()}** — run `{p['run_id']}` of pipeline `{p['pipeline']}` on "
            f"{p['backend']} ({', '.join(p['devices'])}), model `{model['name']}` (sha256:{model['sha256']})")
    out = [f"# EdgeGate evidence: {p['run_id']}", "", line, ""]
    if p.get("error_code"):
        out += [f"Error {p['error_code']}: {_cell(p.get('error_detail'))}", ""]
    out += [f"Run started {p['run_started_at']}, finished {p['created_at']}.", ""]
    return out


def _gates(p: dict) -> list[str]:
    rows = [[g["device"], g["gate"], STATUS.get(g["status"], g["status"]) + ("" if g["required"] else " (optional)"),
             g.get("value"), _unit(g.get("unit")), f"{g['op']} {_cell(g['threshold'])}", g.get("cv"), g.get("reason")]
            for g in sorted(p["gates"], key=lambda g: (g["device"], g["gate"]))]
    return ["## Gates", ""] + _table(["device", "gate", "result", "value", "unit", "threshold", "CV", "why"],
                                     rows) + [""]


def _metrics(metrics: dict) -> list[str]:
    rows = []
    for device in sorted(metrics):
        for name, m in sorted(metrics[device].items()):
            if m.get("available"):
                rows.append([device, name, m.get("value"), _unit(m.get("unit")), m.get("per_repeat") or "pooled",
                             m.get("cv"), m.get("repeats"), m.get("samples")])
    unavailable = sorted({name for d in metrics.values() for name, m in d.items() if not m.get("available")})
    out = ["## Metrics", "", "Median over the measurement repeats (the warmup repeat is excluded); CV is the "
           "sample standard deviation over the mean of the per-repeat values.", ""]
    out += _table(["device", "metric", "median", "unit", "per repeat", "CV", "repeats", "samples"], rows)
    if unavailable:
        out += ["", "Unavailable: " + ", ".join(unavailable) + " (see metrics.json for why)."]
    return out + [""]


def _environment(p: dict, payloads: list[dict]) -> list[str]:
    envs: dict[str, dict] = {}
    for payload in payloads:
        env = payload_environment(payload)
        if env:
            device = payload.get("device") or (payload.get("edgegate") or {}).get("device") or "?"
            envs.setdefault(str(device), {}).update(env)
    out = ["## Environment", ""]
    for device in sorted(envs) or ["(no payload reported one)"]:
        env = {**envs.get(device, {})}
        rows = [[label, p["versions"]["edgegate"] if key is None else env.get(key)] for label, key in ENV_ROWS
                if key is None or env.get(key) is not None]
        out += [f"### {device}", ""] + _table(["", ""], rows) + [""]
    return out


def _resubmissions(payloads: list[dict]) -> list[str]:
    """AI Hub jobs resubmitted or recompiled, and payload notes, as the payloads' provenance records them
    (nothing at all when there were none, so other bundles render as before)."""
    rows = []
    for payload in payloads:
        prov = payload.get("edgegate") if isinstance(payload.get("edgegate"), dict) else {}
        earlier = [f"{a.get('job_id')} ({a.get('failure_type')}: {a.get('reason')})"
                   for a in prov.get("attempts") or []]
        recompiled = prov.get("recompiled_after") or {}
        if recompiled:
            earlier.append(f"recompiled after {recompiled.get('job_id')} ({recompiled.get('failure_type')}) on "
                           f"{recompiled.get('target_model_id')}")
        if earlier or prov.get("notes"):
            rows.append([prov.get("device"), prov.get("label"), prov.get("job_id"), "; ".join(earlier) or None,
                         "; ".join(prov.get("notes") or []) or None])
    if not rows:
        return []
    return ["## AI Hub resubmissions and notes", ""] + _table(
        ["device", "job", "collected", "earlier attempts", "notes"], sorted(rows, key=lambda r: (r[0], r[1]))) + [""]


def render_report(predicate: dict, metrics: dict, payloads: list[dict]) -> bytes:
    """The report.md bytes for a bundle (UTF-8, LF line endings, trailing LF)."""
    lines = _verdict(predicate) + _gates(predicate) + _metrics(metrics) + _environment(predicate, payloads)
    lines += _resubmissions(payloads)
    measured = sum(1 for r in predicate["raw"] if not r["warmup"])
    lines += ["## Evidence", "", f"{len(predicate['raw'])} raw payloads ({measured} measurement repeats, "
              f"{len(predicate['raw']) - measured} warmup) under raw/. Check this bundle with "
              "`edgegate verify FILE` and re-derive its verdict with `edgegate gate check FILE`.", ""]
    return "\n".join(lines).encode("utf-8")
