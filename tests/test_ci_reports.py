"""CI reports (SPEC §9): JUnit XML that a real consumer parses, and a capped Markdown step summary."""

from __future__ import annotations

import json
import re

import pytest
from conftest import write_pipeline
from junitparser import Error, Failure, JUnitXml, Skipped

from edgegate_cli.errors import InvalidInput
from edgegate_cli.gating.evaluate import GateResult
from edgegate_cli.measure.mapping import MetricValue
from edgegate_cli.runs.execute import RunOutcome
from edgegate_cli.ui.ci_reports import (
    SUMMARY_LIMIT_BYTES,
    failure_message,
    junit_xml,
    summary_markdown,
    write_junit,
    write_summary,
)


def _gate(label, status, *, device="local:cpu", metric="latency_ms", op="<=", threshold=0.25, value=0.31,
          unit="ms", code=None, reason="why", required=True, **relative) -> dict:
    """A real GateResult as JSON, plus the relative-gate keys the reports read when present."""
    gate = GateResult(gate=label, metric=metric, op=op, threshold=threshold, device=device, required=required,
                      status=status, value=value, unit=unit, code=code, reason=reason)
    return gate.model_dump(mode="json") | relative


def _outcome(gates: list[dict], devices=None, verdict="failed", **kw) -> dict:
    devices = devices if devices is not None else {"local:cpu": {"latency_ms": MetricValue(
        metric="latency_ms", unit="ms", available=True, value=0.31, per_repeat=[0.3, 0.31, 0.32], cv=0.032,
        repeats=3, samples=150)}}
    fields = dict(run_id="run-20260101-000000-abcdef", pipeline="nightly", backend="local", status=verdict,
                  verdict=verdict, model={}, inputs={}, devices=devices, gates=[], duration_s=4.25)
    return RunOutcome(**{**fields, **kw}).model_dump(mode="json") | {"gates": gates}


MIXED = [
    _gate("latency_ms <= 0.25", "fail", reason="median 0.31 ms does not meet <= 0.25"),
    _gate("peak_memory_mb < 300", "pass", metric="peak_memory_mb", op="<", threshold=300, value=101.4, unit="MiB"),
    _gate("npu_layer_fraction >= 1", "skipped", metric="npu_layer_fraction", op=">=", threshold=1, value=None,
          unit="1", code="UNAVAILABLE", reason="unavailable: no per-layer compute units", required=False),
    _gate("latency_p90_ms <= 1", "error", metric="latency_p90_ms", threshold=1, value=None,
          code="MISSING_REQUIRED_METRIC", reason="latency_p90_ms unavailable on local:cpu: 40 samples"),
    _gate("throughput_ips >= 5000", "fail", device="local:qnn", metric="throughput_ips", op=">=", threshold=5000,
          value=4763.016, unit="inferences/s", required=False, reason="median 4763 does not meet >= 5000"),
]


def test_junit_parses_with_junitparser_and_counts_match(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(path, _outcome(MIXED, verdict="error", error_code="MISSING_REQUIRED_METRIC"))
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["edgegate.nightly"]
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 2, 1, 1)
    props = {p.name: p.value for p in suite.properties()}
    assert props == {"run_id": "run-20260101-000000-abcdef", "pipeline": "nightly", "verdict": "error",
                     "backend": "local", "error_code": "MISSING_REQUIRED_METRIC"}
    cases = {(c.classname, c.name): c for c in suite}
    assert set(cases) == {("local:cpu", "latency_ms <= 0.25"), ("local:cpu", "peak_memory_mb < 300"),
                          ("local:cpu", "npu_layer_fraction >= 1"), ("local:cpu", "latency_p90_ms <= 1"),
                          ("local:qnn", "throughput_ips >= 5000")}
    (failure,) = cases[("local:cpu", "latency_ms <= 0.25")].result
    assert isinstance(failure, Failure)
    assert (failure.message, failure.type) == ("value 0.31 ms, threshold <= 0.25", "GATE_FAILED")
    assert failure.text == "median 0.31 ms does not meet <= 0.25"
    (optional,) = cases[("local:qnn", "throughput_ips >= 5000")].result
    assert (optional.message, optional.type) == ("value 4763.02 inferences/s, threshold >= 5000",
                                                 "OPTIONAL_GATE_FAILED")
    (error,) = cases[("local:cpu", "latency_p90_ms <= 1")].result
    assert isinstance(error, Error)
    assert error.type == "MISSING_REQUIRED_METRIC"
    assert error.message == "MISSING_REQUIRED_METRIC: latency_p90_ms unavailable on local:cpu: 40 samples"
    (skipped,) = cases[("local:cpu", "npu_layer_fraction >= 1")].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "unavailable: no per-layer compute units"
    assert cases[("local:cpu", "peak_memory_mb < 300")].is_passed


def test_junit_is_byte_identical_for_the_same_outcome(tmp_path):
    outcome = _outcome(MIXED)
    write_junit(tmp_path / "a.xml", outcome)
    write_junit(tmp_path / "b.xml", json.loads(json.dumps(outcome)))
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes() == junit_xml(outcome)
    assert junit_xml(outcome).startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites")


def test_a_run_error_outside_any_gate_is_one_errored_testcase(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(path, _outcome([], devices={}, verdict="error", error_code="DEVICE_JOB_FAILED",
                               error_detail="local:cpu: repeat 2 failed: segfault"))
    (suite,) = list(JUnitXml.fromfile(str(path)))
    (case,) = list(suite)
    assert (case.classname, case.name) == ("edgegate", "run")
    (error,) = case.result
    assert (error.type, error.message) == ("DEVICE_JOB_FAILED",
                                           "DEVICE_JOB_FAILED: local:cpu: repeat 2 failed: segfault")


def test_control_characters_in_reasons_still_give_parseable_xml(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(path, _outcome([_gate("latency_ms <= 0.25", "fail", reason="bad\x00byte\x1b[31m")]))
    (suite,) = list(JUnitXml.fromfile(str(path)))
    (failure,) = next(iter(suite)).result
    assert failure.text == "bad\ufffdbyte\ufffd[31m"


def test_relative_gate_failure_names_baseline_and_p_value():
    gate = _gate("latency_ms vs last-passed", "fail", value=0.31, max_regression_pct=10, baseline_median=0.21,
                 p_value=1.5e-40)
    assert failure_message(gate) == "value 0.31 ms, threshold max 10 % worse than baseline 0.21 ms (p = 1.5e-40)"


def _table_lines(markdown: str, header: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def test_summary_renders_verdict_and_markdown_tables(tmp_path):
    path = tmp_path / "summary.md"
    write_summary(path, _outcome(MIXED))
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "## ❌ EdgeGate failed: pipeline `nightly`, run `run-20260101-000000-abcdef`"
    gates = _table_lines(text, "| result | device | gate | value | threshold | note |")
    assert gates[1] == "|---|---|---|---|---|---|"
    assert len(gates) == 2 + len(MIXED)
    assert gates[2].startswith("| ⚠️ error | local:cpu | latency_p90_ms &lt;= 1 | n/a | &lt;= 1 | "
                               "MISSING_REQUIRED_METRIC: ")  # problems first
    assert "| ❌ fail | local:cpu | latency_ms &lt;= 0.25 | 0.31 ms | &lt;= 0.25 | median 0.31 ms" in text
    metrics = _table_lines(text, "| metric | median | unit | CV | repeats | samples |")
    assert metrics[1] == "|---|---|---|---|---|---|"
    assert metrics[2] == "| latency_ms | 0.31 | ms | 0.032 | 3 | 150 |"
    assert "### Metrics: local:cpu" in text


@pytest.mark.parametrize(("verdict", "icon"), [("passed", "✅"), ("failed", "❌"), ("error", "⚠️")])
def test_summary_verdict_icon(verdict, icon):
    assert summary_markdown(_outcome([], verdict=verdict)).startswith(f"## {icon} EdgeGate {verdict}: ")


def test_summary_escapes_pipes_and_flattens_newlines_in_cells():
    gate = _gate("a|b gate", "fail", reason="line one\nline | two")
    text = summary_markdown(_outcome([gate]))
    table = _table_lines(text, "| result | device | gate | value | threshold | note |")
    assert table[2] == ("| ❌ fail | local:cpu | a\\|b gate | 0.31 ms | &lt;= 0.25 | line one line \\| two |")
    assert {_cells(line) for line in table} == {6}


def test_summary_shows_no_baseline_prominently():
    gate = _gate("latency_ms vs last-passed", "skipped", value=0.21, code="NO_BASELINE", max_regression_pct=10,
                 reason="NO_BASELINE: no passed run of pipeline nightly on local:cpu")
    text = summary_markdown(_outcome([gate], verdict="passed"))
    assert ("> ⚠️ **NO_BASELINE**: latency_ms vs last-passed on local:cpu was skipped: there is no baseline "
            "to compare against yet.") in text
    assert "| max 10 % worse than baseline |" in text


def test_summary_stays_under_one_mebibyte_for_a_huge_outcome(tmp_path):
    """20,000 gates with long reasons and 5 devices x 2,000 metrics: cut with notes, tables intact."""
    gates = [_gate(f"latency_ms <= {i}", "fail" if i % 3 else "skipped", device=f"device {i % 5}",
                   reason="x|" * 400, code="NO_BASELINE" if i % 3 == 0 else None) for i in range(20000)]
    metric = {"metric": "latency_ms", "unit": "ms", "available": True, "value": 1.0, "cv": 0.01, "repeats": 3,
              "samples": 150}
    devices = {f"device {d}": {f"metric_{m:05d}": metric for m in range(2000)} for d in range(5)}
    outcome = {"run_id": "run-x", "pipeline": "huge", "backend": "local", "verdict": "failed", "gates": gates,
               "devices": devices}
    path = tmp_path / "summary.md"
    write_summary(path, outcome)
    data = path.read_bytes()
    assert len(data) < SUMMARY_LIMIT_BYTES < 1024 * 1024
    text = data.decode("utf-8")
    assert re.search(r"_\d+ more rows omitted: the summary is capped under 1 MiB", text)
    assert "> ⚠️ … and 6647 more relative gates without a baseline." in text
    gate_table = _table_lines(text, "| result | device | gate | value | threshold | note |")
    assert len(gate_table) > 100
    assert {_cells(line) for line in gate_table} == {6}


def test_writing_into_a_missing_directory_is_invalid_input(tmp_path):
    target = tmp_path / "missing" / "junit.xml"
    with pytest.raises(InvalidInput) as err:
        write_junit(target, _outcome([]))
    assert err.value.message == f"{target}: cannot write the JUnit report: No such file or directory"
    assert not target.parent.exists()


def test_reports_from_a_real_run_and_its_gate_check(invoke, probed_home, tmp_path):
    """`run --json` and `gate check --json` outputs both feed the reports; the counts agree."""
    pipe = write_pipeline(tmp_path / "ci.yaml", iterations=10, gates=(
        "[{metric: peak_memory_mb, op: '<', value: 1}, {metric: peak_memory_mb, op: '<', value: 100000},"
        " {metric: npu_layer_fraction, op: '>=', value: 1, required: false}]"))
    outcome = json.loads(invoke("run", pipe, "--json", expect=1).stdout)
    checked = json.loads(invoke("gate", "check", outcome["run_id"], "--json", expect=1).stdout)
    for doc, name in ((outcome, "run.xml"), (checked, "check.xml")):
        write_junit(tmp_path / name, doc)
        (suite,) = list(JUnitXml.fromfile(str(tmp_path / name)))
        assert (suite.name, suite.tests, suite.failures, suite.errors, suite.skipped) == ("edgegate.ci", 3, 1, 0, 1)
        (failure,) = next(c for c in suite if c.name == "peak_memory_mb < 1").result
        assert re.fullmatch(r"value [0-9.]+ MiB, threshold < 1", failure.message)
    summary = summary_markdown(checked)
    assert summary.startswith(f"## ❌ EdgeGate failed: pipeline `ci`, run `{outcome['run_id']}`")
    assert "Backend n/a; 3 gate result(s)." in summary  # gate check output carries no backend
    assert "| latency_ms | " in summary
