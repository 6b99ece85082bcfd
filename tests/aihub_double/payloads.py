"""What the double says about models and jobs: model inspection, ProfileDetail synthesis, outputs.

Everything here is deterministic given its inputs (profile numbers are seeded by the job id), and every
protobuf is built with the SDK's own `qai_hub.public_api_pb2` classes.

Shapes follow `reference/aihub/data/sdk_0.56.0_ProfileDetail_fixture.pb.json` (ProfileDetail v1.8):
times in microseconds (int), memory in bytes (int), `all_execution_times` holding one sample per profiler
iteration, `execution_memory.peak` a (lower, upper) bracket, one `LayerDetail` per layer with its compute
unit. The magnitudes are calibrated on `perf_mobilenet_v2.v0.46.1.yaml` (MobileNet-v2 ~0.6 ms on a
Galaxy S24) but are a simulation: nothing here claims to predict a real device.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from qai_hub import public_api_pb2 as pb
from qai_hub.util.dataset_entries_converters import dataset_entries_to_h5, h5_to_dataset_entries

from .devices import DeviceSpec

MiB = 1024 * 1024
QAIRT_VERSION = "2.42.0.251225135753_193295"  # as in perf_mobilenet_v2.v0.46.1.yaml tool_versions
QAIRT_ONNX_VERSION = "2.37.1.250807093845_124904"
TFLITE_VERSION = "2.17.0"
ORT_VERSION = "1.23.0"
DEFAULT_ITERATIONS = 100  # SDK 0.56 docstring: default max_profiler_iterations

_ONNX_DTYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 3: "int8", 2: "uint8", 5: "int16",
                4: "uint16", 9: "bool", 11: "float32"}
_PB_DTYPES = {
    "float32": pb.TENSOR_DTYPE_FLOAT32, "float16": pb.TENSOR_DTYPE_FLOAT16, "int32": pb.TENSOR_DTYPE_INT32,
    "int64": pb.TENSOR_DTYPE_INT64, "int8": pb.TENSOR_DTYPE_INT8, "uint8": pb.TENSOR_DTYPE_UINT8,
    "int16": pb.TENSOR_DTYPE_INT16, "uint16": pb.TENSOR_DTYPE_UINT16, "bool": pb.TENSOR_DTYPE_BOOL,
}
# ONNX op -> TFLite builtin name, for layer_type_name on tflite targets.
_TFLITE_OPS = {
    "Conv": "CONV_2D", "Gemm": "FULLY_CONNECTED", "MatMul": "FULLY_CONNECTED", "Relu": "RELU",
    "Add": "ADD", "Mul": "MUL", "Sub": "SUB", "Div": "DIV", "Softmax": "SOFTMAX", "MaxPool": "MAX_POOL_2D",
    "AveragePool": "AVERAGE_POOL_2D", "GlobalAveragePool": "MEAN", "Reshape": "RESHAPE",
    "Transpose": "TRANSPOSE", "Concat": "CONCATENATION", "Sigmoid": "LOGISTIC", "Tanh": "TANH",
    "Clip": "RELU6", "Flatten": "RESHAPE", "Pad": "PAD", "Resize": "RESIZE_BILINEAR",
}
_LAYER_WEIGHT = {"Conv": 6.0, "ConvTranspose": 6.0, "Gemm": 4.0, "MatMul": 4.0, "Attention": 8.0}

# --target_runtime -> (model type, file extension, served as a zipped directory)
TARGET_RUNTIMES: dict[str, tuple[int, str]] = {
    "tflite": (pb.MODEL_TYPE_TFLITE, ".tflite"),
    "qnn_dlc": (pb.MODEL_TYPE_QNN_DLC, ".dlc"),
    "qnn_context_binary": (pb.MODEL_TYPE_QNN_CONTEXT_BINARY, ".bin"),
    "onnx": (pb.MODEL_TYPE_ONNX, ".onnx"),
    "precompiled_qnn_onnx": (pb.MODEL_TYPE_ONNX, ".onnx.zip"),
    "qnn_lib_aarch64_android": (pb.MODEL_TYPE_QNN_LIB_AARCH64_ANDROID, ".so"),
}
DEFAULT_TARGET_RUNTIME = "tflite"
_RUNTIME_OF_TYPE = {pb.MODEL_TYPE_TFLITE: "tflite", pb.MODEL_TYPE_QNN_DLC: "qnn_dlc",
                    pb.MODEL_TYPE_QNN_CONTEXT_BINARY: "qnn_context_binary", pb.MODEL_TYPE_ONNX: "onnx"}
_RUNTIME_SPEED = {"tflite": 1.0, "qnn_dlc": 0.97, "qnn_context_binary": 0.93, "onnx": 1.15}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # a dtype name the SDK accepts (api_utils._STR_TO_TETRA_TYPE)


@dataclass
class ModelInfo:
    """What the double learns from an uploaded ONNX model (single file or zipped directory)."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    nodes: list[tuple[str, str]]  # (name, op_type)
    params: int
    onnx_bytes: bytes  # the .onnx member (graph only when the weights are external)
    archive: bytes | None = None  # the whole zip when the model is a directory

    @property
    def input_elements(self) -> int:
        return sum(math.prod(t.shape) for t in self.inputs)


def _tensor_info(value_info) -> TensorInfo:
    ttype = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.dim_value > 0 else 1 for d in ttype.shape.dim)
    return TensorInfo(value_info.name, shape, _ONNX_DTYPES.get(ttype.elem_type, "float32"))


def inspect_model(data: bytes, is_directory: bool) -> ModelInfo | None:
    """Parse an uploaded ONNX model; None when it is not ONNX (tflite, dlc, bin ...) or does not parse."""
    import onnx

    archive = None
    onnx_bytes = data
    if is_directory:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [n for n in zf.namelist() if n.endswith(".onnx")]
                if len(members) != 1:
                    return None
                onnx_bytes = zf.read(members[0])
        except zipfile.BadZipFile:
            return None
        archive = data
    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception:  # noqa: BLE001 - anything unparsable is simply "not ONNX"
        return None
    graph = model.graph
    if not graph.node and not graph.output:
        return None
    initializers = {i.name for i in graph.initializer}
    return ModelInfo(
        inputs=[_tensor_info(v) for v in graph.input if v.name not in initializers],
        outputs=[_tensor_info(v) for v in graph.output],
        nodes=[(n.name or f"/{n.op_type}_{i}", n.op_type) for i, n in enumerate(graph.node)],
        params=sum(math.prod(i.dims) for i in graph.initializer),
        onnx_bytes=onnx_bytes,
        archive=archive,
    )


def tensor_type_list(tensors: list[TensorInfo]) -> pb.NamedTensorTypeList:
    return pb.NamedTensorTypeList(types=[
        pb.NamedTensorType(name=t.name, tensor_type=pb.TensorType(shape=list(t.shape), dtype=_PB_DTYPES[t.dtype]))
        for t in tensors])


def runtime_of(model_type: int) -> str:
    return _RUNTIME_OF_TYPE.get(model_type, "tflite")


# --------------------------------------------------------------------------------------------------
# Compiled target models
# --------------------------------------------------------------------------------------------------

def target_model_bytes(runtime: str, source: bytes, source_is_directory: bool) -> tuple[bytes, bool]:
    """The bytes served as the compiled model, and whether they are a zipped directory.

    ONNX targets are the source ONNX itself (a real, runnable model). The others are placeholders
    that carry the right file magic where there is one (`TFL3` at offset 4 for TFLite) and say what they
    are: the double cannot compile.
    """
    if runtime == "onnx":
        return source, source_is_directory
    note = (b"EdgeGate AI Hub protocol double: placeholder " + runtime.encode()
            + b" compiled from sha256 " + hashlib.sha256(source).hexdigest().encode())
    if runtime == "tflite":
        return struct.pack("<I", 28) + b"TFL3" + b"\0" * 20 + note, False
    if runtime == "precompiled_qnn_onnx":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("model.onnx/model.onnx", source if not source_is_directory else b"")
            zf.writestr("model.onnx/model.bin", note)
        return buf.getvalue(), True
    return note, False


# --------------------------------------------------------------------------------------------------
# Profile synthesis
# --------------------------------------------------------------------------------------------------

@dataclass
class ProfileKnobs:
    """Per-device (or global) knobs for the simulated measurements. None means "derive from the model"."""

    median_us: float | None = None  # median of all_inference_times
    cv: float = 0.03  # spread of one job's iterations (lognormal sigma ~ coefficient of variation)
    job_jitter: float = 0.01  # job-to-job spread of the median (different "runs" of the same model)
    outlier_rate: float = 0.02  # share of iterations hit by a 10-60 % slowdown (scheduler noise)
    npu_fraction: float | None = None  # share of layers placed on the NPU (default: all, if the device has one)
    peak_memory_bytes: int | None = None  # upper end of inference_memory_peak_range
    load_time_us: int | None = None  # first (cold) load time
    # Payload shapes the live service also sends (issue 17):
    major_version: int = 1  # != 1: the legacy ProfileDetail (load_time, peak_memory_usage; no ranges, no all_*)
    minor_version: int = 8  # < 2: no all_*_times (so no per-iteration latency); < 1: no memory ranges either
    layers: bool = True  # False: profiling on, but no layer_details (execution_detail == [])
    detail: bool = True  # False: the job's result carries no ProfileDetail (download_profile() returns {})
    samples: int | None = None  # iterations actually timed, whatever was requested
    memory_model: str = "size"  # "size": grows with the model; "device": what AI Hub reports per device class
    member_spread: float = 0.0  # "(Family)" devices: relative speed difference between the physical members


@dataclass
class ProfileRequest:
    seed: str
    device: DeviceSpec
    info: ModelInfo | None
    model_bytes: int
    runtime: str
    compute_unit: str | None
    iterations: int
    knobs: ProfileKnobs
    profiling: bool = True
    speed: float = 1.0  # the physical member's factor when the device is a "(Family)" name
    qairt_version: str = QAIRT_VERSION


def rng_for(seed: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))


def base_latency_us(info: ModelInfo | None, model_bytes: int) -> float:
    """Median on a Snapdragon 8 Gen 3 NPU, from model size (params, nodes, input size)."""
    if info is None:
        return 60.0 + model_bytes / 4 * 7e-5 + 3.0 * 40
    return 60.0 + 3.0 * len(info.nodes) + info.params * 7e-5 + info.input_elements * 2e-4


def _units(req: ProfileRequest, n_layers: int) -> list[int]:
    cu = (req.compute_unit or "").lower()
    if cu == "cpu":
        return [pb.COMPUTE_UNIT_CPU] * n_layers
    if cu == "gpu" or not req.device.has_npu:
        fallback = pb.COMPUTE_UNIT_GPU if req.runtime == "tflite" or cu == "gpu" else pb.COMPUTE_UNIT_CPU
        return [fallback] * n_layers
    fraction = 1.0 if req.knobs.npu_fraction is None else min(max(req.knobs.npu_fraction, 0.0), 1.0)
    on_npu = round(fraction * n_layers)
    return [pb.COMPUTE_UNIT_NPU] * on_npu + [pb.COMPUTE_UNIT_CPU] * (n_layers - on_npu)


def _median_us(req: ProfileRequest) -> float:
    if req.knobs.median_us is not None:
        return float(req.knobs.median_us)
    cu = (req.compute_unit or "").lower()
    factor = {"cpu": 9.0, "gpu": 2.5}.get(cu, 1.0)
    if not req.device.has_npu:
        factor = max(factor, 2.0)
    npu_fraction = 1.0 if req.knobs.npu_fraction is None else req.knobs.npu_fraction
    factor *= 1.0 + 8.0 * (1.0 - min(max(npu_fraction, 0.0), 1.0))  # CPU fallback is slow
    return (base_latency_us(req.info, req.model_bytes) * req.device.speed_factor
            * _RUNTIME_SPEED.get(req.runtime, 1.0) * factor)


def inference_samples(req: ProfileRequest, rng: np.random.Generator) -> list[int]:
    """One time per profiler iteration: lognormal around the job's median, plus rare slow outliers."""
    job_median = _median_us(req) * math.exp(rng.normal(0.0, req.knobs.job_jitter)) * req.speed
    sigma = max(req.knobs.cv, 0.0)
    count = req.iterations if req.knobs.samples is None else req.knobs.samples
    samples = job_median * np.exp(rng.normal(0.0, sigma, size=max(count, 0)))
    outliers = rng.random(samples.size) < req.knobs.outlier_rate
    samples[outliers] *= rng.uniform(1.1, 1.6, size=int(outliers.sum()))
    return [max(int(round(s)), 1) for s in samples]


def _layer_details(req: ProfileRequest, median: float, rng: np.random.Generator) -> list[pb.LayerDetail]:
    nodes = req.info.nodes if req.info is not None and req.info.nodes else [
        (f"/layer_{i}", "Conv" if i % 3 == 0 else "Relu") for i in range(24)]
    units = _units(req, len(nodes))
    weights = np.array([_LAYER_WEIGHT.get(op, 1.0) for _, op in nodes]) * rng.uniform(0.7, 1.3, len(nodes))
    times = weights / weights.sum() * median
    layers = []
    segment = 0
    for i, ((name, op), unit, t) in enumerate(zip(nodes, units, times, strict=True)):
        if i and unit != units[i - 1]:
            segment += 1
        layer = pb.LayerDetail(
            name=name, compute_unit=unit, id=f":0:{i + 1}", segment_id=f":0:{segment}",
            layer_type_name=_TFLITE_OPS.get(op, op.upper()) if req.runtime == "tflite" else op,
            execution_time=max(int(round(t)), 1))
        if unit == pb.COMPUTE_UNIT_NPU:
            layer.delegate_name, layer.delegate_extra_info = "QNN", "HTP"
            layer.execution_cycles = int(t * 1420)  # ~1.42 cycles/ns, as in the SDK fixture
        elif unit == pb.COMPUTE_UNIT_GPU:
            layer.delegate_name = "GPU" if req.runtime == "tflite" else "QNN"
        else:
            layer.delegate_name = "XNNPACK" if req.runtime == "tflite" else "CPU"
        layers.append(layer)
    return layers


def _memory(req: ProfileRequest, rng: np.random.Generator) -> dict:
    mb = req.model_bytes
    act = 4 * (req.info.input_elements + sum(math.prod(t.shape) for t in req.info.outputs)) if req.info else 0
    jitter = float(math.exp(rng.normal(0.0, 0.02)))
    upper = req.knobs.peak_memory_bytes or int((4 * MiB + 1.6 * mb + 6 * act) * jitter)
    if req.knobs.memory_model == "device" and req.knobs.peak_memory_bytes is None:
        from .devices import SMALL_MEMORY_CHIPSETS

        low_high = (0, 3) if req.device.chipset in SMALL_MEMORY_CHIPSETS else (327, 362)
        upper = int(rng.uniform(*low_high) * MiB)
    lower = int(upper * rng.uniform(0.04, 0.09))
    cold_peak = (int(0.9 * mb + 20 * MiB), int(1.0 * mb + 26 * MiB))
    return {
        "execution": pb.ProfileDetail.MemoryUsage(increase=pb.Range(lower=0, upper=lower),
                                                  peak=pb.Range(lower=lower, upper=upper)),
        "cold": pb.ProfileDetail.MemoryUsage(
            increase=pb.Range(lower=int(0.7 * mb + 12 * MiB), upper=int(0.8 * mb + 16 * MiB)),
            peak=pb.Range(lower=cold_peak[0], upper=cold_peak[1])),
        "warm": pb.ProfileDetail.MemoryUsage(
            increase=pb.Range(), peak=pb.Range(lower=118784, upper=int(0.5 * mb + 8 * MiB))),
        "after_cold": 60 * MiB + cold_peak[1],
        "after_exec": max(60 * MiB + cold_peak[1], 60 * MiB + upper),
    }


def tool_versions(runtime: str, qairt_version: str = QAIRT_VERSION) -> list[pb.ToolVersion]:
    if runtime == "onnx":
        return [pb.ToolVersion(name="qairt", version=QAIRT_ONNX_VERSION),
                pb.ToolVersion(name="onnx_runtime", version=ORT_VERSION)]
    tools = [pb.ToolVersion(name="qairt", version=qairt_version)]
    if runtime == "tflite":
        tools.append(pb.ToolVersion(name="tflite", version=TFLITE_VERSION))
    return tools


def synth_profile(req: ProfileRequest) -> pb.ProfileDetail:
    """A ProfileDetail (major 1, minor 8 unless the knobs say otherwise) for one inference job."""
    rng = rng_for(req.seed)
    samples = inference_samples(req, rng)
    median = float(np.median(samples)) if samples else _median_us(req)
    mem = _memory(req, rng)
    cold = req.knobs.load_time_us or int((180_000 + req.model_bytes * 0.012) * math.sqrt(req.device.speed_factor)
                                         * math.exp(rng.normal(0.0, 0.05)))
    warm = int(cold * rng.uniform(0.15, 0.25))
    detail = pb.ProfileDetail(
        major_version=1, minor_version=8,
        execution_time=min(samples) if samples else int(median),  # the fastest iteration (FINDINGS.md)
        after_execution_peak_memory=mem["after_exec"],
        after_cold_load_peak_memory=mem["after_cold"],
        after_warm_load_peak_memory=mem["after_cold"] - int(rng.integers(1, 4)) * MiB,
        cold_load_time=cold, warm_load_time=warm, compile_time=0,
        compile_memory=pb.ProfileDetail.MemoryUsage(increase=pb.Range(), peak=pb.Range()),
        cold_load_memory=mem["cold"], warm_load_memory=mem["warm"], execution_memory=mem["execution"],
        all_compile_times=[0], all_cold_load_times=[cold], all_warm_load_times=[warm],
        all_execution_times=samples,
        tool_versions=tool_versions(req.runtime, req.qairt_version),
    )
    if req.profiling and req.knobs.layers:
        layers = _layer_details(req, median, rng)
        detail.layer_details.extend(layers)
        detail.segment_details.extend(_segments(layers))
    return _versioned(detail, req.knobs)


def _versioned(detail: pb.ProfileDetail, knobs: ProfileKnobs) -> pb.ProfileDetail:
    """`detail` as an older server sends it: fields a version does not have are left unset."""
    detail.major_version, detail.minor_version = knobs.major_version, knobs.minor_version
    if knobs.major_version != 1:  # the legacy format: one load time, one peak memory figure
        detail.load_time, detail.peak_memory_usage = detail.cold_load_time, detail.after_execution_peak_memory
    if knobs.major_version != 1 or knobs.minor_version < 2:
        for name in ("all_compile_times", "all_cold_load_times", "all_warm_load_times", "all_execution_times"):
            detail.ClearField(name)
    if knobs.major_version != 1 or knobs.minor_version < 1:
        for name in ("compile_memory", "cold_load_memory", "warm_load_memory", "execution_memory"):
            detail.ClearField(name)
    return detail


def _segments(layers: list[pb.LayerDetail]) -> list[pb.SegmentDetail]:
    segments: dict[str, pb.SegmentDetail] = {}
    for layer in layers:
        seg = segments.setdefault(layer.segment_id, pb.SegmentDetail(
            id=layer.segment_id, compute_unit=layer.compute_unit, delegate_name=layer.delegate_name,
            delegate_extra_info=layer.delegate_extra_info, execution_time=0))
        seg.execution_time += layer.execution_time
    return list(segments.values())


# --------------------------------------------------------------------------------------------------
# Datasets and outputs (h5 in the SDK's own layout)
# --------------------------------------------------------------------------------------------------

def h5_bytes(entries: dict[str, list[np.ndarray]]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.h5"
        with h5py.File(path, "w") as h5f:
            dataset_entries_to_h5(entries, h5f)
        return path.read_bytes()


def read_h5(data: bytes) -> dict[str, list[np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.h5"
        path.write_bytes(data)
        with h5py.File(path, "r") as h5f:
            return dict(h5_to_dataset_entries(h5f))


class InputMismatch(Exception):
    """The dataset does not fit the model: the job fails with this message."""


def _session(info: ModelInfo, tmp: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if info.archive is None:
        return ort.InferenceSession(info.onnx_bytes, opts, providers=["CPUExecutionProvider"])
    with zipfile.ZipFile(io.BytesIO(info.archive)) as zf:
        zf.extractall(tmp)
    model_path = next(p for p in Path(tmp).rglob("*.onnx") if p.is_file())
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def compute_outputs(info: ModelInfo | None, inputs: dict[str, list[np.ndarray]], rel_noise: float,
                    seed: str) -> dict[str, list[np.ndarray]]:
    """Run the source ONNX on the inputs (ONNX Runtime, CPU) and add device-like numeric noise.

    Without a runnable ONNX model the first input is echoed as `output_0` (documented fallback).
    """
    rng = rng_for(seed + "/outputs")
    if info is None:
        first = next(iter(inputs.values()), [])
        return {"output_0": [np.array(a, copy=True) for a in first]}
    expected = [t.name for t in info.inputs]
    if sorted(inputs) != sorted(expected):
        raise InputMismatch(f"Input names {list(inputs)} do not match the model's inputs {expected}.")
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(info, tmp)
        names = [o.name for o in session.get_outputs()]
        batches = len(next(iter(inputs.values())))
        results: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for b in range(batches):
            try:
                values = session.run(None, {k: inputs[k][b] for k in expected})
            except Exception as exc:  # noqa: BLE001 - surfaced as the job's failure reason
                raise InputMismatch(f"Failed to run inference: {exc}") from exc
            for name, value in zip(names, values, strict=True):
                results[name].append(_noisy(np.asarray(value), rel_noise, rng))
    return results


def _noisy(value: np.ndarray, rel_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative, fp16-rounding-like error: keeps signs and exact zeros (e.g. after a ReLU)."""
    if rel_noise <= 0 or not np.issubdtype(value.dtype, np.floating):
        return value
    return (value * (1.0 + rng.normal(0.0, rel_noise, size=value.shape))).astype(value.dtype)
