"""`edgegate run` end to end on the local backend: real ONNX Runtime, real subprocesses, real SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
from bundle_evidence import example_pipeline
from conftest import LOOSE, REPO, write_pipeline

QUICKSTART = REPO / "examples" / "quickstart" / "pipeline.yaml"
QUICKSTART_FAIL = REPO / "examples" / "quickstart-fail" / "pipeline.yaml"
MODEL = REPO / "examples" / "quickstart" / "model.onnx"


def runs_table(home):
    con = sqlite3.connect(home / "state.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select * from runs order by created_at")]
    finally:
        con.close()


def test_quickstart_passes_on_a_fresh_home_probing_first(invoke, fresh_home):
    """The README's quickstart: a fresh home probes by itself, then prints a gate table and exits 0."""
    result = invoke("run", QUICKSTART)
    assert "probing the local backend first" in result.stderr
    assert "Gates" in result.stdout and "latency_ms <= 250" in result.stdout
    assert "PASSED: run run-" in result.stdout
    (run,) = runs_table(fresh_home)
    assert (run["status"], run["verdict"], run["error_code"]) == ("passed", "passed", None)


def test_quickstart_fail_names_gate_device_value_and_threshold(invoke, probed_home):
    result = invoke("run", QUICKSTART_FAIL, expect=1)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("Gate failed:"))
    value = runs_table(probed_home)[0]
    metrics = json.loads(value["metrics_json"])["local:cpu"]["latency_ms"]
    assert line == (f"Gate failed: latency_ms <= 0.001 on local:cpu: value {metrics['value']:.4g} ms, "
                    "threshold <= 0.001")
    assert "FAILED: run" in result.stdout




def test_json_output_is_exactly_one_document(invoke, probed_home, tmp_path):
    pipe = write_pipeline(tmp_path / "j.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                          extra_policy=LOOSE)
    result = invoke("run", pipe, "--json")
    doc = json.loads(result.stdout)  # raises if anything else is on stdout
    assert doc["verdict"] == "passed" and doc["status"] == "passed"
    lat = doc["devices"]["local:cpu"]["latency_ms"]
    assert lat["repeats"] == 3 and lat["samples"] == 90 and len(lat["per_repeat"]) == 3
    assert doc["devices"]["local:cpu"]["npu_layer_fraction"] == {
        "available": False, "cv": None, "metric": "npu_layer_fraction", "per_repeat": [], "repeats": 0,
        "reason": "ONNX Runtime on this machine reports no per-layer compute units", "samples": 0, "unit": "1",
        "value": None}
    assert [(g["gate"], g["device"], g["status"]) for g in doc["gates"]] == [
        ("latency_ms <= 1000", "local:cpu", "pass")]
    assert doc["model"]["sha256"] == __import__("hashlib").sha256(MODEL.read_bytes()).hexdigest()


def test_required_metric_the_backend_cannot_provide_stops_before_measuring(invoke, probed_home, tmp_path):
    pipe = write_pipeline(tmp_path / "npu.yaml", gates="[{metric: npu_layer_fraction, op: '>=', value: 1.0}]")
    result = invoke("run", pipe, expect=3)
    assert result.stderr.splitlines()[-1] == (
        f"Error [MISSING_REQUIRED_METRIC]: {pipe}: gate 'npu_layer_fraction >= 1' needs npu_layer_fraction, which "
        "the local backend cannot provide: ONNX Runtime on this machine reports no per-layer compute units "
        "(run `edgegate probe --backend local` to refresh the capabilities, or make the gate optional)")
    (run,) = runs_table(probed_home)
    assert (run["status"], run["error_code"]) == ("error", "MISSING_REQUIRED_METRIC")
    con = sqlite3.connect(probed_home / "state.db")
    assert con.execute("select count(*) from run_payloads").fetchone()[0] == 0
    events = [r[0] for r in con.execute("select status from run_events where run_id = ? order by id", [run["id"]])]
    assert events == ["queued", "preparing", "error"]


def test_reference_outputs_are_required_for_output_agreement(invoke, probed_home, tmp_path):
    pipe = write_pipeline(tmp_path / "cos.yaml", gates="[{metric: output_cosine, op: '>=', value: 0.99}]")
    result = invoke("run", pipe, expect=3)
    assert "needs model.reference_outputs in the pipeline" in result.stderr


def test_an_impossible_flake_limit_still_decides_a_gate_every_repeat_meets(invoke, probed_home, tmp_path):
    """latency_cv 0 makes any spread flaky, but every repeat is far under 1000 ms: the spread cannot change the
    outcome, so the gate passes and says why (a gate the repeats straddle would be FLAKY_METRIC: test_gating)."""
    pipe = write_pipeline(tmp_path / "flaky.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                          extra_policy=", flake: {latency_cv: 0.0}, noisy_host: {starved_off_cpu: 1}")
    doc = json.loads(invoke("run", pipe, "--json", expect=0).stdout)
    assert doc["verdict"] == "passed" and doc["gates"][0]["status"] == "pass"
    reason = doc["gates"][0]["reason"]
    assert reason.startswith("every repeat (") and "exceeds the flake limit 0" in reason


def test_output_agreement_with_dataset_and_reference_outputs(invoke, probed_home, tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    image = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", image=image)
    (logits,) = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"image": image})
    np.savez(tmp_path / "ref.npz", logits=logits)
    pipe = tmp_path / "agree.yaml"  # agreement metrics have no flake rule
    pipe.write_text(f"name: agree\nbackend: local\ndevices: ['local:cpu']\n"
                    f"model: {{path: '{MODEL}', dataset: inputs.npz, reference_outputs: ref.npz}}\n"
                    "run_policy: {repeats: 2, iterations: 10}\n"
                    "gates: [{metric: output_cosine, op: '>=', value: 0.9999}, "
                    "{metric: output_max_abs_err, op: '<=', value: 0.0001}]\n")
    doc = json.loads(invoke("run", pipe, "--json").stdout)
    assert doc["inputs"]["source"] == "dataset inputs.npz"
    assert doc["devices"]["local:cpu"]["output_cosine"]["value"] > 0.9999
    assert [g["status"] for g in doc["gates"]] == ["pass", "pass"]
    # A reference that disagrees fails the gate.
    np.savez(tmp_path / "ref.npz", logits=-logits)
    doc = json.loads(invoke("run", pipe, "--json", expect=1).stdout)
    assert doc["devices"]["local:cpu"]["output_cosine"]["value"] < -0.999


def test_corrupt_model_is_invalid_input_and_creates_no_run(invoke, probed_home, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 10)
    pipe = write_pipeline(tmp_path / "bad.yaml", gates="[{metric: latency_ms, op: '<=', value: 1}]", model=str(bad))
    result = invoke("run", pipe, expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {bad}: not a valid ONNX model")
    assert len(result.stderr.splitlines()) == 1
    assert runs_table(probed_home) == []


def test_gate_check_and_explain_rederive_the_stored_verdict(invoke, probed_home, tmp_path):
    invoke("run", example_pipeline(tmp_path, failing=True), expect=1)
    run_id = runs_table(probed_home)[0]["id"]
    check = invoke("gate", "check", run_id, "--json", expect=1)
    doc = json.loads(check.stdout)
    assert doc["agrees"] is True and doc["verdict"] == "failed" and doc["mismatches"] == []
    explain = invoke("gate", "explain", run_id).stdout
    assert "[FAIL] latency_ms <= 0.001 on local:cpu" in explain
    assert "rule: latency_ms <= 0.001" in explain and "over 3 repeats" in explain


def test_gate_check_detects_a_tampered_payload(invoke, probed_home, tmp_path):
    invoke("run", write_pipeline(tmp_path / "t.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                                 extra_policy=LOOSE))
    con = sqlite3.connect(probed_home / "state.db")
    run_id, digest = con.execute("select run_id, sha256 from run_payloads where warmup = 0 limit 1").fetchone()
    blob = probed_home / "cas" / "sha256" / digest[:2] / digest[2:]
    os.chmod(blob, 0o644)
    payload = json.loads(blob.read_text())
    payload["iterations_ms"] = [v * 1e6 for v in payload["iterations_ms"]]
    blob.write_text(json.dumps(payload))
    result = invoke("gate", "check", run_id, expect=1)
    assert result.stderr.startswith(f"Error [CORRUPT_BLOB]: {blob}: content hash is sha256:")


def test_runs_list_and_show(invoke, probed_home, tmp_path):
    invoke("run", write_pipeline(tmp_path / "listed.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                                 extra_policy=LOOSE))
    listing = json.loads(invoke("runs", "list", "--json").stdout)["runs"]
    assert [(r["pipeline"], r["status"]) for r in listing] == [("listed", "passed")]
    shown = json.loads(invoke("runs", "show", listing[0]["id"], "--json").stdout)
    assert [e["status"] for e in shown["events"]] == ["queued", "preparing", "submitting", "running", "collecting",
                                                      "evaluating", "reporting", "passed"]
    assert [(p["repeat_index"], p["warmup"]) for p in shown["payloads"]] == [(0, True), (1, False), (2, False),
                                                                             (3, False)]
    assert invoke("runs", "show", "run-nope", expect=2).stderr == (
        "Error [NOT_FOUND]: no run 'run-nope' in this home (list runs with `edgegate runs list`)\n")


def test_status_reports_home_schema_and_store(invoke, probed_home):
    doc = json.loads(invoke("status", "--json").stdout)
    assert doc["home"] == str(probed_home) and doc["home_source"] == "EDGEGATE_HOME"
    assert doc["schema_version"] >= 2 and doc["active_run"] is None and doc["cas_blobs"] > 0


def _edgegate(*args):
    return subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_two_processes_one_run_at_a_time(probed_home, tmp_path):
    """A second run fails fast naming the active one, or waits with --wait; the database stays intact."""
    slow = write_pipeline(tmp_path / "slow.yaml", gates="[{metric: latency_ms, op: '<=', value: 100000}]",
                          iterations=400, extra_policy=LOOSE, model=str(MODEL.parent / "model_heavy.onnx"))
    first = _edgegate("run", slow)
    deadline = time.monotonic() + 60
    active = None
    while time.monotonic() < deadline and active is None:
        rows = [r for r in runs_table(probed_home) if r["status"] not in ("passed", "failed", "error")] \
            if (probed_home / "state.db").exists() else []
        active = rows[0]["id"] if rows else None
        time.sleep(0.05)
    assert active, "the first run never became active"
    second = _edgegate("run", slow)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 3
    assert f"Error [RUN_ACTIVE]: run {active} (slow, " in err
    waiter = _edgegate("run", slow, "--wait")
    first.communicate(timeout=120)
    waited_out, waited_err = waiter.communicate(timeout=120)
    assert first.returncode == 0
    assert waiter.returncode == 0, waited_err
    statuses = [r["status"] for r in runs_table(probed_home)]
    assert sorted(statuses) == ["passed", "passed"]
    con = sqlite3.connect(probed_home / "state.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
