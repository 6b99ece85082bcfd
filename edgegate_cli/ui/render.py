"""Human renderings of results (tables), shared by `run`, `runs show` and `gate` commands.

Prints only through `output`, so --json and redaction rules hold everywhere.
"""

from __future__ import annotations

import json

STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP", "error": "ERROR"}


def unit_of(item: dict) -> str:
    """The unit to print after a value ("1" is the dimensionless unit: print nothing)."""
    unit = item.get("unit", "")
    return "" if unit == "1" else unit


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def gate_table(out, gates: list[dict], title: str = "Gates") -> None:
    rows = []
    for g in gates:
        mark = STATUS_MARK[g["status"]] + ("" if g["required"] else " (opt)")
        value = f"{fmt(g.get('value'))} {unit_of(g)}".strip() if g.get("value") is not None else "—"
        note = "" if g["status"] == "pass" else g["reason"]
        rows.append((mark, g["device"], g["gate"], value, note))
    out.table(title, ["result", "device", "gate", "value", "note"], rows)


def metric_table(out, devices: dict[str, dict[str, dict]], title: str = "Metrics") -> None:
    rows = []
    for device, metrics in devices.items():
        for name, m in metrics.items():
            if not m["available"]:
                continue
            cv = f"{m['cv']:.3f}" if m.get("cv") is not None else "—"
            rows.append((device, name, fmt(m["value"]), m["unit"], cv, m["repeats"], m["samples"]))
    out.table(title, ["device", "metric", "median", "unit", "CV", "repeats", "samples"], rows)


def verdict_line(out, run: dict) -> None:
    verdict = run["verdict"]
    style = {"passed": "bold green", "failed": "bold red"}.get(verdict, "bold yellow")
    text = f"{verdict.upper()}: run {run['run_id']} of {run['pipeline']} on {run['backend']}"
    if run.get("error_code"):
        text += f" — {run['error_code']}: {run.get('error_detail') or ''}"
    out.line(text, style=style)


def run_outcome(out, run: dict) -> None:
    """Metrics, gates and the verdict line of a run outcome (as a JSON-like dict)."""
    metric_table(out, run["devices"])
    gate_table(out, run["gates"])
    no_baseline(out, run["gates"])
    for g in run["gates"]:
        if g["status"] == "fail" and g["required"] and g.get("max_regression_pct") is not None:
            from .ci_reports import failure_message

            out.line(f"Gate failed: {g['gate']} on {g['device']}: {failure_message(g)}")
        elif g["status"] == "fail" and g["required"]:
            out.line(f"Gate failed: {g['gate']} on {g['device']}: value {fmt(g.get('value'))} {unit_of(g)}, "
                        f"threshold {g['op']} {g['threshold']:g}".replace(" ,", ","))
    verdict_line(out, run)


def no_baseline(out, gates: list[dict]) -> None:
    """One prominent line per relative gate skipped for want of a baseline (SPEC §6 step 6)."""
    for g in gates:
        if g.get("code") == "NO_BASELINE":
            out.line(f"NO_BASELINE: {g['gate']} on {g['device']} was skipped: "
                        f"{g['reason'].removeprefix('NO_BASELINE: ')}", style="bold yellow")


def _explain_relative(out, g: dict) -> None:
    base = g.get("baseline_run_id") or "—"
    where = f"{g.get('baseline_source') or '?'} {base}" + (
        f", bundle sha256:{g['baseline_bundle_sha256']}" if g.get("baseline_bundle_sha256") else "")
    out.line(f"  baseline: {g.get('baseline')} -> {where}")
    if g.get("baseline_mode"):
        out.line(f"  baseline mode: {g['baseline_mode']}: {g.get('baseline_mode_reason') or ''}")
    ratio = f"{g['ratio']:.3f}" if g.get("ratio") is not None else "—"
    p = f"{g['p_value']:.3g}" if g.get("p_value") is not None else "—"
    p25 = g.get("statistic") == "p25"
    candidate = g.get("candidate_statistic") if p25 else g.get("value")
    out.line(f"  {'25th percentiles' if p25 else 'medians'}: candidate {fmt(candidate)} {unit_of(g)}, baseline "
                f"{fmt(g.get('baseline_median'))} "
                f"{unit_of(g)}; ratio {ratio}; p-value {p}; samples: candidate {g.get('n_candidate') or 0}, "
                f"baseline {g.get('n_baseline') or 0}")
    out.line(f"  rule: {g.get('rule') or ''}")


def _host_line(host: dict, whose: str) -> str:
    shares = ", ".join("—" if v is None else f"{100 * v:.0f} %" for v in host.get("off_cpu") or [])
    loads = [v for pair in host.get("load_1m") or [] for v in pair if v is not None]
    load = f"; load average {min(loads):.2f}-{max(loads):.2f}" if loads else ""
    return (f"{whose}: {host['starved']} of {host['assessed']} repeats starved (median iteration off the CPU: "
            f"{shares}; starved above {100 * host['starved_off_cpu']:.0f} %){load}")


def _explain_host(out, host: dict) -> None:
    """CPU starvation of a timing gate's repeats (SPEC §6 item 7): the numbers NOISY_HOST is decided on."""
    limit = f"NOISY_HOST from {100 * host['max_starved_share']:.0f} % of repeats starved"
    out.line(f"  host: {_host_line(host, 'candidate')}; {limit}")
    if host.get("baseline"):
        out.line(f"  host: {_host_line(host['baseline'], 'paired baseline')}")


def explain(out, result: dict) -> None:
    """One paragraph per gate × device: the rule applied and the evidence behind it."""
    for g in result["evaluation"]["gates"]:
        head = f"[{STATUS_MARK[g['status']]}] {g['gate']} on {g['device']}" + ("" if g["required"] else " (optional)")
        out.line(head, style="bold")
        if g.get("value") is not None:
            repeats = ", ".join(fmt(v) for v in g["per_repeat"]) or "pooled"
            cv = f"{g['cv']:.3f}" if g.get("cv") is not None else "—"
            limit = f" (flake limit {g['cv_limit']:g})" if g.get("cv_limit") is not None else ""
            out.line(f"  value: median {fmt(g['value'])} {g['unit']} over {g['repeats']} repeats "
                        f"[{repeats}], {g['samples']} samples, CV {cv}{limit}")
        if g.get("host"):
            _explain_host(out, g["host"])
        if g.get("max_regression_pct") is not None:
            _explain_relative(out, g)
        else:
            out.line(f"  rule: {g['metric']} {g['op']} {g['threshold']:g}" + ("" if g["required"] else
                        "; optional: a failure warns, a missing or flaky metric skips"))
        out.line(f"  why: {g['reason']}" + (f" [{g['code']}]" if g.get("code") else ""))
        if g["metric"] == "correctness":
            _failing_cases(out, [c for c in result.get("cases", []) if c["device"] == g["device"]])
    out.line(f"Verdict: {result['verdict']}" + ("" if result["agrees"] else
                f" (stored verdict was {result['stored_verdict']})"))


def inputs_text(inputs: dict | None) -> str:
    """What a run fed its model: the source, then each input's shape, dtype and fill."""
    if not inputs:
        return "—"
    tensors = inputs.get("tensors") or {}
    shown = "; ".join(f"{name} {t.get('shape')} {t.get('dtype')} {t.get('fill')}" for name, t in tensors.items())
    return f"{inputs.get('source')}" + (f": {shown}" if shown else "")


def run_detail(out, run: dict) -> None:
    out.table(f"Run {run['run_id']}", ["", ""], [
        ("pipeline", f"{run['pipeline']} ({run['pipeline_path']})"), ("backend", run["backend"]),
        ("status", run["status"] + (f" — {run['error_code']}: {run['error_detail']}" if run["error_code"] else "")),
        ("model", f"{run['model_name']} sha256:{run['model_sha256']}" if run["model_sha256"] else "—"),
        ("inputs", inputs_text(run.get("inputs"))),
        ("created", run["created_at"]), ("finished", run["finished_at"] or "—"),
    ])
    out.table("Events", ["at", "status", "detail"],
                 [(e["at"], e["status"], e["detail"] or "") for e in run["events"]])
    if run["devices"]:
        metric_table(out, run["devices"])
    if run["gates"]:
        gate_table(out, run["gates"])


def probe_report(out, report: dict) -> None:
    mapping = report["mapping"]
    rows = []
    for name, m in mapping["metrics"].items():
        standing = "stable" if m.get("stable") else "unstable" if m["available"] else "unavailable"
        where = m.get("source", {}).get("path") or (f"derived from {m['derive']['from']}" if m.get("derive") else "")
        note = m.get("reason") or (f"needs {m['requires']}" if m.get("requires") else "")
        rows.append((name, standing, m["unit"], where, m.get("seen_in_runs", 0), note))
    out.table(f"Metric mapping for {report['backend']} (probe {report['probe_run_id']})",
                 ["metric", "standing", "unit", "source", "runs", "note"], rows)
    forms = report["capabilities"].get("model_forms", {})
    out.table("Model forms", ["form", "result"], sorted(forms.items()))


def _failing_cases(out, cases: list[dict]) -> None:
    failing = [c for c in cases if c["median_score"] < 1.0]
    out.line(f"  cases: {len(cases) - len(failing)} of {len(cases)} pass" + (":" if failing else ""))
    for c in failing:
        expected = json.dumps(c["expected"], sort_keys=True, ensure_ascii=False) if c["expected"] else "?"
        got = " | ".join(repr(o) for o in c["outputs"])
        out.line(f"    FAIL {c['case_id']} (median score {c['median_score']:g}): expected {expected}; got {got}"
                    + (f"; {c['error'] or c['detail']}" if (c["error"] or c["detail"]) else ""))
