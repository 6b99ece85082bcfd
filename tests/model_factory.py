"""Small real ONNX models for input-handling tests, built with onnx.helper (opset 17, IR 8)."""

from __future__ import annotations

from pathlib import Path


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def detector_like(path: Path) -> Path:
    """Input `image` [N, 3, H, W] (dynamic batch, height and width), like PP-OCRv4's detector; output the
    per-channel mean [N, 3]."""
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    out = helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3])
    node = helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0)
    return _save(helper.make_graph([node], "detector_like", [image], [out]), path)


def vad_like(path: Path) -> Path:
    """Silero-VAD-like: `input` float [1, S] (dynamic samples), `state` float [2, 1, 128] and `sr` int64
    scalar (the sample rate); output `out` = sum(input) * sr and `stateN` = state."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "S"]),
              helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 128]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, []),
               helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, 1, 128])]
    nodes = [helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
             helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["total", "srf"], ["out"]),
             helper.make_node("Identity", ["state"], ["stateN"])]
    return _save(helper.make_graph(nodes, "vad_like", inputs, outputs), path)


def fails_at_run_time(path: Path) -> Path:
    """A valid graph whose Reshape cannot apply to its input: loads fine, every inference fails."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [7])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    return _save(helper.make_graph([node], "fails_at_run_time", [x], [y], initializer=[shape]), path)
