"""Write the quickstart models: a small real-shaped CNN, and a slower variant for regression demos.

    image float32 [1, 3, 64, 64] -> Conv3x3(16)+Relu -> Conv3x3/2(32)+Relu -> Conv3x3/2(64)+Relu
        -> GlobalAveragePool -> Flatten -> Gemm(10) -> logits [1, 10]          (opset 17, IR 8)

The heavy variant inserts HEAVY_LAYERS extra Conv3x3(32)+Relu layers at 32x32, so it computes the
same kind of answer several times more slowly: a "truly slower candidate" for relative gates.

    .venv/bin/python scripts/make_quickstart_model.py [--out examples/quickstart/model.onnx]
                                                      [--heavy examples/quickstart/model_heavy.onnx]

Both models are checked with onnxruntime (they load and run) and timed; the heavy one must be slower.
Weights come from a fixed seed, so re-running gives identical bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 7
HEAVY_LAYERS = 8
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


def conv(rng, nodes, inits, x: str, name: str, cin: int, cout: int, stride: int = 1) -> str:
    """Conv3x3 (same padding) + Relu with He-initialised weights; returns the output name."""
    w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}.weight"),
              numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.bias")]
    nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}.out"], name=name,
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]))
    nodes.append(helper.make_node("Relu", [f"{name}.out"], [f"{name}.relu"], name=f"{name}.act"))
    return f"{name}.relu"


def build(heavy: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(SEED)
    nodes: list = []
    inits: list = []
    x = conv(rng, nodes, inits, "image", "conv1", 3, 16)
    x = conv(rng, nodes, inits, x, "conv2", 16, 32, stride=2)
    # Extra layers draw from their own generator so the base weights are the same in both models.
    extra_rng = np.random.default_rng(SEED + 1)
    for i in range(HEAVY_LAYERS if heavy else 0):
        x = conv(extra_rng, nodes, inits, x, f"heavy{i + 1}", 32, 32)
    x = conv(rng, nodes, inits, x, "conv3", 32, 64, stride=2)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1))
    w = (rng.standard_normal((10, 64)) * np.sqrt(1.0 / 64)).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "quickstart_cnn_heavy" if heavy else "quickstart_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    # IR 8 is what opset 17 shipped with; every onnxruntime since 1.13 loads it.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="edgegate-quickstart", producer_version="1")
    onnx.checker.check_model(model, full_check=True)
    return model


def time_model(path: Path, iterations: int = 50) -> float:
    """Median milliseconds per inference on one CPU thread (after a warm-up)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    (logits,) = session.run(None, {"image": image})
    assert logits.shape == (1, 10) and np.isfinite(logits).all(), f"{path}: bad output {logits}"
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        session.run(None, {"image": image})
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=QUICKSTART / "model.onnx")
    parser.add_argument("--heavy", type=Path, metavar="OUT", default=None,
                        help="also write the heavy variant to OUT")
    args = parser.parse_args()
    onnx.save_model(build(heavy=False), str(args.out))
    base_ms = time_model(args.out)
    print(f"{args.out}: {args.out.stat().st_size} bytes, median {base_ms:.3f} ms")
    if args.heavy:
        onnx.save_model(build(heavy=True), str(args.heavy))
        heavy_ms = time_model(args.heavy)
        print(f"{args.heavy}: {args.heavy.stat().st_size} bytes, median {heavy_ms:.3f} ms "
              f"({heavy_ms / base_ms:.1f}x)")
        if heavy_ms < base_ms * 1.5:
            print("error: the heavy model is not measurably slower", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
