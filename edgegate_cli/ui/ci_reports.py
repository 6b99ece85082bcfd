"""CI reports of a run (SPEC §9): a JUnit XML file and a GitHub-flavoured Markdown step summary.

Both take the outcome as a JSON dict. Accepted shapes:
- `edgegate run --json` (RunOutcome): `run_id, pipeline, backend, verdict, error_code, error_detail,
  gates: [GateResult], devices: {device: {metric: MetricValue}}`;
- `edgegate gate check --json` (Reevaluation): the same, except that `gates`, `error_code` and
  `error_detail` sit under `evaluation` and there is no `backend` (shown as "n/a");
- `edgegate runs show --json`: like RunOutcome (`id` is accepted for `run_id`).
A gate that carries `max_regression_pct` is shown as a relative gate; `baseline_median` and
`p_value` are shown when present.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import InvalidInput

SUMMARY_LIMIT_BYTES = 1_000_000  # GitHub refuses step summaries over 1 MiB; stay clearly under it
CELL_LIMIT = 300  # characters per table cell
CALLOUT_LIMIT = 20  # NO_BASELINE call-outs above the tables
ICONS = {"pass": "✅", "fail": "❌", "error": "⚠️", "skipped": "⏭️"}
VERDICT_ICONS = {"passed": "✅", "failed": "❌"}
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def report_view(outcome: dict) -> dict:
    """The fields both reports use, from any accepted outcome shape (see the module doc)."""
    evaluation = outcome.get("evaluation") or {}
    return {"run_id": outcome.get("run_id") or outcome.get("id") or "unknown",
            "pipeline": outcome.get("pipeline") or "unknown", "backend": outcome.get("backend") or "n/a",
            "verdict": outcome.get("verdict") or evaluation.get("verdict") or "unknown",
            "error_code": outcome.get("error_code") or evaluation.get("error_code"),
            "error_detail": outcome.get("error_detail") or evaluation.get("error_detail"),
            "gates": list(outcome.get("gates") or evaluation.get("gates") or []),
            "devices": dict(outcome.get("devices") or {})}


def _num(value) -> str:
    return "n/a" if value is None else f"{float(value):.6g}"


def _with_unit(value, unit: str | None) -> str:
    text = _num(value)
    return text if value is None or not unit or unit == "1" else f"{text} {unit}"


def threshold_text(gate: dict) -> str:
    """`<= 250`, or for a relative gate `max 10 % worse than baseline 0.21 ms`."""
    if gate.get("max_regression_pct") is not None:
        base = gate.get("baseline_median")
        against = "baseline" if base is None else f"baseline {_with_unit(base, gate.get('unit'))}"
        return f"max {float(gate['max_regression_pct']):g} % worse than {against}"
    return f"{gate.get('op', '?')} {_num(gate.get('threshold'))}"


def failure_message(gate: dict) -> str:
    """`value 0.31 ms, threshold <= 0.25` (plus the p-value for a relative gate)."""
    text = f"value {_with_unit(gate.get('value'), gate.get('unit'))}, threshold {threshold_text(gate)}"
    return text if gate.get("p_value") is None else f"{text} (p = {float(gate['p_value']):.2g})"


def _xml(text) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def _atomic_write(path: Path, data: bytes, what: str) -> None:
    """Write via a temp file in the same directory and rename, so a reader never sees half a report."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; CI artifact uploaders may run as another user
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise InvalidInput(f"{path}: cannot write the {what}: {exc.strerror or exc}", path=str(path)) from None


def junit_xml(outcome: dict) -> bytes:
    """The JUnit XML document (bytes) for `outcome`: one testcase per gate × device.

    classname = device, name = gate label; `<failure>` for a failed gate (type GATE_FAILED, or
    OPTIONAL_GATE_FAILED when the gate is not required), `<error>` with the code for an errored gate,
    `<skipped>` with the reason. A run error not tied to any gate becomes one extra errored testcase
    `edgegate.run`. Deterministic: the same outcome gives the same bytes.
    """
    import xml.etree.ElementTree as ET

    view = report_view(outcome)
    cases = []
    for g in view["gates"]:
        case = ET.Element("testcase", classname=_xml(g.get("device", "")), name=_xml(g.get("gate", "")), time="0")
        status, reason = g.get("status"), _xml(g.get("reason") or "")
        if status == "fail":
            kind = "GATE_FAILED" if g.get("required", True) else "OPTIONAL_GATE_FAILED"
            ET.SubElement(case, "failure", message=_xml(failure_message(g)), type=kind).text = reason
        elif status == "error":
            code = g.get("code") or "ERROR"
            ET.SubElement(case, "error", message=_xml(f"{code}: {g.get('reason') or ''}"), type=code).text = reason
        elif status == "skipped":
            ET.SubElement(case, "skipped", message=_xml(reason))
        cases.append(case)
    if view["verdict"] == "error" and not any(g.get("status") == "error" for g in view["gates"]):
        case = ET.Element("testcase", classname="edgegate", name="run", time="0")
        code = view["error_code"] or "RUN_ERROR"
        ET.SubElement(case, "error", message=_xml(f"{code}: {view['error_detail'] or ''}"), type=code)
        cases.append(case)
    counts = {k: str(sum(1 for c in cases if c.find(k) is not None)) for k in ("failure", "error", "skipped")}
    attrs = {"tests": str(len(cases)), "failures": counts["failure"], "errors": counts["error"],
             "skipped": counts["skipped"], "time": _num(outcome.get("duration_s") or 0)}
    root = ET.Element("testsuites", name="edgegate", **{k: v for k, v in attrs.items() if k != "skipped"})
    suite = ET.SubElement(root, "testsuite", name=_xml(f"edgegate.{view['pipeline']}"), **attrs)
    props = ET.SubElement(suite, "properties")
    for key in ("run_id", "pipeline", "verdict", "backend", "error_code"):
        if view[key] is not None:
            ET.SubElement(props, "property", name=key, value=_xml(view[key]))
    suite.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str | Path, outcome: dict) -> None:
    """Write `junit_xml(outcome)` to `path` atomically. Raises InvalidInput if it cannot be written."""
    _atomic_write(Path(path), junit_xml(outcome), "JUnit report")


def cell(text) -> str:
    """One Markdown table cell: HTML and pipes escaped, newlines flattened, at most CELL_LIMIT chars."""
    s = " ".join(str(text).split())
    if len(s) > CELL_LIMIT:
        s = s[:CELL_LIMIT - 1] + "…"
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _row(cells) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _size(lines: list[str]) -> int:
    return sum(len(s.encode()) + 1 for s in lines)


def _table(header: list[str], rows: list[list], budget: int) -> list[str]:
    """Header, separator and as many rows as fit in `budget` bytes; a note says how many were left out."""
    lines = [_row(header), "|" + "---|" * len(header)]
    used = _size(lines)
    for i, row in enumerate(rows):
        line = _row(row)
        if used + len(line.encode()) + 1 > budget - 200:  # keep room for the note
            lines.append(f"\n_{len(rows) - i} more rows omitted: the summary is capped under 1 MiB; "
                         "see `edgegate runs show` for everything._")
            break
        lines.append(line)
        used += len(line.encode()) + 1
    return lines


def _gate_rows(gates: list[dict]) -> list[list]:
    order = {"error": 0, "fail": 1, "skipped": 2, "pass": 3}
    ranked = sorted(gates, key=lambda g: order.get(g.get("status"), 4))  # stable: problems first
    return [[f"{ICONS.get(g.get('status'), '')} {g.get('status')}", g.get("device", ""), g.get("gate", ""),
             _with_unit(g.get("value"), g.get("unit")), threshold_text(g),
             (f"{g['code']}: " if g.get("code") else "") + (g.get("reason") or "")] for g in ranked]


def _metric_rows(metrics: dict) -> list[list]:
    rows = []
    for name, v in sorted(metrics.items()):
        median = _num(v.get("value")) if v.get("available", True) else "unavailable"
        cv = "n/a" if v.get("cv") is None else f"{float(v['cv']):.3f}"
        rows.append([name, median, v.get("unit", ""), cv, v.get("repeats", 0), v.get("samples", 0)])
    return rows


def _head(view: dict) -> list[str]:
    icon = VERDICT_ICONS.get(view["verdict"], "⚠️")
    lines = [f"## {icon} EdgeGate {cell(view['verdict'])}: pipeline `{cell(view['pipeline'])}`, "
             f"run `{cell(view['run_id'])}`", "", f"Backend {cell(view['backend'])}; "
             f"{len(view['gates'])} gate result(s)."]
    if view["error_code"]:
        lines.append(f"\n> ⚠️ **{cell(view['error_code'])}**: {cell(view['error_detail'] or '')}")
    missing = [g for g in view["gates"] if g.get("code") == "NO_BASELINE"]
    for g in missing[:CALLOUT_LIMIT]:
        lines.append(f"\n> ⚠️ **NO_BASELINE**: {cell(g.get('gate', ''))} on {cell(g.get('device', ''))} "
                     "was skipped: there is no baseline to compare against yet.")
    if len(missing) > CALLOUT_LIMIT:
        lines.append(f"\n> ⚠️ … and {len(missing) - CALLOUT_LIMIT} more relative gates without a baseline.")
    return lines + ["", "### Gates", ""]


def summary_markdown(outcome: dict) -> str:
    """The step-summary Markdown for `outcome`: verdict line, NO_BASELINE call-outs, gate table (problems
    first), one metric table per device. Always under SUMMARY_LIMIT_BYTES: tables are cut with a note."""
    view = report_view(outcome)
    lines = _head(view)
    remaining = SUMMARY_LIMIT_BYTES - _size(lines) - 4096
    sections = [(["", f"### Metrics: {cell(d)}", ""], _metric_rows(m)) for d, m in sorted(view["devices"].items())]
    metrics_need = sum(_size(head) + _size([_row(r) for r in rows]) + 400 for head, rows in sections)
    table = _table(["result", "device", "gate", "value", "threshold", "note"], _gate_rows(view["gates"]),
                   max(remaining - metrics_need, remaining // 2))
    lines += table
    remaining -= _size(table)
    for i, (head, rows) in enumerate(sections):
        if remaining - _size(head) < 4096:
            lines.append(f"\n_Metric tables of {len(sections) - i} device(s) omitted: the summary is capped._")
            break
        table = _table(["metric", "median", "unit", "CV", "repeats", "samples"], rows, remaining - _size(head))
        lines += head + table
        remaining -= _size(head + table)
    return "\n".join(lines) + "\n"


def write_summary(path: str | Path, outcome: dict) -> None:
    """Write `summary_markdown(outcome)` to `path` atomically (UTF-8). Raises InvalidInput if it cannot."""
    _atomic_write(Path(path), summary_markdown(outcome).encode("utf-8"), "Markdown summary")


def write_reports(outcome: dict, *, junit: str | Path | None = None, summary: str | Path | None = None) -> list[str]:
    """Write the JUnit file and/or the step summary of `outcome` (any accepted shape); return the paths written.

    Raises InvalidInput naming a path that cannot be written.
    """
    written = []
    if junit:
        write_junit(junit, outcome)
        written.append(str(junit))
    if summary:
        write_summary(summary, outcome)
        written.append(str(summary))
    return written
