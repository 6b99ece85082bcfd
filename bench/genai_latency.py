"""The local GenAI runner's TTFT and TPS against onnxruntime-genai's generator loop timed directly.

Same model (probe_models/genai_tiny), same prompts (examples/genai/pack.json), same greedy search and
token caps, one thread each. EdgeGate runs each repeat in a fresh process and reports, per repeat,
the median over cases, then the median over repeats; the direct loop does the same in this process.
Prints both and the difference (target: within ±5 %). Run: `uv run python bench/genai_latency.py
[--repeats 5]`. Uses a throwaway home; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "probe_models" / "genai_tiny"
PACK = REPO / "examples" / "genai" / "pack.json"


def direct_loop(cases: list[dict], repeats: int) -> tuple[float, float]:
    """TTFT (prompt submitted → first token) and TPS (tokens after the first / decode time), timed by hand."""
    import onnxruntime_genai as og

    config = og.Config(str(MODEL))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": 1,
                                                                         "inter_op_num_threads": 1}}}}))
    model = og.Model(config)
    tok = og.Tokenizer(model)
    ttfts, tpss = [], []
    for r in range(repeats + 1):  # the first pass is a warmup, as in EdgeGate
        case_ttft, case_tps = [], []
        for case in cases:
            if case.get("messages"):
                ids = tok.encode(tok.apply_chat_template(json.dumps(case["messages"]), add_generation_prompt=True))
            else:
                ids = tok.encode(case["prompt"])
            params = og.GeneratorParams(model)
            params.set_search_options(do_sample=False, max_length=min(len(ids) + case["max_new_tokens"], 512))
            gen = og.Generator(model, params)
            t0 = time.perf_counter()
            gen.append_tokens(ids)
            gen.generate_next_token()
            t1 = time.perf_counter()
            n = 1
            while not gen.is_done():
                gen.generate_next_token()
                n += 1
            t2 = time.perf_counter()
            case_ttft.append((t1 - t0) * 1000)
            if n > 1:
                case_tps.append((n - 1) / (t2 - t1))
        if r:
            ttfts.append(statistics.median(case_ttft))
            tpss.append(statistics.median(case_tps))
    return statistics.median(ttfts), statistics.median(tpss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.spec.promptpack_format import effective_cases, load_pack
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "genai.yaml"
        pack = load_pack(PACK)
        pipe.write_text(f"name: bench-genai\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{MODEL}'}}\n"
                        f"promptpack: {{id: {pack['promptpack_id']}, version: '{pack['version']}', path: '{PACK}'}}\n"
                        f"run_policy: {{repeats: {args.repeats}, flake: {{latency_cv: 10, throughput_cv: 10}}}}\n"
                        "gates: [{metric: correctness, op: '>=', value: 0, required: false}]\n")
        ws = open_workspace(Home(Path(tmp) / "home", "--home"))
        outcome = execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _msg: None)
        metrics = outcome.devices["local:cpu"]
        eg_ttft, eg_tps = metrics["ttft_ms"].value, metrics["tps"].value
    ttft, tps = direct_loop(effective_cases(pack), args.repeats)
    print(f"model: {MODEL.name}, pack: {PACK.name} ({len(pack['cases'])} cases), {args.repeats} repeats, 1 thread")
    print(f"TTFT  edgegate {eg_ttft:9.4f} ms     direct loop {ttft:9.4f} ms     "
          f"difference {100 * (eg_ttft / ttft - 1):+.1f} %")
    print(f"TPS   edgegate {eg_tps:9.0f} tok/s  direct loop {tps:9.0f} tok/s  "
          f"difference {100 * (eg_tps / tps - 1):+.1f} %")
    print("target: within ±5 %. Sub-millisecond timings of this toy model are noise-dominated.")


if __name__ == "__main__":
    main()
