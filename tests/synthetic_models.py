"""Small ONNX models whose cost the test chooses: a chain of `blocks` MatMul + Relu layers on x [rows, width].

Every block does the same work (rows x width x width multiply-adds), so a chain of 6 blocks costs about 1.5x one
of 4: a real "50 % slower" model for relative-gate tests, with no timing assumed beyond proportionality.
"""

from __future__ import annotations

from pathlib import Path


def matmul_chain(path: Path, blocks: int, *, rows: int = 16, width: int = 256, seed: int = 0) -> Path:
    """Write the model to `path` (input `x` float32 [rows, width], output `y`); return `path`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights, last = [], [], "x"
    for i in range(blocks):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"W{i}"))
        nodes += [helper.make_node("MatMul", [last, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}" if i < blocks - 1 else "y"])]
        last = f"r{i}"
    graph = helper.make_graph(nodes, f"chain{blocks}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, width])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="edgegate-tests")
    onnx.save(model, str(path))
    return path
