"""What the local backend knows about its own payloads (format edgegate.local.v1): where each canonical
metric may live (checked by `probe` against real payloads), what it cannot measure, which model forms it
runs, the probe's GenAI cases, and how devices map to ONNX Runtime execution providers. Shared by the
backend and its probe, which therefore need not import each other."""

from __future__ import annotations

from pathlib import Path

RUNNABLE_FORMS = ("onnx", "onnx_external", "aimet", "genai")

# Where each canonical metric lives in an edgegate.local.v1 payload. `probe` checks every
# candidate against real payloads before it enters the mapping.
CANDIDATES = {
    "latency_ms": {"source": {"path": "$.iterations_ms", "reduce": "median"}},
    "latency_p90_ms": {"source": {"path": "$.iterations_ms", "reduce": "p90"}},
    "throughput_ips": {"derive": {"from": "latency_ms", "formula": "reciprocal_ms_to_per_s"}},
    "first_load_ms": {"source": {"path": "$.load_ms", "reduce": "value"}},
    "warm_load_ms": {"source": {"path": "$.warm_load_ms", "reduce": "value"}},
    "peak_memory_mb": {"source": {"path": "$.peak_rss_mb", "reduce": "value"}},
    "output_cosine": {"source": {"path": "$.outputs.cosine", "reduce": "value"},
                      "requires": "reference_outputs"},
    "output_max_abs_err": {"source": {"path": "$.outputs.max_abs_err", "reduce": "value"},
                           "requires": "reference_outputs"},
    # GenAI payloads (edgegate.local.genai.v1): per repeat, the median over the pack's cases.
    "ttft_ms": {"source": {"path": "$.cases[*].ttft_ms", "reduce": "median"}},
    "tps": {"source": {"path": "$.cases[*].tps", "reduce": "median"}},
    "prompt_tps": {"source": {"path": "$.cases[*].prompt_tps", "reduce": "median"}},
    "correctness": {"source": {"path": "$.cases[*]", "reduce": "case_median_mean"}},
}
UNAVAILABLE = {
    "npu_layer_fraction": "ONNX Runtime on this machine reports no per-layer compute units",
}
# Two tiny cases the GenAI probe runs on probe_models/genai_tiny (a model trained to answer them).
GENAI_PROBE_CASES = [
    {"case_id": "capital", "prompt": "Q: What is the capital of France? A:", "max_new_tokens": 8,
     "expected": {"type": "contains", "values": ["Paris"]}},
    {"case_id": "times", "prompt": "Q: What is 6 times 7? A:", "max_new_tokens": 8,
     "expected": {"type": "numeric", "value": 42, "tolerance": 0}},
]
NOT_LOCAL = {"AzureExecutionProvider"}


_PROBE_COPY: list[Path] = []  # this process's private copy of the probe models, when one was needed


def probe_models_dir() -> Path:
    """The probe models. Installers that link files from a cache (uv hard-links wheel files) leave them with
    several hard links, and onnx refuses external weights that have more than one; such an installation gets
    a private copy for this process (removed at exit; the models are well under 1 MB)."""
    from ... import data_dir

    root = data_dir("probe_models")
    if not any(f.stat().st_nlink > 1 for f in root.rglob("*") if f.is_file()):
        return root
    if not _PROBE_COPY:
        import atexit
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="edgegate-probe-models-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        _PROBE_COPY.append(shutil.copytree(root, tmp / "probe_models"))
    return _PROBE_COPY[0]


def provider_for(device: str) -> str:
    """`local:cpu` → CPUExecutionProvider, `local:qnn` → QNNExecutionProvider, etc."""
    short = device.split(":", 1)[1]
    return {"cpu": "CPU", "cuda": "CUDA", "qnn": "QNN", "dml": "Dml", "coreml": "CoreML",
            "openvino": "OpenVINO", "xnnpack": "Xnnpack"}.get(short, short) + "ExecutionProvider"
