"""Genie profiles from physical devices, gated through the metric mapping end to end."""

from __future__ import annotations

import json

from conftest import LOOSE, REPO, write_pipeline

PROFILE = REPO / "tests" / "data" / "genie_profile_llama3_2_1b_xiaomi15.json"


def token_pipeline(tmp_path, ttft_limit=600):
    gates = (f"[{{metric: ttft_ms, op: '<=', value: {ttft_limit}}}, {{metric: tps, op: '>=', value: 30}}, "
             "{metric: prompt_tps, op: '>=', value: 1000}, {metric: latency_ms, op: '<=', value: 1000}]")
    return write_pipeline(tmp_path / "genie.yaml", gates=gates, extra_policy=LOOSE, iterations=10, repeats=2)


def test_reference_genie_profile_is_gated_end_to_end(invoke, probed_home, tmp_path):
    pipe = token_pipeline(tmp_path)
    doc = json.loads(invoke("run", pipe, "--evidence", f"local:cpu=genie:{PROFILE}", "--json").stdout)
    metrics = doc["devices"]["local:cpu"]
    assert metrics["ttft_ms"]["value"] == 531.665
    assert metrics["tps"]["value"] == 38.52525329589844
    assert metrics["prompt_tps"]["value"] == 1547.9876708984375
    assert [g["status"] for g in doc["gates"]] == ["pass"] * 4
    check = json.loads(invoke("gate", "check", doc["run_id"], "--json").stdout)
    assert check["agrees"] is True and check["verdict"] == "passed"


def test_a_tightened_token_gate_fails(invoke, probed_home, tmp_path):
    pipe = token_pipeline(tmp_path, ttft_limit=500)
    result = invoke("run", pipe, "--evidence", f"genie:{PROFILE}", expect=1)  # one device: no name needed
    assert "Gate failed: ttft_ms <= 500 on local:cpu: value 531.7 ms, threshold <= 500" in result.stdout


def test_malformed_genie_profile_names_the_missing_field(invoke, probed_home, tmp_path):
    pipe = write_pipeline(tmp_path / "p.yaml", gates="[{metric: ttft_ms, op: '<=', value: 600}]",
                          extra_policy=LOOSE)
    bad = tmp_path / "bad.json"
    profile = json.loads(PROFILE.read_text())
    del profile["components"][0]["events"][1]["time-to-first-token"]
    bad.write_text(json.dumps(profile))
    result = invoke("run", pipe, "--evidence", f"genie:{bad}", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {bad}: missing field $.components[0].events[1]."
                             "time-to-first-token (expected the JSON written by genie-t2t-run --profile)\n")


def test_malformed_evidence_values(invoke, probed_home, tmp_path):
    pipe = token_pipeline(tmp_path)
    assert invoke("run", pipe, "--evidence", "tflite:x.json", expect=2).stderr == (
        "Error [INVALID_INPUT]: --evidence 'tflite:x.json': expected [DEVICE=]genie:FILE\n")
    assert invoke("run", pipe, "--evidence", f"phone=genie:{PROFILE}", expect=2).stderr == (
        f"Error [INVALID_INPUT]: --evidence 'phone=genie:{PROFILE}': 'phone' is not one of {pipe}'s devices "
        "(local:cpu)\n")


def test_required_token_gate_needs_evidence_for_every_device_it_gates():
    """On a multi-device matrix, a device without a profile stops the run in preflight."""
    import pytest

    from edgegate_cli.errors import MissingRequiredMetric
    from edgegate_cli.measure.device_evidence import Evidence, check_evidence_coverage
    from edgegate_cli.spec.pipeline import Pipeline

    pipe = Pipeline(name="p", backend="qaihub", devices=["Phone A", "Phone B"], source="p.yaml",
                    gates=[{"metric": "tps", "op": ">=", "value": 10},
                           {"metric": "ttft_ms", "op": "<=", "value": 900, "device": "Phone A"}])
    only_a = [Evidence(device="Phone A", kind="genie", path="a.json", payload={})]
    with pytest.raises(MissingRequiredMetric) as info:
        check_evidence_coverage(pipe, only_a)
    assert info.value.message == ("p.yaml: gate 'tps >= 10' needs tps on Phone B, which only a Genie profile "
                                  "provides here")
    pipe.gates = pipe.gates[1:]  # a gate on Phone A alone is covered
    check_evidence_coverage(pipe, only_a)
