"""Paired measurement on AI Hub (SPEC §6 item 7), end to end against the AI Hub double with the real SDK: a
relative gate's baseline model is profiled on the same device in the same run, its jobs submitted between the
candidate's, its upload and compile served from the caches; `gate check` re-derives the verdict from the run
and from its bundle alone."""

from __future__ import annotations

import json
import shutil

import pytest
from aihub_double import AIHubDouble
from conftest import REPO

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
HEAVY = REPO / "examples" / "quickstart" / "model_heavy.onnx"
TOKEN = "eg-secret-tok-7c2e51d0a9b3f468"
S24 = "Samsung Galaxy S24"


@pytest.fixture(scope="module")
def hub():
    with AIHubDouble(token=TOKEN, polls_before_done=1, seed=5) as double:
        yield double
    assert not double.server_errors, double.server_errors[0]


def _configure(mp, hub) -> None:
    for name, value in {"EDGEGATE_QAIHUB_POLL_S": "0.01", "QAIHUB_API_TOKEN": TOKEN,
                        "EDGEGATE_QAIHUB_API_URL": hub.url}.items():
        mp.setenv(name, value)


@pytest.fixture(scope="module")
def _probed_template(hub, tmp_path_factory):
    from edgegate_cli.backends.registry import get_backend
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    path = tmp_path_factory.mktemp("qaihub-paired") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, hub)
        ws = open_workspace(Home(path, "--home"))
        probe_backend(ws, "qaihub", lambda *_: None, backend=get_backend("qaihub", ws=ws, devices=[S24]))
        ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ws.db.close()
    return path


@pytest.fixture
def probed(_probed_template, fresh_home, hub, monkeypatch):
    hub.clear_failures()
    hub.reset_counts()
    _configure(monkeypatch, hub)
    shutil.copytree(_probed_template, fresh_home)
    return fresh_home


def _pipeline(path, mode: str = ""):
    extra = f", baseline_mode: {mode}" if mode else ""
    path.write_text(f"name: hubrel\nbackend: qaihub\ndevices: ['{S24}']\nmodel: {{path: '{MODEL}'}}\n"
                    "run_policy: {repeats: 3, iterations: 30}\n"
                    f"gates: [{{metric: latency_ms, baseline: last-passed, max_regression_pct: 10{extra}}}]\n")
    return path


def _run(invoke, path, *args, expect=0) -> dict:
    return json.loads(invoke("run", path, "--json", *args, expect=expect).stdout)


def test_baseline_model_is_profiled_on_the_same_device_in_the_same_run(invoke, probed, hub, tmp_path):
    """The slower candidate fails against the baseline model profiled beside it; the baseline's upload and compile
    come from the caches (one upload, one compile: the candidate's), its 1 + 3 jobs sit between the candidate's,
    and the verdict re-derives from the run and from the bundle alone."""
    path = _pipeline(tmp_path / "hubrel.yaml")
    first = _run(invoke, path)
    assert first["gates"][0]["code"] == "NO_BASELINE"
    hub.reset_counts()

    heavy = _run(invoke, path, "--model", HEAVY, expect=1)
    gate = heavy["gates"][0]
    assert (gate["status"], gate["baseline_mode"], gate["baseline_run_id"]) == ("fail", "paired", first["run_id"])
    assert "measured again in this run on Samsung Galaxy S24" in gate["baseline_mode_reason"]
    assert gate["n_baseline"] == gate["n_candidate"] == 90 and gate["ratio"] > 1.1
    assert hub.counts["models.create"] == 1  # the candidate's upload; the baseline model's is cached
    assert hub.counts["jobs.create.compile"] == 1  # likewise its compile
    assert hub.counts["jobs.create.profile"] == 8  # (1 warmup + 3 repeats) x (candidate + baseline)
    run_jobs = sorted((j for j in hub.store.jobs.values() if heavy["run_id"] in j.name and j.profiling),
                      key=lambda j: j.created)
    assert [j.name.split(heavy["run_id"])[1].strip() for j in run_jobs] == [
        "baseline 1 warmup", "warmup", "baseline 1 repeat 1/3", "repeat 1/3", "baseline 1 repeat 2/3", "repeat 2/3",
        "baseline 1 repeat 3/3", "repeat 3/3"]  # B, A, B, A … in submission order
    assert len({j.model_id for j in run_jobs}) == 2  # two compiled models on one device

    shown = json.loads(invoke("runs", "show", heavy["run_id"], "--json").stdout)
    roles = [(p["repeat_index"], p.get("role"), p["warmup"]) for p in shown["payloads"]]
    assert roles == [(0, None, True), (1, None, False), (2, None, False), (3, None, False),
                     (2000, "baseline", True), (2001, "baseline", False), (2002, "baseline", False),
                     (2003, "baseline", False)]
    checked = json.loads(invoke("gate", "check", heavy["run_id"], "--json", expect=1).stdout)
    assert checked["agrees"] and checked["evaluation"]["gates"][0]["ratio"] == gate["ratio"]

    invoke("keys", "generate")
    bundle = tmp_path / "heavy.zip"
    invoke("bundle", "create", heavy["run_id"], "--out", bundle)
    from_bundle = json.loads(invoke("gate", "check", bundle, "--json", expect=1).stdout)
    g = from_bundle["evaluation"]["gates"][0]
    assert from_bundle["agrees"] and (g["baseline_mode"], g["ratio"]) == ("paired", gate["ratio"])


def test_recorded_mode_submits_no_baseline_jobs(invoke, probed, hub, tmp_path):
    """baseline_mode: recorded compares with the stored samples: no extra job, and the result says so."""
    path = _pipeline(tmp_path / "hubrel.yaml", mode="recorded")
    _run(invoke, path)
    hub.reset_counts()
    same = _run(invoke, path)
    gate = same["gates"][0]
    assert (gate["baseline_mode"], hub.counts["jobs.create.profile"]) == ("recorded", 4)
    assert gate["baseline_mode_reason"].startswith("baseline_mode: recorded in the pipeline")
