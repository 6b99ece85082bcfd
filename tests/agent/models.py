"""Small ONNX models for the agent tests, built with the `onnx` helper API (the test side may use onnx;
the agent may not). Deterministic: the same arguments give the same bytes."""

from __future__ import annotations

import io

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER = ("edgegate-agent-tests", "1")


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "agent_test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name=PRODUCER[0], producer_version=PRODUCER[1])
    onnx.checker.check_model(model)
    return model


def linear(seed: int, *, width: int = 8, hidden: int = 16) -> onnx.ModelProto:
    """x [1, width] -> Gemm -> Relu -> Gemm -> y [1, 4]; the seed picks the weights (so versions differ)."""
    rng = np.random.default_rng(seed)
    weights = {"W1": rng.standard_normal((width, hidden)).astype(np.float32) * 0.3,
               "b1": rng.standard_normal(hidden).astype(np.float32) * 0.1,
               "W2": rng.standard_normal((hidden, 4)).astype(np.float32) * 0.3,
               "b2": rng.standard_normal(4).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "W2", "b2"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                  [numpy_helper.from_array(w, name) for name, w in weights.items()])


def linear_bytes(seed: int, **kwargs) -> bytes:
    return linear(seed, **kwargs).SerializeToString()


def big_bytes(seed: int, megabytes: float = 10.0) -> bytes:
    """A linear model of about `megabytes` MB (10^6 bytes) of float32 weights; x is [1, 64]."""
    hidden = int(megabytes * 1e6 / 4 / (64 + 1 + 4))  # W1 column, b1 entry and W2 row per hidden unit
    return linear_bytes(seed, width=64, hidden=hidden)


def fails_at_run_bytes() -> bytes:
    """Loads, but every inference fails: x [1, 8] is reshaped to [3, 5] (15 elements, not 8)."""
    shape = numpy_helper.from_array(np.array([3, 5], dtype=np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])], [shape]).SerializeToString()


def external_data_files(seed: int) -> dict[str, bytes]:
    """The `linear` model with its weights in model.data (the onnx_external form): {path: bytes}."""
    model = linear(seed)
    blob = bytearray()
    for tensor in model.graph.initializer:
        raw = numpy_helper.to_array(tensor).tobytes()
        onnx.external_data_helper.set_external_data(tensor, "model.data", offset=len(blob), length=len(raw))
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        blob += raw
    return {"model.onnx": model.SerializeToString(), "model.data": bytes(blob)}


def run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """What ONNX Runtime computes for `x` (the expected output of a version)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def npz_bytes(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


X = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8)


def slow_bytes(seed: int, iterations: int = 4000) -> bytes:
    """The `linear` model, then a Loop spinning `iterations` times on a 4x4 MatMul + Tanh whose result is
    multiplied by 0: the same outputs' shape, several ms per inference on one thread (a slowed release)."""
    base = linear(seed)
    spin = np.random.default_rng(seed).standard_normal((4, 4)).astype(np.float32) * 0.3
    body = helper.make_graph(
        [helper.make_node("MatMul", ["v_in", "Wl"], ["m"]), helper.make_node("Tanh", ["m"], ["v_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "spin", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 4])])
    nodes = list(base.graph.node)
    nodes[-1].output[0] = "y0"
    nodes += [helper.make_node("Loop", ["M", "keep_going", "y0"], ["spun"], body=body),
              helper.make_node("Mul", ["spun", "zero"], ["z"]), helper.make_node("Add", ["y0", "z"], ["y"])]
    initializers = [*base.graph.initializer, numpy_helper.from_array(np.array(iterations, dtype=np.int64), "M"),
                    numpy_helper.from_array(np.array(True), "keep_going"), numpy_helper.from_array(spin, "Wl"),
                    numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    return _model(nodes, list(base.graph.input), list(base.graph.output), initializers).SerializeToString()
