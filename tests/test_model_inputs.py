"""Issue 10, items 10-12: what a model is fed is decided before any device time, never guessed, and recorded.

Dynamic dimensions other than the batch need `input_specs` or a dataset; inputs can be given a constant or a
range; a dataset must match the model exactly and is size-checked from its declared sizes before loading."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from model_factory import detector_like, vad_like

GATES = "[{metric: latency_ms, op: '<=', value: 10000}]"


def pipeline(tmp_path, model, model_extra: str = "", name: str = "inputs") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbackend: local\ndevices: ['local:cpu']\n"
                    f"model: {{path: '{model}'{model_extra}}}\nrun_policy: {{repeats: 1, iterations: 3}}\n"
                    f"gates: {GATES}\n")
    return str(path)


def runs(invoke) -> list[dict]:
    return json.loads(invoke("runs", "list", "--json").stdout)["runs"]


def test_a_dynamic_height_and_width_is_refused_in_preflight(probed_home, tmp_path, invoke):
    """PP-OCRv4-like [N, 3, H, W]: exit 2 naming the input and the dimension; no run is created."""
    path = pipeline(tmp_path, detector_like(tmp_path / "det.onnx"))
    result = invoke("run", path, expect=2)
    assert result.stderr == (
        f"Error [INVALID_INPUT]: {path}: $.model.input_specs.image: the model's input 'image' has a dynamic "
        "dimension 2 ('H') in its shape ['N', 3, 'H', 'W']; EdgeGate will not guess its size (give the shape to "
        "measure as model.input_specs.image.shape (a list of 4 sizes), or give a model.dataset)\n")
    assert runs(invoke) == []


def test_input_specs_fix_the_shape_and_the_run_records_what_was_fed(probed_home, tmp_path, invoke):
    """With input_specs the run measures 1x3x320x320; the shapes fed are in the run JSON, runs show and the bundle."""
    path = pipeline(tmp_path, detector_like(tmp_path / "det.onnx"), ", input_specs: {image: {shape: [1, 3, 320, 320]}}")
    invoke("keys", "generate")
    outcome = json.loads(invoke("run", path, "--bundle", tmp_path / "b.zip", "--json").stdout)
    assert outcome["verdict"] == "passed"
    fed = {"image": {"shape": [1, 3, 320, 320], "dtype": "float32", "fill": "random"}}
    assert outcome["inputs"]["tensors"] == fed and outcome["inputs"]["source"] == "generated (seed 0)"
    shown = json.loads(invoke("runs", "show", outcome["run_id"], "--json").stdout)
    assert shown["inputs"]["tensors"] == fed
    human = invoke("runs", "show", outcome["run_id"]).stdout
    assert "inputs\tgenerated (seed 0): image [1, 3, 320, 320] float32 random" in human
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert json.loads(zf.read("summary.json"))["predicate"]["inputs"]["tensors"] == fed


def test_a_constant_and_a_range_feed_a_vad_like_model(probed_home, tmp_path, invoke, fresh_home):
    """Silero-VAD-like: `sr` gets the constant 16000, `input` a seeded range; the stored .npz holds exactly that."""
    specs = (", input_specs: {sr: {value: 16000}, input: {shape: [1, 512], range: [-1, 1]}, "
             "state: {value: 0}}")
    outcome = json.loads(invoke("run", pipeline(tmp_path, vad_like(tmp_path / "vad.onnx"), specs), "--json").stdout)
    assert outcome["verdict"] == "passed"
    assert outcome["inputs"]["tensors"] == {
        "input": {"shape": [1, 512], "dtype": "float32", "fill": "range [-1, 1]"},
        "state": {"shape": [2, 1, 128], "dtype": "float32", "fill": "value 0"},
        "sr": {"shape": [], "dtype": "int64", "fill": "value 16000"}}
    digest = outcome["inputs"]["sha256"]
    with np.load(fresh_home / "cas" / "sha256" / digest[:2] / digest[2:]) as fed:
        assert fed["sr"].shape == () and int(fed["sr"]) == 16000 and fed["sr"].dtype == np.int64
        assert fed["input"].min() >= -1 and fed["input"].max() <= 1 and fed["input"].std() > 0.3
        assert not fed["state"].any()


@pytest.mark.parametrize(("specs", "message"), [
    ("{sr: {value: 16000.5}, input: {shape: [1, 4]}}",
     "$.model.input_specs.sr: 16000.5 is not an integer, and input 'sr' is int64"),
    ("{sr: {value: 16000}, input: {shape: [1, 4], range: [2, 1]}}",
     "$.model.input_specs.input.range: [2, 1] has its low end above its high end"),
    ("{sr: {value: 16000}, input: {shape: [1, 4], dtype: int64}}", None),
])
def test_input_specs_that_do_not_fit_are_refused(probed_home, tmp_path, invoke, specs, message):
    model = vad_like(tmp_path / "vad.onnx")
    path = pipeline(tmp_path, model, f", input_specs: {specs}")
    result = invoke("run", path, expect=2)
    expected = (f"Error [INVALID_INPUT]: {path}: {message}\n" if message else
                f"Error [INVALID_INPUT]: {model}: model.input_specs.input: dtype int64 differs from the model's "
                "input dtype float32\n")
    assert result.stderr == expected


def dataset(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("arrays", "problem"), [
    ({"image": np.zeros((1, 3, 64, 64), np.float32), "extra": np.zeros(3, np.float32)},
     "has array(s) extra that the model has no input for (inputs: image)"),
    ({"image": np.zeros((1, 3, 32, 32), np.float32)},
     ": array 'image' has shape [1, 3, 32, 32], which does not fit the model's input shape [1, 3, 64, 64]"),
    ({"image": np.zeros((1, 3, 64, 64), np.float64)}, ": array 'image' is float64, the model's input is float32"),
])
def test_a_dataset_that_does_not_match_the_model_is_refused_before_the_run(probed_home, tmp_path, invoke, arrays,
                                                                            problem):
    """Today's DEVICE_JOB_FAILED after spending the run becomes exit 2 in preflight; no run is created."""
    from conftest import REPO

    data = dataset(tmp_path / "data.npz", **arrays)
    path = pipeline(tmp_path, REPO / "examples" / "quickstart" / "model.onnx", f", dataset: '{data}'")
    result = invoke("run", path, expect=2)
    sep = " " if problem.startswith("has") else ""
    assert result.stderr == f"Error [INVALID_INPUT]: {path}: $.model.dataset: {data}{sep}{problem}\n"
    assert runs(invoke) == []


def test_a_dataset_zip_bomb_is_refused_from_its_declared_sizes(probed_home, tmp_path, invoke):
    """A 1 MB .npz whose array inflates to 1 GiB is refused before anything is loaded (declared size)."""
    from conftest import REPO

    bomb = tmp_path / "bomb.npz"
    header = b"\x93NUMPY\x01\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (268435456,), }".ljust(
        118) + b"\n"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("image.npy", "w", force_zip64=True) as f:
        f.write(header)
        zero = bytes(1 << 20)
        for _ in range(1024):
            f.write(zero)
    assert bomb.stat().st_size < 2 << 20
    path = pipeline(tmp_path, REPO / "examples" / "quickstart" / "model.onnx", f", dataset: '{bomb}'")
    result = invoke("run", path, expect=2)
    declared = len(header) + (1 << 30)
    assert result.stderr == (f"Error [LIMIT_EXCEEDED]: {path}: $.model.dataset: {bomb}: its arrays declare "
                             f"{declared:,} bytes, over the limit of 524,288,000 bytes "
                             "(use a smaller dataset)\n")
