"""Regenerate the probe fixtures in probe_models/ (small, deterministic models of each packaged form).

    probe_models/torch/tiny_model.pt           TorchScript of a tiny conv + linear net, input x [1, 8]
    probe_models/onnx_external/model.onnx      an MLP x [1, 8] -> y [1, 4] whose weights live in ...
    probe_models/onnx_external/model.data      ... this external data file
    probe_models/aimet_quant.aimet/model.onnx  an MLP x [1, 8] -> y [1, 4], float, as AIMET exports it
    probe_models/aimet_quant.aimet/model.encodings  AIMET (format 0.6.1) encodings computed from it

torch is not an EdgeGate dependency, so run this in a throwaway venv (the CPU build of torch 2.13.0;
plain `torch` would pull a multi-GB CUDA build):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 onnx numpy
    /tmp/torchenv/bin/python scripts/make_probe_models.py [--out probe_models]

Seeds and producer names are fixed, so re-running gives identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240601
PRODUCER = ("edgegate-probe-models", "1")


def mlp(rng: np.random.Generator, hidden: int = 32):
    """x [1, 8] -> Gemm -> Relu -> Gemm -> y [1, 4], opset 17."""
    weights = {"W1": rng.standard_normal((8, hidden)).astype(np.float32) * 0.3,
               "b1": rng.standard_normal(hidden).astype(np.float32) * 0.1,
               "W2": rng.standard_normal((hidden, 4)).astype(np.float32) * 0.3,
               "b2": rng.standard_normal(4).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["h1_relu"], name="relu1"),
             helper.make_node("Gemm", ["h1_relu", "W2", "b2"], ["y"], name="fc2")]
    graph = helper.make_graph(nodes, "probe_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(w, name) for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name=PRODUCER[0], producer_version=PRODUCER[1])
    onnx.checker.check_model(model)
    return model, weights


def write_external(out: Path) -> None:
    """Every initializer goes to model.data, written by hand so offsets are fixed (no append mode)."""
    out.mkdir(parents=True, exist_ok=True)
    model, _ = mlp(np.random.default_rng(SEED))
    blob = bytearray()
    for t in model.graph.initializer:
        raw = numpy_helper.to_array(t).tobytes()
        onnx.external_data_helper.set_external_data(t, "model.data", offset=len(blob), length=len(raw))
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("float_data")
        t.ClearField("raw_data")
        blob += raw
    (out / "model.data").write_bytes(bytes(blob))
    onnx.save_model(model, str(out / "model.onnx"))
    onnx.checker.check_model(str(out / "model.onnx"))


def encoding(lo: float, hi: float, *, symmetric: bool) -> dict:
    """One 8-bit AIMET encoding: symmetric int8 for weights, asymmetric uint8 for activations."""
    if symmetric:
        scale = max(abs(lo), abs(hi)) / 127 or 1e-8
        offset = -128
    else:
        lo, hi = min(lo, 0.0), max(hi, 0.0)  # the grid must contain zero exactly
        scale = (hi - lo) / 255 or 1e-8
        offset = int(round(lo / scale))
    return {"bitwidth": 8, "dtype": "int", "is_symmetric": str(symmetric),
            "max": float(np.float32(scale * (255 + offset))), "min": float(np.float32(scale * offset)),
            "offset": offset, "scale": float(np.float32(scale))}


def write_aimet(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model, w = mlp(np.random.default_rng(SEED + 1))
    onnx.save_model(model, str(out / "model.onnx"))
    # Activation ranges from a fixed calibration batch, as AIMET's compute_encodings does.
    x = np.random.default_rng(SEED + 2).standard_normal((64, 8)).astype(np.float32)
    h1 = x @ w["W1"] + w["b1"]
    acts = {"x": x, "h1": h1, "h1_relu": np.maximum(h1, 0), "y": np.maximum(h1, 0) @ w["W2"] + w["b2"]}
    doc = {"version": "0.6.1",
           "activation_encodings": {k: [encoding(float(v.min()), float(v.max()), symmetric=False)]
                                    for k, v in acts.items()},
           "param_encodings": {k: [encoding(float(w[k].min()), float(w[k].max()), symmetric=True)]
                               for k in ("W1", "W2")},
           "excluded_layers": [], "quantizer_args": {"activation_bitwidth": 8, "param_bitwidth": 8,
                                                     "dtype": "int", "per_channel_quantization": False,
                                                     "quant_scheme": "post_training_tf"}}
    (out / "model.encodings").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_torchscript(out: Path) -> None:
    import torch

    torch.manual_seed(SEED)

    class TinyNet(torch.nn.Module):
        """x [1, 8] -> Conv1d(1->4, k3) -> ReLU -> Linear(32->4)."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 4, kernel_size=3, padding=1)
            self.fc = torch.nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x.unsqueeze(1)))
            return self.fc(h.flatten(1))

    out.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(TinyNet().eval())
    scripted(torch.zeros(1, 8))  # fail here, not at probe time, if the net is wrong
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    (out / "tiny_model.pt").write_bytes(normalize_torchscript(buf.getvalue()))
    torch.jit.load(str(out / "tiny_model.pt"))(torch.zeros(1, 8))  # still loads after normalizing


def normalize_torchscript(raw: bytes) -> bytes:
    """Make torch.jit.save output reproducible: drop the *.debug_pkl entries (they embed this script's
    absolute path) and replace the random .data/serialization_id with a digest of the content.
    Records stay 64-byte aligned, padded with an extra field the way PyTorch's own writer does."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        entries = [(i.filename, zin.read(i)) for i in zin.infolist() if not i.filename.endswith(".debug_pkl")]
        digest = hashlib.sha256(b"".join(n.encode() + d for n, d in entries
                                         if not n.endswith("serialization_id"))).hexdigest()
        for name, data in entries:
            if name.endswith(".data/serialization_id"):
                data = str(int(digest, 16))[:len(data)].encode()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            pad = -(out.tell() + 30 + len(name.encode()) + 4) % 64
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zout.writestr(info, data)
    return out.getvalue()


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # TorchScript writes a module's constants in set order, which follows string hashing.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "probe_models")
    args = parser.parse_args()
    write_external(args.out / "onnx_external")
    write_aimet(args.out / "aimet_quant.aimet")
    write_torchscript(args.out / "torch")
    for f in sorted(args.out.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(args.out)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
