"""Paired measurement on real local runs (SPEC §6 item 7): the baseline model measured again in the same run,
interleaved with the candidate; when it cannot be, the recorded samples and the reason; re-derivation of paired
verdicts by `gate check RUN` and `gate check BUNDLE` from stored evidence alone."""

from __future__ import annotations

import json
import os
import zipfile

from conftest import LOOSE, REPO, write_pipeline
from synthetic_models import matmul_chain

from edgegate_cli.errors import ExitCode

QUICKSTART = REPO / "examples" / "quickstart" / "model.onnx"
HEAVY = REPO / "examples" / "quickstart" / "model_heavy.onnx"


def _run(invoke, pipeline, *args, expect: int | None = ExitCode.OK) -> dict:
    return json.loads(invoke("run", pipeline, "--json", *args, expect=expect).stdout)


def _relative(outcome: dict) -> dict:
    return next(g for g in outcome["gates"] if g.get("max_regression_pct"))


def _pipeline(tmp_path, name: str = "pair", mode: str = "", baseline: str = "last-passed", model=None):
    extra = f", baseline_mode: {mode}" if mode else ""
    return write_pipeline(tmp_path / f"{name}.yaml", model=str(model) if model else None, extra_policy=LOOSE,
                          gates=f"[{{metric: latency_ms, baseline: '{baseline}', max_regression_pct: 10{extra}}}]")


def _drop_blob(home, digest: str) -> None:
    """Remove a blob from the home's CAS, as if the model had been deleted from the store since the baseline ran."""
    blob = home / "cas" / "sha256" / digest[:2] / digest[2:]
    os.chmod(blob.parent, 0o755)
    blob.unlink()


def test_paired_is_the_default_and_rederives_from_run_and_bundle(invoke, probed_home, tmp_path):
    """The baseline run's model is measured again, interleaved (B, A, B, A), stored as role-'baseline' payloads;
    the gate says paired and why; `gate check` agrees from the run and from the bundle, whose baselines/ carry
    the paired samples; `gate explain` shows the mode and the CPU starvation numbers."""
    pipeline = _pipeline(tmp_path)
    first = _run(invoke, pipeline)
    outcome = _run(invoke, pipeline, expect=None)
    gate = _relative(outcome)
    assert gate["baseline_mode"] == "paired" and gate["baseline_run_id"] == first["run_id"], gate
    assert gate["baseline_mode_reason"].startswith("the baseline model (sha256:")
    assert "interleaved with the candidate repeat by repeat (3 repeats each" in gate["baseline_mode_reason"]
    assert gate["n_baseline"] == gate["n_candidate"] == 90
    assert gate["host"]["assessed"] == 3 and gate["host"]["baseline"]["assessed"] == 3

    shown = json.loads(invoke("runs", "show", outcome["run_id"], "--json").stdout)
    assert [(p["repeat_index"], p.get("role")) for p in shown["payloads"]] == [
        (0, None), (1, None), (2, None), (3, None), (2000, "baseline"), (2001, "baseline"), (2002, "baseline"),
        (2003, "baseline")]
    code = ExitCode.for_verdict(outcome["verdict"])
    checked = json.loads(invoke("gate", "check", outcome["run_id"], "--json", expect=code).stdout)
    assert checked["agrees"] and _relative(checked["evaluation"])["ratio"] == gate["ratio"]
    assert _relative(checked["evaluation"])["baseline_mode"] == "paired"

    text = invoke("gate", "explain", outcome["run_id"]).stdout
    assert "baseline mode: paired: the baseline model (sha256:" in text
    assert "host: candidate: " in text and "host: paired baseline: " in text

    invoke("keys", "generate")
    bundle = tmp_path / "paired.zip"
    invoke("bundle", "create", outcome["run_id"], "--out", bundle)
    from_bundle = json.loads(invoke("gate", "check", bundle, "--json", expect=code).stdout)
    assert from_bundle["agrees"] and _relative(from_bundle["evaluation"])["ratio"] == gate["ratio"]
    with zipfile.ZipFile(bundle) as z:
        records = json.loads(z.read("baselines.json"))
        (record,) = records.values()
        assert record["mode"] == "paired" and len(record["paired"]["payloads"]) == 3
        assert all(f"baselines/{d}.json" in z.namelist() for d in record["paired"]["payloads"])
        assert not [n for n in z.namelist() if n.startswith("raw/") and "/20" in n]  # raw/ is the candidate's
        summary = json.loads(z.read("summary.json"))["predicate"]
        assert summary["baselines"]["last-passed@local:cpu"]["mode"] == "paired"


def test_recorded_mode_measures_nothing_more(invoke, probed_home, tmp_path):
    """baseline_mode: recorded: no baseline repeats in the run; the result names the mode and why."""
    pipeline = _pipeline(tmp_path, mode="recorded")
    _run(invoke, pipeline)
    outcome = _run(invoke, pipeline, expect=None)
    gate = _relative(outcome)
    assert gate["baseline_mode"] == "recorded"
    assert gate["baseline_mode_reason"] == ("baseline_mode: recorded in the pipeline: compared with the samples "
                                            "the baseline run stored")
    shown = json.loads(invoke("runs", "show", outcome["run_id"], "--json").stdout)
    assert not [p for p in shown["payloads"] if p.get("role")]


def test_baseline_model_gone_from_the_store_falls_back_to_recorded(invoke, probed_home, tmp_path):
    """A baseline whose model blob is no longer in the CAS compares with its recorded samples, and says so; the
    7x slower candidate still fails against them."""
    pipeline = _pipeline(tmp_path)
    first = _run(invoke, pipeline)
    _drop_blob(probed_home, first["model"]["sha256"])
    heavy = _run(invoke, pipeline, "--model", HEAVY, expect=ExitCode.GATES_FAILED)
    gate = _relative(heavy)
    assert (gate["status"], gate["baseline_mode"]) == ("fail", "recorded")
    assert gate["baseline_mode_reason"] == (
        f"paired measurement was not possible (the baseline model model.onnx (sha256:{first['model']['sha256'][:12]}…) "
        "is no longer in this home's store (model.onnx removed, e.g. by `edgegate gc`)): compared with the samples "
        "the baseline run stored")
    invoke("gate", "check", heavy["run_id"], expect=ExitCode.GATES_FAILED)


def test_baseline_with_other_inputs_falls_back_to_recorded(invoke, probed_home, tmp_path):
    """A baseline model that cannot take the candidate's inputs is not paired; the reason names both inputs."""
    small = matmul_chain(tmp_path / "small.onnx", 2, rows=4, width=32)
    pipeline = _pipeline(tmp_path, model=small)
    _run(invoke, pipeline)
    other = matmul_chain(tmp_path / "other.onnx", 2, rows=4, width=48)
    gate = _relative(_run(invoke, pipeline, "--model", other, expect=None))
    assert gate["baseline_mode"] == "recorded"
    assert "the baseline model's inputs (x float32[4, 32]) differ from the candidate's (x float32[4, 48]), so " \
           "they cannot be fed the same inputs" in gate["baseline_mode_reason"]


def test_bundle_baseline_pairs_only_with_model_bytes(invoke, probed_home, tmp_path):
    """A bundle baseline: without model bytes (and the model gone from this home) the gate is recorded; a
    bundle made with --include-model brings the model back, and the gate is paired."""
    base = _pipeline(tmp_path, name="base")
    first = _run(invoke, base)
    invoke("keys", "generate")
    plain, full = tmp_path / "plain.zip", tmp_path / "full.zip"
    invoke("bundle", "create", first["run_id"], "--out", plain)
    invoke("bundle", "create", first["run_id"], "--out", full, "--include-model")
    _drop_blob(probed_home, first["model"]["sha256"])

    recorded = _relative(_run(invoke, _pipeline(tmp_path, name="vsplain", baseline=str(plain)), "--model", HEAVY,
                              expect=ExitCode.GATES_FAILED))
    assert (recorded["baseline_source"], recorded["baseline_mode"]) == ("bundle", "recorded")
    assert f"bundle {plain} holds no model bytes (it was made without --include-model) and this home does not " \
           "have the model" in recorded["baseline_mode_reason"]

    paired = _relative(_run(invoke, _pipeline(tmp_path, name="vsfull", baseline=str(full)), "--model", HEAVY,
                            expect=ExitCode.GATES_FAILED))
    assert (paired["baseline_source"], paired["baseline_mode"], paired["status"]) == ("bundle", "paired", "fail")
    assert paired["n_baseline"] == 90
