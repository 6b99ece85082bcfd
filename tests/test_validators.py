"""validate_model accepts each of the five model forms and rejects every bad layout with one exact line
(SPEC §3). Models are real files: the committed fixtures, copies of them, or ONNX built here."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgegate_cli.errors import ExitCode, InvalidInput, LimitExceeded
from edgegate_cli.spec.validators import MAX_MODEL_BYTES, TensorSpec, validate_model

REPO = Path(__file__).resolve().parent.parent
PROBE = REPO / "probe_models"
QUICKSTART = REPO / "examples" / "quickstart" / "model.onnx"
ACCEPTED = ("accepted: a .onnx file, a directory with one .onnx and one .data (ONNX external weights), "
            "a *.aimet directory (one .onnx + one .encodings), a TorchScript .pt/.pth, "
            "a .tflite file, or an onnxruntime-genai folder (with genai_config.json)")


def tiny_onnx(batch: int | str = 1, *, output_shape: bool = True) -> onnx.ModelProto:
    """x [batch, 8] -> MatMul(W [8, 4]) -> y [batch, 4]."""
    w = numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(8, 4), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [batch, 4] if output_shape else None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def external_dir(tmp_path: Path, location: str = "model.data", data_files=("model.data",)) -> Path:
    """A directory with model.onnx whose W lives at `location`, plus the given .data files."""
    d = tmp_path / "ext"
    d.mkdir()
    model = tiny_onnx()
    w = model.graph.initializer[0]
    raw = numpy_helper.to_array(w).tobytes()
    onnx.external_data_helper.set_external_data(w, location, offset=0, length=len(raw))
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.ClearField("float_data")
    onnx.save_model(model, str(d / "model.onnx"))
    for name in data_files:
        (d / name).write_bytes(raw)
    return d


def aimet_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(PROBE / "aimet_quant.aimet", tmp_path / "q.aimet"))


def rejected(path, specs=None, **kwargs) -> str:
    with pytest.raises(InvalidInput) as info:
        validate_model(path, specs, **kwargs)
    assert info.value.code == "INVALID_INPUT" and info.value.exit_code == ExitCode.INVALID_INPUT
    return info.value.message


# --- accepted forms --------------------------------------------------------------------------------


def test_onnx_file_accepted():
    """A plain .onnx reports opset, named inputs/outputs with shapes and dtypes, and its size."""
    info = validate_model(QUICKSTART)
    assert (info.form, info.opset, info.onnx_path, info.files) == ("onnx", 17, str(QUICKSTART), ["model.onnx"])
    assert info.total_bytes == QUICKSTART.stat().st_size
    assert info.inputs == [TensorSpec(name="image", shape=[1, 3, 64, 64], dtype="float32")]
    assert info.outputs == [TensorSpec(name="logits", shape=[1, 10], dtype="float32")]


def test_onnx_external_accepted(tmp_path):
    """The probe fixture's .onnx + .data directory is accepted and its size is the sum of both files."""
    d = Path(shutil.copytree(PROBE / "onnx_external", tmp_path / "ext"))
    info = validate_model(d)
    assert (info.form, info.files, info.onnx_path) == ("onnx_external", ["model.data", "model.onnx"],
                                                      str(d / "model.onnx"))
    assert info.total_bytes == sum(f.stat().st_size for f in d.iterdir())
    assert info.inputs == [TensorSpec(name="x", shape=[1, 8], dtype="float32")]


def test_aimet_accepted():
    """The AIMET fixture (.onnx + 0.6.1 encodings naming real tensors) is accepted."""
    info = validate_model(PROBE / "aimet_quant.aimet")
    assert (info.form, info.files, info.opset) == ("aimet", ["model.encodings", "model.onnx"], 17)
    assert info.outputs == [TensorSpec(name="y", shape=[1, 4], dtype="float32")]


def test_aimet_list_format_encodings_accepted(tmp_path):
    """Newer AIMET exports list encodings as [{name, ...}]; names are checked the same way."""
    d = aimet_copy(tmp_path)
    (d / "model.encodings").write_text(json.dumps({"version": "1.0.0", "activation_encodings": [
        {"name": "x", "dtype": "INT", "bw": 8}], "param_encodings": [{"name": "W1", "bw": 8}]}))
    assert validate_model(d).form == "aimet"


def test_torchscript_accepted_with_input_specs():
    """A TorchScript archive takes its inputs from input_specs (dtype defaults to float32)."""
    info = validate_model(PROBE / "torch" / "tiny_model.pt", {"x": {"shape": [1, 8]}})
    assert (info.form, info.onnx_path, info.opset, info.outputs) == ("torchscript", None, None, [])
    assert info.inputs == [TensorSpec(name="x", shape=[1, 8], dtype="float32")]


def test_tflite_identifier_accepted(tmp_path):
    """A .tflite whose bytes 4-8 are the flatbuffer identifier TFL3 is accepted."""
    p = tmp_path / "m.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(24))
    info = validate_model(p, {"input": {"shape": [1, 224, 224, 3], "dtype": "uint8"}})
    assert (info.form, info.total_bytes) == ("tflite", 32)
    assert info.inputs == [TensorSpec(name="input", shape=[1, 224, 224, 3], dtype="uint8")]


def test_dynamic_dimension_and_input_specs(tmp_path):
    """A named dynamic dimension is reported as its name; input_specs may fix it."""
    p = tmp_path / "dyn.onnx"
    onnx.save_model(tiny_onnx("batch"), str(p))
    info = validate_model(p, {"x": {"shape": [4, 8], "dtype": "float32"}})
    assert info.inputs == [TensorSpec(name="x", shape=["batch", 8], dtype="float32")]
    assert info.outputs == [TensorSpec(name="y", shape=["batch", 4], dtype="float32")]


# --- rejections ------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    assert rejected(tmp_path / "nope.onnx") == f"{tmp_path / 'nope.onnx'}: no such file or directory"


@pytest.mark.parametrize("name", ["model.h5", "weights.bin", "plain_dir"])
def test_unsupported_form(tmp_path, name):
    """A Keras .h5, an unknown file, or a directory with no .onnx lists the accepted forms."""
    p = tmp_path / name
    if name == "plain_dir":
        p.mkdir()
        (p / "README.txt").write_text("hello")
    else:
        p.write_bytes(b"\x89HDF\r\n\x1a\n")
    assert rejected(p) == f"{p}: unsupported model form; {ACCEPTED}"


def test_corrupt_onnx(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(bytes(range(256)) * 4)
    assert rejected(p) == f"{p}: not a valid ONNX model: Error parsing message with type 'onnx.ModelProto'"


def test_empty_onnx_fails_checker(tmp_path):
    """An empty file parses as an empty ModelProto; onnx.checker then refuses it."""
    p = tmp_path / "model.onnx"
    p.write_bytes(b"")
    assert rejected(p) == f"{p}: not a valid ONNX model: The model does not have an ir_version set properly."


def test_output_without_shape(tmp_path):
    """onnx.checker requires shapes on the graph's outputs; the message passes its reason on."""
    p = tmp_path / "m.onnx"
    onnx.save_model(tiny_onnx(output_shape=False), str(p))
    assert rejected(p) == f"{p}: not a valid ONNX model: Field 'shape' of 'type' is required but missing."


def test_graph_without_inputs(tmp_path):
    """A constant graph has nothing to feed, so nothing to measure."""
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones(4, np.float32)))],
        "const", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    p = tmp_path / "const.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(p))
    assert rejected(p) == f"{p}: the graph has no inputs"


def test_sequence_input_refused(tmp_path):
    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, [8])
    graph = helper.make_graph([helper.make_node("SequenceAt", ["xs", "i"], ["y"])], "seq",
                              [seq, helper.make_tensor_value_info("i", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])])
    p = tmp_path / "seq.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(p))
    assert rejected(p) == (f"{p}: graph input 'xs' is not a tensor; EdgeGate measures models whose inputs "
                           "and outputs are tensors")


@pytest.mark.parametrize("opset", [5, 99])
def test_opset_out_of_range(tmp_path, opset):
    """Opsets older than ONNX Runtime runs, or newer than the installed onnx knows, are refused."""
    model = tiny_onnx()
    model.opset_import[0].version = opset
    p = tmp_path / "m.onnx"
    onnx.save_model(model, str(p))
    assert rejected(p) == (f"{p}: opset {opset} is outside the supported range 7-{onnx.defs.onnx_opset_version()}; "
                           "convert it with onnx.version_converter")


def test_no_default_opset(tmp_path):
    model = tiny_onnx()
    model.opset_import[0].domain = "com.example"
    p = tmp_path / "m.onnx"
    onnx.save_model(model, str(p))
    assert rejected(p) == f"{p}: not a valid ONNX model: No opset import for domain ''"


def test_input_specs_must_name_a_model_input(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save_model(tiny_onnx("batch"), str(p))
    assert rejected(p, {"image": {"shape": [1, 8]}}) == (
        f"{p}: model.input_specs.image: the model has no input 'image' (inputs: x)")
    assert rejected(p, {"x": {"shape": [1, 9]}}) == (
        f"{p}: model.input_specs.x: shape [1, 9] does not fit the model's input shape ['batch', 8]")
    assert rejected(p, {"x": {"shape": [8]}}) == (
        f"{p}: model.input_specs.x: shape [8] does not fit the model's input shape ['batch', 8]")


def test_external_two_data_files(tmp_path):
    d = external_dir(tmp_path, data_files=("model.data", "extra.data"))
    assert rejected(d) == (f"{d}: expected exactly one .onnx and one .data file (no others, no symlinks), "
                           "found: extra.data, model.data, model.onnx")


def test_external_data_symlink_refused(tmp_path):
    """model.data may not be a symlink: it could point anywhere outside the directory."""
    d = external_dir(tmp_path, data_files=())
    (tmp_path / "outside.data").write_bytes(bytes(128))
    (d / "model.data").symlink_to(tmp_path / "outside.data")
    assert rejected(d) == (f"{d}: expected exactly one .onnx and one .data file (no others, no symlinks), "
                           "found: model.data, model.onnx")


def test_external_data_file_missing(tmp_path):
    d = external_dir(tmp_path, data_files=("weights.data",))
    assert rejected(d) == (f"{d / 'model.onnx'}: references external data file 'model.data', "
                           f"which is missing from {d}")


def test_external_data_only_onnx(tmp_path):
    """A lone .onnx whose weights are elsewhere says which file is missing."""
    d = external_dir(tmp_path, data_files=())
    assert rejected(d) == (f"{d / 'model.onnx'}: references external data file 'model.data', "
                           f"which is missing from {d}")


@pytest.mark.parametrize("location", ["../model.data", "sub/../../model.data", "/etc/model.data",
                                      "C:\\weights\\model.data"])
def test_external_location_escapes(tmp_path, location):
    d = external_dir(tmp_path, location=location)
    assert rejected(d) == (f"{d / 'model.onnx'}: tensor 'W' has external data location {location!r}, which "
                           "leaves the model directory; keep the .data beside the .onnx and reference it "
                           "by file name")


def test_external_references_other_data(tmp_path):
    """The .onnx may reference only the directory's one .data file."""
    d = external_dir(tmp_path, location="model.onnx", data_files=("model.data",))
    assert rejected(d) == f"{d / 'model.onnx'}: references model.onnx; expected only model.data"


def test_external_data_too_short(tmp_path):
    d = external_dir(tmp_path)
    (d / "model.data").write_bytes(bytes(16))
    assert rejected(d) == f"{d / 'model.onnx'}: tensor 'W' reads bytes 0-128 of model.data, which has only 16 bytes"


def test_single_onnx_with_external_weights(tmp_path):
    """A .onnx file passed alone must not depend on a weights file beside it."""
    d = external_dir(tmp_path)
    assert rejected(d / "model.onnx") == (f"{d / 'model.onnx'}: stores weights in external file(s) model.data; "
                                          "pass the directory holding the .onnx and its .data instead")


def test_aimet_unknown_tensor(tmp_path):
    d = aimet_copy(tmp_path)
    enc = json.loads((d / "model.encodings").read_text())
    enc["param_encodings"]["conv9.weight"] = enc["param_encodings"]["W1"]
    (d / "model.encodings").write_text(json.dumps(enc))
    assert rejected(d) == (f"{d / 'model.encodings'}: $.param_encodings: names tensor(s) not in the graph of "
                           "model.onnx: 'conv9.weight'; re-export the encodings with the model")


def test_aimet_malformed_json(tmp_path):
    d = aimet_copy(tmp_path)
    (d / "model.encodings").write_text('{"activation_encodings": {')
    assert rejected(d) == (f"{d / 'model.encodings'}: malformed encodings JSON: "
                           "Expecting property name enclosed in double quotes: line 1 column 27 (char 26)")


def test_aimet_not_encodings(tmp_path):
    d = aimet_copy(tmp_path)
    (d / "model.encodings").write_text("[1, 2, 3]")
    assert rejected(d) == (f"{d / 'model.encodings'}: not AIMET encodings: expected an object with "
                           "activation_encodings and/or param_encodings")


def test_aimet_missing_encodings(tmp_path):
    d = aimet_copy(tmp_path)
    (d / "model.encodings").unlink()
    assert rejected(d) == f"{d}: expected exactly one .onnx and one .encodings file, found 0 .encodings (model.onnx)"


def test_torchscript_without_input_specs():
    p = PROBE / "torch" / "tiny_model.pt"
    assert rejected(p) == (f"{p}: a TorchScript model does not record its input shapes; add model.input_specs "
                           "to the pipeline, e.g. input_specs: {x: {shape: [1, 3, 224, 224], dtype: float32}}")


def test_torch_save_zip_is_not_torchscript(tmp_path):
    """A torch.save() archive (data.pkl, no code/ or constants.pkl) named .pt is refused."""
    p = tmp_path / "weights.pt"
    with zipfile.ZipFile(p, "w") as zf:
        for name, data in (("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/data/0", bytes(16)),
                           ("archive/version", b"3\n"), ("archive/byteorder", b"little")):
            zf.writestr(name, data)
    assert rejected(p, {"x": {"shape": [1, 8]}}) == (
        f"{p}: not a TorchScript archive (no code/, constants.pkl and data.pkl entries); save the model with "
        "torch.jit.save(torch.jit.script(model), path), not torch.save")


def test_pt_that_is_not_a_zip(tmp_path):
    p = tmp_path / "model.pth"
    p.write_bytes(b"\x80\x02ctorch\n")  # a legacy pickle
    assert rejected(p, {"x": {"shape": [1, 8]}}) == (
        f"{p}: not a TorchScript archive (not a zip file); save the model with "
        "torch.jit.save(torch.jit.script(model), path)")


def test_tflite_wrong_identifier(tmp_path):
    p = tmp_path / "model.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL2" + bytes(24))
    assert rejected(p) == (f"{p}: not a TFLite model: bytes 4-8 are b'TFL2', expected b'TFL3' "
                           "(the flatbuffer file identifier)")


# --- size limit ------------------------------------------------------------------------------------


def test_size_limit_checked_before_parsing(tmp_path):
    """Over max_bytes is LIMIT_EXCEEDED naming the size and the limit, even for a corrupt file."""
    p = tmp_path / "model.onnx"
    p.write_bytes(b"x" * 2048)
    with pytest.raises(LimitExceeded) as info:
        validate_model(p, max_bytes=1024)
    assert info.value.message == f"{p}: model is 0.0 MB (2048 bytes), over the limit of 0.0 MB (1024 bytes)"
    assert (info.value.code, info.value.exit_code) == ("LIMIT_EXCEEDED", ExitCode.INVALID_INPUT)


def test_size_limit_sums_directory_files(tmp_path):
    d = Path(shutil.copytree(PROBE / "onnx_external", tmp_path / "ext"))
    total = sum(f.stat().st_size for f in d.iterdir())
    with pytest.raises(LimitExceeded) as info:
        validate_model(d, max_bytes=total - 1)
    assert f"({total} bytes), over the limit" in info.value.message
    assert validate_model(d, max_bytes=total).total_bytes == total  # the limit itself is allowed


def test_sparse_501_mb_model_refused(tmp_path):
    """A 501 MB sparse file (no disk used) exceeds the default 500 MB limit."""
    p = tmp_path / "big.onnx"
    with p.open("wb") as f:
        f.truncate(501 * 1024 * 1024)
    with pytest.raises(LimitExceeded) as info:
        validate_model(p)
    assert MAX_MODEL_BYTES == 524288000
    assert info.value.message == (f"{p}: model is 501.0 MB (525336576 bytes), over the limit of 500.0 MB "
                                  "(524288000 bytes)")


GENAI = Path(__file__).resolve().parent.parent / "probe_models" / "genai_tiny"


def test_genai_folder_is_accepted_by_its_config():
    info = validate_model(GENAI)
    assert (info.form, info.context_length) == ("genai", 512)
    assert info.onnx_path == str((GENAI / "model.onnx").resolve())


def test_genai_folder_rejections(tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(GENAI, folder)
    cfg = folder / "genai_config.json"
    (folder / "model.onnx").unlink()
    assert rejected(folder) == f"{cfg}: $.model.decoder.filename: model.onnx is missing from {folder}"
    text = cfg.read_text()
    cfg.write_text(text.replace('"filename": "model.onnx"', '"filename": "../escape.onnx"'))
    assert rejected(folder) == f"{cfg}: $.model.decoder.filename: '../escape.onnx' leaves the model folder"
    cfg.write_text("{not json")
    assert rejected(folder) == f"{cfg}: line 1: malformed JSON: Expecting property name enclosed in double quotes"
