"""Pipeline files: bad input is refused with one exact line and exit 2, before any state is written."""

from __future__ import annotations

import pytest

from edgegate_cli.errors import LimitExceeded
from edgegate_cli.spec.pipeline import load_pipeline

GATE = "gates: [{metric: latency_ms, op: '<=', value: 1}]\n"
HEAD = "name: x\nbackend: local\n"

CASES = {
    "malformed": (HEAD + "devices: [local:cpu\n",
                  "{p}: line 4, column 1: malformed YAML: expected ',' or ']', but got '<stream end>'", None),
    "schema": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\nrun_policy: {repeats: three}\n" + GATE,
               "{p}: $.run_policy.repeats: 'three' is not of type 'integer' (rule: type)",
               "the schema: `edgegate schema show pipeline`"),
    "too_many_devices": (HEAD + "devices: [local:a, local:b, local:c, local:d, local:e, local:f]\n"
                         "model: {path: m.onnx}\n" + GATE,
                         "{p}: $.devices: 6 devices exceed the limit of 5 devices per run", None),
    "repeats": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\nrun_policy: {repeats: 6}\n" + GATE,
                "{p}: $.run_policy.repeats: repeats 6 exceeds the limit of 5 measurement repeats", None),
    "warmup": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\nrun_policy: {warmup: 2}\n" + GATE,
               "{p}: $.run_policy.warmup: warmup 2 breaks the limit: warmup is exactly 1 repeat", None),
    "timeout": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\nrun_policy: {timeout_s: 3000}\n" + GATE,
                "{p}: $.run_policy.timeout_s: timeout_s 3000 exceeds the limit of 2700 s (45 min)", None),
    "unknown_metric": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\n"
                       "gates: [{metric: latency, op: '<=', value: 1}]\n",
                       "{p}: $.gates[0].metric: 'latency' is not one of the allowed values; did you mean "
                       "latency_ms, latency_p90_ms? (rule: enum)", "the schema: `edgegate schema show pipeline`"),
    "gate_device": (HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\n"
                    "gates: [{metric: latency_ms, op: '<=', value: 1, device: 'local:gpu'}]\n",
                    "{p}: $.gates[0].device: 'local:gpu' is not in the pipeline's devices (local:cpu)", None),
    "remote_device_on_local": (HEAD + "devices: ['Samsung Galaxy S24 (Family)']\nmodel: {path: m.onnx}\n" + GATE,
                               "{p}: $.devices[0]: 'Samsung Galaxy S24 (Family)' is not a local device; the local "
                               "backend runs on local:cpu (or local:<execution provider>)", None),
}
CODES = {"too_many_devices": "LIMIT_EXCEEDED", "repeats": "LIMIT_EXCEEDED", "warmup": "LIMIT_EXCEEDED",
         "timeout": "LIMIT_EXCEEDED"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_pipeline_is_refused_with_one_line(case, tmp_path, invoke, fresh_home):
    """Each bad pipeline exits 2 with exactly one stderr line naming the file, field and rule."""
    text, message, hint = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    result = invoke("run", path, expect=2)
    expected = f"Error [{CODES.get(case, 'INVALID_INPUT')}]: " + message.format(p=path)
    if hint:
        expected += f" ({hint})"
    assert result.stderr == expected + "\n"
    assert result.stdout == ""
    assert not fresh_home.exists(), "bad input must not create state"


def test_missing_pipeline_file(tmp_path, invoke):
    result = invoke("run", tmp_path / "nope.yaml", expect=2)
    assert result.stderr == f"Error [INVALID_INPUT]: {tmp_path / 'nope.yaml'}: no such file\n"


def test_bad_input_as_json_is_one_error_document(tmp_path, invoke):
    import json

    path = tmp_path / "p.yaml"
    path.write_text(CASES["repeats"][0])
    result = invoke("run", path, "--json", expect=2)
    doc = json.loads(result.stdout)
    assert doc == {"error": {"code": "LIMIT_EXCEEDED", "exit_code": 2, "hint": None,
                             "message": f"{path}: $.run_policy.repeats: repeats 6 exceeds the limit of 5 "
                                        "measurement repeats"}}


def test_defaults_and_paths(tmp_path):
    """Defaults follow SPEC §3 and model paths resolve relative to the pipeline file."""
    path = tmp_path / "sub" / "p.yaml"
    path.parent.mkdir()
    path.write_text(HEAD + "devices: [local:cpu]\nmodel: {path: ../m.onnx}\n" + GATE)
    p = load_pipeline(path)
    assert p.model.path == str(tmp_path / "m.onnx")
    policy = p.run_policy
    assert (policy.warmup, policy.repeats, policy.iterations, policy.timeout_s) == (1, 3, 50, 1200)
    assert (p.run_policy.flake.latency_cv, p.run_policy.flake.throughput_cv) == (0.20, 0.15)
    assert p.gates[0].required is True
    assert len(p.sha256) == 64


def test_model_override(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "devices: [local:cpu]\nmodel: {path: m.onnx}\n" + GATE)
    assert load_pipeline(path, model_override=str(tmp_path / "other.onnx")).model.path == str(tmp_path / "other.onnx")


def test_limit_error_class(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(CASES["too_many_devices"][0])
    with pytest.raises(LimitExceeded):
        load_pipeline(path)
