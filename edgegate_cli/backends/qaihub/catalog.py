"""What the qaihub backend knows about AI Hub payloads (format edgegate.qaihub.v1): where each canonical
metric may live in a `download_profile()` dict (checked by `probe` against real payloads), what AI Hub
cannot measure, and which model forms it takes. Shared by the backend and its probe."""

from __future__ import annotations

PAYLOAD_FORMAT = "edgegate.qaihub.v1"
RUNNABLE_FORMS = ("onnx", "onnx_external", "aimet", "torchscript", "tflite")
US_TO_MS = 0.001
BYTES_TO_MIB = 1 / 2**20
_SUMMARY = "$.execution_summary"
# Where each canonical metric lives in a download_profile() payload; `probe` checks every candidate
# against real payloads before it enters the mapping. latency_ms is the median of all_inference_times,
# never estimated_inference_time (the fastest iteration: FINDINGS.md).
CANDIDATES = {
    "latency_ms": {"source": {"path": f"{_SUMMARY}.all_inference_times", "reduce": "median", "scale": US_TO_MS}},
    "latency_p90_ms": {"source": {"path": f"{_SUMMARY}.all_inference_times", "reduce": "p90", "scale": US_TO_MS}},
    "throughput_ips": {"derive": {"from": "latency_ms", "formula": "reciprocal_ms_to_per_s"}},
    "first_load_ms": {"source": {"path": f"{_SUMMARY}.first_load_time", "reduce": "value", "scale": US_TO_MS}},
    "warm_load_ms": {"source": {"path": f"{_SUMMARY}.warm_load_time", "reduce": "value", "scale": US_TO_MS}},
    # (lower, upper) estimate bracket in bytes: gate on the upper bound, in MiB.
    "peak_memory_mb": {"source": {"path": f"{_SUMMARY}.inference_memory_peak_range[1]", "reduce": "value",
                                  "scale": BYTES_TO_MIB}},
    "npu_layer_fraction": {"source": {"path": "$.execution_detail[*].compute_unit", "reduce": "fraction_equal",
                                      "equals": "NPU"}},
    "output_cosine": {"source": {"path": "$.outputs.cosine", "reduce": "value"}, "requires": "reference_outputs"},
    "output_max_abs_err": {"source": {"path": "$.outputs.max_abs_err", "reduce": "value"},
                           "requires": "reference_outputs"},
}
NO_TOKENS = "AI Hub jobs produce no token metrics"
UNAVAILABLE = {"ttft_ms": NO_TOKENS, "tps": NO_TOKENS, "prompt_tps": NO_TOKENS,
               "correctness": NO_TOKENS + " (GenAI models run on the local backend)"}
