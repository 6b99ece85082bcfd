"""One repeat of a GenAI model (onnxruntime-genai folder) over a PromptPack, in a fresh process.

Forked from the fork server after `preload()`, or invoked as
`python -m edgegate_cli.backends.local.genai_worker REQUEST.json`, which prints one JSON payload
(format edgegate.local.genai.v1); see `launch.py`. Per case: greedy decoding up to max_new_tokens; TTFT is prompt
submitted → first token (the prefill runs inside append_tokens, so the clock starts before it);
TPS is tokens after the first / decode time. Outputs are scored against the case's expected check.
"""

from __future__ import annotations

import json
import sys
import time

from .worker import _cpu_name, _load_1m, _peak_rss_mb, cpu_share

PAYLOAD_FORMAT = "edgegate.local.genai.v1"


def _prompt_ids(og, tokenizer, case: dict):
    if case.get("messages") is not None:
        text = tokenizer.apply_chat_template(json.dumps(case["messages"]), add_generation_prompt=True)
        return tokenizer.encode(text)
    return tokenizer.encode(case["prompt"])


def run_case(og, model, tokenizer, case: dict, context_length: int | None) -> dict:
    """Generate greedily for one case; return its output and timings."""
    ids = _prompt_ids(og, tokenizer, case)
    eos = set(tokenizer.eos_token_ids)
    limit = len(ids) + int(case["max_new_tokens"])
    if context_length:
        limit = min(limit, int(context_length))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=limit)
    gen = og.Generator(model, params)
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    gen.append_tokens(ids)  # the prefill runs here
    gen.generate_next_token()
    t1 = time.perf_counter_ns()
    steps = 1
    while not gen.is_done():
        gen.generate_next_token()
        steps += 1
    t2 = time.perf_counter_ns()
    cpu_ms = (time.process_time_ns() - c0) / 1e6
    # Tokens are read once, after the clock (per-token reads would be timed as decode work). The
    # sequence omits a final EOS, so the step count, not the sequence, says how many were generated.
    tokens = [int(t) for t in gen.get_sequence(0)[len(ids):]]
    ttft_ms = (t1 - t0) / 1e6
    decode_s = (t2 - t1) / 1e9
    return {
        "case_id": case["case_id"], "output": tokenizer.decode([t for t in tokens if t not in eos]),
        "prompt_tokens": len(ids), "new_tokens": steps, "ttft_ms": ttft_ms,
        "decode_ms": decode_s * 1000, "wall_ms": (t2 - t0) / 1e6, "cpu_ms": cpu_ms,
        "tps": (steps - 1) / decode_s if steps > 1 and decode_s > 0 else None,
        "prompt_tps": len(ids) / (ttft_ms / 1000) if ttft_ms > 0 else None,
    }


def preload() -> float:
    """Import what `measure` needs; return the peak RSS after, which `measure` reports as `startup_rss_mb`."""
    import onnxruntime_genai  # noqa: F401

    from ...measure import scoring  # noqa: F401

    return _peak_rss_mb()


def measure(req: dict, startup_rss_mb: float | None = None) -> dict:
    """`startup_rss_mb` is `preload()`'s figure when a fork server preloaded (default: measured here)."""
    import onnxruntime_genai as og

    from ...measure.scoring import score_case

    rss_start = _peak_rss_mb() if startup_rss_mb is None else startup_rss_mb
    t0 = time.perf_counter_ns()
    config = og.Config(req["model"])
    # Pin threads through a config overlay, as ONNX Runtime sessions are pinned for stable numbers.
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": int(req.get("threads", 1)), "inter_op_num_threads": 1}}}}))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    # An untimed pass first, each case capped at 2 new tokens (a prefill and a decode step): the
    # process is fresh, so load time is real, but each prompt shape's first run pays one-off costs
    # (allocator arenas, kernel selection) that are not the model's speed.
    for case in req["cases"]:
        run_case(og, model, tokenizer, {**case, "max_new_tokens": min(2, case["max_new_tokens"])},
                 req.get("context_length"))
    load_before = _load_1m()
    cases = [run_case(og, model, tokenizer, case, req.get("context_length")) for case in req["cases"]]
    cpu = cpu_share([c["wall_ms"] for c in cases], [c["cpu_ms"] for c in cases], int(req.get("threads", 1)),
                    req.get("starved_off_cpu"), [load_before, _load_1m()])
    # Scoring after all timed work: a bounded regex check runs in a subprocess and would disturb timings.
    for case, result in zip(req["cases"], cases, strict=True):
        score = score_case(case["expected"], result["output"])
        result.update(score=score.score, passed=score.passed, detail=score.detail, error=score.error)
    return {
        "format": PAYLOAD_FORMAT, "device": req["device"], "repeat_index": req["repeat_index"],
        "warmup": req["warmup"], "load_ms": load_ms, "peak_rss_mb": _peak_rss_mb(), "startup_rss_mb": rss_start,
        "promptpack": req.get("promptpack"), "cases": cases, "cpu": cpu,
        "environment": {"onnxruntime_genai": og.__version__, "cpu": _cpu_name(),
                        "threads": int(req.get("threads", 1))},
    }


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    payload = measure(req)
    payload["environment"]["launch"] = "process"
    sys.stdout.write(json.dumps(payload, sort_keys=True, allow_nan=False))


if __name__ == "__main__":
    main()
