"""Relative gates on real local runs (SPEC §6 step 6): baselines, NO_BASELINE, bad input, CI reports."""

from __future__ import annotations

import json

import pytest
from conftest import LOOSE, REPO, write_pipeline

from edgegate_cli.errors import ExitCode

HEAVY = str(REPO / "examples" / "quickstart" / "model_heavy.onnx")
REL_LATENCY = "[{metric: latency_ms, baseline: last-passed, max_regression_pct: 10}]"


def _run(invoke, pipeline, *args, expect=ExitCode.OK) -> dict:
    return json.loads(invoke("run", pipeline, "--json", *args, expect=expect).stdout)


def _gate(outcome: dict, metric: str = "latency_ms") -> dict:
    return next(g for g in outcome["gates"] if g["metric"] == metric and g.get("max_regression_pct"))


def _unchanged_pair_passes(invoke, pipeline, attempts: int = 3) -> tuple:
    """Measure a baseline and then the unchanged model against it, back to back, until the unchanged model
    passes its relative gate: at most `attempts` pairs. Returns (pipeline file, baseline run, candidate run).

    On this shared 2-vCPU VM, whole runs of the same model drift by up to ~17 % (measured: medians
    0.209-0.235 ms over six quiet runs; in CI a baseline at 0.211 ms followed by three runs at
    0.239-0.247 ms). Either side of the pair can be the outlier, so each attempt measures a fresh pair
    under a new pipeline name (its own `last-passed`). A gate that flags unchanged models systematically
    still fails every pair; the slower-model assertions never retry.
    """
    reasons = []
    for attempt in range(attempts):
        path = pipeline if attempt == 0 else pipeline.with_name(f"{pipeline.stem}-{attempt}.yaml")
        if attempt:
            path.write_text(pipeline.read_text().replace(f"name: {pipeline.stem}\n", f"name: {path.stem}\n"))
        first = _run(invoke, path)
        assert _gate(first)["code"] == "NO_BASELINE"
        outcome = json.loads(invoke("run", path, "--json", expect=None).stdout)
        if outcome["verdict"] == "passed":
            return path, first, outcome
        reasons.append(next((g["reason"] for g in outcome["gates"] if g["status"] != "pass"), outcome["verdict"]))
    pytest.fail(f"an unchanged model failed its relative gate in {attempts} fresh pairs: {reasons}")


@pytest.fixture
def relative_pipeline(probed_home, tmp_path):
    """A quickstart pipeline with a 10 % relative latency gate, 5 repeats x 200 iterations."""
    return write_pipeline(tmp_path / "relq.yaml", gates=REL_LATENCY, iterations=200, repeats=5, extra_policy=LOOSE)


def test_first_run_has_no_baseline_and_skips_prominently(invoke, relative_pipeline):
    """A fresh pipeline: the relative gate is skipped with NO_BASELINE, on stderr and in the human summary."""
    result = invoke("run", relative_pipeline)
    assert "NO_BASELINE: last-passed@local:cpu: no passed run of pipeline relq on local:cpu yet; the relative gate " \
           "will be skipped" in result.stderr
    assert "NO_BASELINE: latency_ms within 10% of last-passed on local:cpu was skipped: no passed run of pipeline " \
           "relq on local:cpu yet; the gate was not evaluated" in result.stdout.replace("\n", " ")


def test_require_baseline_is_a_run_error(invoke, relative_pipeline):
    """--require-baseline on a fresh pipeline: exit 3, NO_BASELINE, before any device time."""
    result = invoke("run", relative_pipeline, "--require-baseline", expect=ExitCode.RUN_ERROR)
    assert f"{relative_pipeline}: --require-baseline: no baseline for last-passed@local:cpu: no passed run of " \
           "pipeline relq on local:cpu yet" in result.stderr.replace("\n", " ")
    assert "NO_BASELINE" in result.stderr


def test_heavy_candidate_fails_and_unchanged_model_passes(invoke, relative_pipeline):
    """The 7x slower model fails a 10 % relative gate against the quickstart's last passed run; the unchanged
    model passes it; `gate check` re-derives both verdicts from stored evidence, and explain shows the numbers."""
    pipeline, first, same = _unchanged_pair_passes(invoke, relative_pipeline)
    gate = _gate(same)
    assert gate["status"] == "pass", gate["reason"]
    assert gate["baseline_run_id"] == first["run_id"] and gate["n_baseline"] == gate["n_candidate"] == 1000
    heavy = _run(invoke, pipeline, "--model", HEAVY, expect=ExitCode.GATES_FAILED)
    gate = _gate(heavy)
    assert gate["status"] == "fail" and gate["baseline_run_id"] == same["run_id"]
    assert gate["ratio"] > 2 and gate["p_value"] < 1e-10
    for run, code in ((same, ExitCode.OK), (heavy, ExitCode.GATES_FAILED)):
        checked = json.loads(invoke("gate", "check", run["run_id"], "--json", expect=code).stdout)
        assert checked["agrees"] and _gate(checked["evaluation"])["p_value"] == _gate(run)["p_value"]
    text = invoke("gate", "explain", heavy["run_id"]).stdout
    assert f"baseline: last-passed -> last-passed {same['run_id']}" in text
    assert "samples: candidate 1000, baseline 1000" in text and "ratio " in text and "p-value " in text
    # Paired against the baseline model measured again in this run, so the 25th percentiles are compared.
    assert "rule: fail if the 25th percentile latency_ms rises by more than 10 % against the baseline and a " \
           "one-sided Mann-Whitney U test (candidate greater) gives p < 0.01" in text


@pytest.mark.parametrize("pct", [0, 1000])
def test_max_regression_pct_out_of_range_is_exit_2(invoke, probed_home, tmp_path, pct):
    """max_regression_pct must be in (0, 1000): the message names the file and the JSON path."""
    path = write_pipeline(tmp_path / "p.yaml", gates=f"[{{metric: latency_ms, baseline: last-passed, "
                                                     f"max_regression_pct: {pct}}}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0].max_regression_pct: {pct} is out of range; it must be greater than 0 and less " \
           "than 1000 (a percentage, e.g. 10 for 10 %)" in result.stderr.replace("\n", " ")


def test_relative_gate_needs_per_iteration_samples(invoke, probed_home, tmp_path):
    """peak_memory_mb has one value per repeat: a relative gate on it is exit 2 in preflight, naming it."""
    path = write_pipeline(tmp_path / "p.yaml", gates="[{metric: peak_memory_mb, baseline: last-passed, "
                                                     "max_regression_pct: 10}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0]: relative gate on peak_memory_mb: the local backend reports one peak_memory_mb " \
           "value per repeat, not per-iteration samples" in result.stderr.replace("\n", " ")


def test_schema_names_what_a_gate_lacks(invoke, probed_home, tmp_path):
    """A gate with a baseline but no max_regression_pct is neither kind of gate; the error says which field."""
    path = write_pipeline(tmp_path / "p.yaml", gates="[{metric: latency_ms, baseline: last-passed}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0]: is neither an absolute gate {{metric, op, value}} nor a relative gate {{metric, " \
           "baseline, max_regression_pct}; as a relative gate {metric, baseline, max_regression_pct}: " \
           "'max_regression_pct' is a required property (rule: oneOf)" in result.stderr.replace("\n", " ")


def test_foreign_baseline_run_id(invoke, probed_home, tmp_path):
    """A run id of another pipeline is exit 2 unless --allow-foreign-baseline."""
    other = write_pipeline(tmp_path / "other.yaml", gates="[{metric: latency_ms, op: '<=', value: 250}]",
                           iterations=100, extra_policy=LOOSE)
    base = _run(invoke, other)["run_id"]
    # 500 %: this test is about which baseline is used, not about local timing noise.
    path = write_pipeline(tmp_path / "mine.yaml", gates=f"[{{metric: latency_ms, baseline: {base}, "
                                                        "max_regression_pct: 500}]", iterations=100, extra_policy=LOOSE)
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0].baseline: baseline run {base} is a run of pipeline 'other', not 'mine'" \
        in result.stderr.replace("\n", " ")
    outcome = _run(invoke, path, "--allow-foreign-baseline")
    assert _gate(outcome)["baseline_run_id"] == base and _gate(outcome)["baseline_source"] == "run"


def test_unknown_baseline_run_id(invoke, probed_home, tmp_path):
    """A baseline run id that does not exist is exit 2."""
    path = write_pipeline(tmp_path / "p.yaml", gates="[{metric: latency_ms, baseline: run-nope, "
                                                     "max_regression_pct: 10}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0].baseline: baseline run 'run-nope' is not in this home" \
        in result.stderr.replace("\n", " ")


def test_pinned_baseline_set_show_clear(invoke, probed_home, tmp_path):
    """A pinned run beats last-passed; show lists it; clear removes it (and says so when nothing is pinned)."""
    relative_pipeline = write_pipeline(tmp_path / "relq.yaml", iterations=100, extra_policy=LOOSE,
                                       gates="[{metric: latency_ms, baseline: last-passed, max_regression_pct: 500}]")
    pinned = _run(invoke, relative_pipeline)["run_id"]
    newer = _run(invoke, relative_pipeline)["run_id"]
    invoke("gate", "baseline", "set", "relq", pinned)
    shown = json.loads(invoke("gate", "baseline", "show", "--json").stdout)
    assert [(p["pipeline"], p["device"], p["run_id"]) for p in shown["pins"]] == [("relq", "local:cpu", pinned)]
    gate = _gate(_run(invoke, relative_pipeline))
    assert (gate["baseline_run_id"], gate["baseline_source"]) == (pinned, "pinned")
    invoke("gate", "baseline", "clear", "relq", "--device", "local:cpu")
    assert json.loads(invoke("gate", "baseline", "show", "relq", "--json").stdout) == {"pins": []}
    result = invoke("gate", "baseline", "clear", "relq", expect=ExitCode.INVALID_INPUT)
    assert "no baseline pinned for pipeline 'relq'" in result.stderr
    assert newer != pinned
    bad = invoke("gate", "baseline", "set", "other", pinned, expect=ExitCode.INVALID_INPUT)
    assert f"run {pinned} is a run of pipeline 'relq', not 'other'" in bad.stderr.replace("\n", " ")


def test_junit_and_summary_reports(invoke, relative_pipeline, tmp_path):
    """--junit parses with junitparser (one testcase per gate x device, counts match); --summary has tables."""
    from junitparser import JUnitXml

    _run(invoke, relative_pipeline)
    junit, summary = tmp_path / "r.xml", tmp_path / "s.md"
    heavy = _run(invoke, relative_pipeline, "--model", HEAVY, "--junit", junit, "--summary", summary,
                 expect=ExitCode.GATES_FAILED)
    suites = list(JUnitXml.fromfile(str(junit)))
    cases = [c for s in suites for c in s]
    assert len(cases) == len(heavy["gates"]) == 1
    assert sum(s.failures for s in suites) == 1 and sum(s.errors for s in suites) == 0
    text = summary.read_text(encoding="utf-8")
    assert "| result | device | gate | value | threshold | note |" in text and "|---|" in text
    assert "max 10 % worse than baseline" in text
    junit2 = tmp_path / "c.xml"
    invoke("gate", "check", heavy["run_id"], "--junit", junit2, expect=ExitCode.GATES_FAILED)
    assert sum(s.failures for s in JUnitXml.fromfile(str(junit2))) == 1


def test_bundle_baseline_is_verified_and_recorded(invoke, probed_home, tmp_path):
    """A signed bundle of a passed run is a baseline (its digest recorded, gate check agrees); an
    unverifiable file is exit 2 naming why."""
    import hashlib

    other = write_pipeline(tmp_path / "base.yaml", gates="[{metric: latency_ms, op: '<=', value: 250}]",
                           iterations=100, extra_policy=LOOSE)
    base = _run(invoke, other)["run_id"]
    invoke("keys", "generate")
    bundle = tmp_path / "base.zip"
    invoke("bundle", "create", base, "--out", bundle)
    path = write_pipeline(tmp_path / "cand.yaml", gates=f"[{{metric: latency_ms, baseline: '{bundle}', "
                                                        "max_regression_pct: 10}]", iterations=100,
                          extra_policy=LOOSE, model=HEAVY)
    outcome = _run(invoke, path, expect=ExitCode.GATES_FAILED)
    gate = _gate(outcome)
    assert (gate["status"], gate["baseline_source"], gate["baseline_run_id"]) == ("fail", "bundle", base)
    assert gate["baseline_bundle_sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert json.loads(invoke("gate", "check", outcome["run_id"], "--json", expect=ExitCode.GATES_FAILED)
                      .stdout)["agrees"]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    path.write_text(path.read_text().replace(str(bundle), str(bad)))
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0].baseline: baseline bundle {bad} failed verification: {bad}: not a zip file" \
        in result.stderr.replace("\n", " ")


def test_p25_statistic_option(invoke, probed_home, tmp_path):
    """`statistic: p25` compares the pooled iterations' 25th percentiles (bench/decision_quality.py's proposal):
    the unchanged model passes, the 7x slower one fails, and explain names the statistic."""
    path = write_pipeline(tmp_path / "p25.yaml", iterations=200, repeats=5, extra_policy=LOOSE,
                          gates="[{metric: latency_ms, baseline: last-passed, max_regression_pct: 10, statistic: p25}]")
    path, _, same = _unchanged_pair_passes(invoke, path)
    same = _gate(same)
    assert same["status"] == "pass" and same["statistic"] == "p25" and same["gate"].startswith("latency_ms (p25) ")
    heavy = _run(invoke, path, "--model", HEAVY, expect=ExitCode.GATES_FAILED)
    gate = _gate(heavy)
    assert gate["status"] == "fail" and gate["reason"].startswith("p25 ")
    assert gate["candidate_statistic"] / gate["baseline_median"] == pytest.approx(gate["ratio"])
    text = invoke("gate", "explain", heavy["run_id"]).stdout
    assert "25th percentiles: candidate " in text
    assert "rule: fail if the 25th percentile latency_ms rises by more than 10 %" in text
    invoke("gate", "check", heavy["run_id"], expect=ExitCode.GATES_FAILED)


def test_statistic_is_for_relative_gates_only(invoke, probed_home, tmp_path):
    """`statistic` on an absolute gate is refused by the schema."""
    path = write_pipeline(tmp_path / "p.yaml", gates="[{metric: latency_ms, op: '<=', value: 250, statistic: p25}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0]: is neither an absolute gate" in result.stderr.replace("\n", " ")


def test_gate_mixing_both_kinds_is_refused(invoke, probed_home, tmp_path):
    """A gate with both a value and a baseline says what the closest kind of gate must not have."""
    path = write_pipeline(tmp_path / "p.yaml", gates="[{metric: latency_ms, op: '<=', value: 250, "
                                                     "baseline: last-passed, max_regression_pct: 10}]")
    result = invoke("run", path, expect=ExitCode.INVALID_INPUT)
    assert f"{path}: $.gates[0]: is neither an absolute gate {{metric, op, value}} nor a relative gate {{metric, " \
           "baseline, max_regression_pct}; as an absolute gate {metric, op, value}: an absolute gate takes no " \
           "baseline, max_regression_pct, statistic or baseline_mode (rule: oneOf)" in result.stderr.replace("\n", " ")
