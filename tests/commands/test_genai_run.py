"""GenAI runs on the local backend: a real onnxruntime-genai model answers a PromptPack, greedily."""

from __future__ import annotations

import json

from conftest import REPO

GENAI = REPO / "examples" / "genai"
MODEL = REPO / "probe_models" / "genai_tiny"


def pack_with(tmp_path, extra_cases=(), version="1.0.0"):
    doc = json.loads((GENAI / "pack.json").read_text())
    doc["version"] = version
    doc["cases"] = doc["cases"][:3] + list(extra_cases)
    path = tmp_path / f"pack-{version}.json"
    path.write_text(json.dumps(doc))
    return path, doc["promptpack_id"]


def pipeline(tmp_path, pack_path, pack_id, gates, version="1.0.0", model=MODEL):
    path = tmp_path / "genai.yaml"
    path.write_text(f"name: genai-test\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{model}'}}\n"
                    f"promptpack: {{id: {pack_id}, version: '{version}', path: '{pack_path}'}}\n"
                    "run_policy: {repeats: 2, flake: {latency_cv: 1.0, throughput_cv: 1.0}}\n"
                    f"gates: {gates}\n")
    return path


def test_example_pipeline_gates_on_ttft_tps_and_correctness(invoke, probed_home):
    doc = json.loads(invoke("run", GENAI / "pipeline.yaml", "--json").stdout)
    assert doc["verdict"] == "passed"
    assert sorted(g["metric"] for g in doc["gates"]) == ["correctness", "tps", "ttft_ms"]
    metrics = doc["devices"]["local:cpu"]
    assert metrics["correctness"]["value"] == 1.0
    assert metrics["ttft_ms"]["value"] > 0 and metrics["tps"]["value"] > 0
    assert metrics["correctness"]["samples"] == 3 * len(json.loads((GENAI / "pack.json").read_text())["cases"])
    assert doc["inputs"]["source"] == "promptpack tiny-genai-smoke@1.0.0"


def test_tightened_correctness_fails_and_explain_names_the_failing_case(invoke, probed_home, tmp_path):
    mars = {"case_id": "capital-mars", "prompt": "Q: What is the capital of Mars? A:",
            "expected": {"type": "exact", "value": "Mars has no capital."}}
    pack_path, pack_id = pack_with(tmp_path, [mars])
    pipe = pipeline(tmp_path, pack_path, pack_id, "[{metric: correctness, op: '>=', value: 1.0}]")
    doc = json.loads(invoke("run", pipe, "--json", expect=1).stdout)
    assert doc["devices"]["local:cpu"]["correctness"]["value"] == 0.75
    explain = invoke("gate", "explain", doc["run_id"]).stdout
    assert "cases: 3 of 4 pass:" in explain
    line = next(ln for ln in explain.splitlines() if "FAIL capital-mars" in ln)
    assert line.startswith('    FAIL capital-mars (median score 0): expected {"type": "exact", "value": '
                           '"Mars has no capital."}; got \' Madrid.\'')


def test_unknown_pack_version_lists_the_known_ones(invoke, probed_home, tmp_path):
    pack_path, pack_id = pack_with(tmp_path)
    invoke("pack", "add", pack_path)
    pipe = tmp_path / "v.yaml"
    pipe.write_text(f"name: v\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{MODEL}'}}\n"
                    f"promptpack: {{id: {pack_id}, version: '9.9.9'}}\n"
                    "gates: [{metric: correctness, op: '>=', value: 0.5}]\n")
    result = invoke("run", pipe, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {pipe}: $.promptpack.version: {pack_id} has no version "
                             "9.9.9 (known: 1.0.0)\n")


def test_genai_model_needs_a_pack_and_other_models_take_none(invoke, probed_home, tmp_path):
    pipe = tmp_path / "nopack.yaml"
    pipe.write_text(f"name: n\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{MODEL}'}}\n"
                    "gates: [{metric: correctness, op: '>=', value: 0.5}]\n")
    assert invoke("run", pipe, expect=2).stderr == (
        f"Error [INVALID_INPUT]: {pipe}: $.promptpack: a GenAI model is gated on a PromptPack; add promptpack: "
        "{id, version} (see `edgegate pack add`)\n")
    pack_path, pack_id = pack_with(tmp_path)
    onnx = REPO / "examples" / "quickstart" / "model.onnx"
    pipe = pipeline(tmp_path, pack_path, pack_id, "[{metric: latency_ms, op: '<=', value: 1000}]", model=onnx)
    assert invoke("run", pipe, expect=2).stderr == (
        f"Error [INVALID_INPUT]: {pipe}: $.promptpack: onnx models take no PromptPack; only GenAI folders "
        "(onnxruntime-genai, with genai_config.json) do\n")
