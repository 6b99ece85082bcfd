"""`edgegate probe --backend qaihub`, `probe devices` and `edgegate run` on AI Hub devices, end to end:
the real, unpatched qai_hub SDK against the AI Hub protocol double, configured only through the
environment (QAIHUB_API_TOKEN, EDGEGATE_QAIHUB_API_URL, EDGEGATE_QAIHUB_POLL_S) or --qaihub-api-url.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from aihub_double import AIHubDouble
from conftest import REPO

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
TOKEN = "eg-secret-tok-4b1d9e27c0a8f356"
S24, S23, ELITE = "Samsung Galaxy S24", "Samsung Galaxy S23", "Snapdragon 8 Elite QRD"
DEVICES = [S24, S23, ELITE]
ENV = {"EDGEGATE_QAIHUB_POLL_S": "0.01"}


@pytest.fixture(scope="module")
def hub():
    with AIHubDouble(token=TOKEN, polls_before_done=1, seed=11) as double:
        yield double
    assert not double.server_errors, double.server_errors[0]


def _configure(mp, hub) -> None:
    for name, value in {**ENV, "QAIHUB_API_TOKEN": TOKEN, "EDGEGATE_QAIHUB_API_URL": hub.url}.items():
        mp.setenv(name, value)


@pytest.fixture
def env(hub, monkeypatch):
    """The shared double, reset, and this process configured to reach it."""
    hub.clear_failures()
    hub.hold_running_s = 0
    hub.token = TOKEN
    hub.reset_counts()
    _configure(monkeypatch, hub)
    return hub


@pytest.fixture(scope="module")
def _probed_template(hub, tmp_path_factory):
    from edgegate_cli.backends.registry import get_backend
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    path = tmp_path_factory.mktemp("qaihub") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, hub)
        ws = open_workspace(Home(path, "--home"))
        probe_backend(ws, "qaihub", lambda *_: None, backend=get_backend("qaihub", ws=ws, devices=DEVICES))
        ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ws.db.close()
    return path


@pytest.fixture
def probed(_probed_template, fresh_home, env):
    """A home probed for qaihub on the three devices (a copy of the module's template)."""
    shutil.copytree(_probed_template, fresh_home)
    return fresh_home


def pipeline(path, *, devices=tuple(DEVICES), gates="[{metric: latency_ms, op: '<=', value: 50}]", policy=""):
    path.write_text(f"name: {path.stem}\nbackend: qaihub\ndevices: {json.dumps(list(devices))}\n"
                    f"model: {{path: '{MODEL}'}}\nrun_policy: {{iterations: 30{policy}}}\ngates: {gates}\n")
    return path


def rows(home, sql: str, params=()) -> list:
    con = sqlite3.connect(home / "state.db")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


# ---- probe ------------------------------------------------------------------------------------------------------

def test_probe_then_run_on_three_devices_passes(invoke, env, fresh_home, tmp_path):
    """Done-when: probe on AI Hub, then a 3-device run passes through the real SDK."""
    probe = invoke("probe", "--backend", "qaihub", *[a for d in DEVICES for a in ("--device", d)], "--json")
    report = json.loads(probe.stdout)
    metrics = report["capabilities"]["metrics"]
    assert {m: metrics[m] for m in ("latency_ms", "peak_memory_mb", "npu_layer_fraction", "ttft_ms", "tps")} == {
        "latency_ms": "stable", "peak_memory_mb": "stable", "npu_layer_fraction": "stable", "ttft_ms": "unavailable",
        "tps": "unavailable"}
    assert report["mapping"]["metrics"]["latency_ms"]["source"] == {
        "path": "$.execution_summary.all_inference_times", "reduce": "median", "scale": 0.001}
    assert report["mapping"]["metrics"]["ttft_ms"]["reason"] == "AI Hub jobs produce no token metrics"
    assert report["capabilities"]["features"]["job_logs"] is True
    assert {k: v for k, v in report["capabilities"]["model_forms"].items() if k != "genai"} == {
        "onnx_external": "ok", "aimet": "ok", "torchscript": "ok"}
    assert len(report["payload_sha256"]) == 18  # 3 models x (profile + inference) x 3 devices
    assert env.counts["jobs.create.compile"] == 9

    result = invoke("run", pipeline(tmp_path / "hub.yaml", gates="[{metric: latency_ms, op: '<=', value: 50}, "
                                    "{metric: npu_layer_fraction, op: '>=', value: 1.0}, "
                                    "{metric: peak_memory_mb, op: '<', value: 300}]"))
    assert result.stdout.strip().splitlines()[-1].startswith("PASSED: run run-")
    (run,) = rows(fresh_home, "select status, backend, error_code from runs")
    assert run == ("passed", "qaihub", None)
    assert rows(fresh_home, "select device, count(*) from run_payloads group by device order by device") == [
        (S23, 4), (S24, 4), (ELITE, 4)]
    assert env.counts["jobs.create.profile"] == 9 + 12  # the probe's 9, then 3 devices x (1 warmup + 3 repeats)


def test_probe_needs_a_device(invoke, env):
    result = invoke("probe", "--backend", "qaihub", expect=2)
    assert last_line(result) == (
        "Error [INVALID_INPUT]: probing AI Hub needs at least one --device NAME (each probe spends device minutes) "
        "(`edgegate probe devices` lists them; e.g. --device 'Samsung Galaxy S24 (Family)')")
    assert env.counts["jobs.create"] == 0


def test_probe_devices_lists_chipset_os_and_frameworks(invoke, env, monkeypatch):
    monkeypatch.delenv("EDGEGATE_QAIHUB_API_URL")  # the flag alone points the SDK at the double
    doc = json.loads(invoke("probe", "devices", "--qaihub-api-url", env.url, "--json").stdout)
    s24 = next(d for d in doc["devices"] if d["name"] == S24)
    assert (doc["backend"], s24["os"], s24["chipset"], s24["frameworks"]) == (
        "qaihub", "14", "qualcomm-snapdragon-8gen3", ["onnx", "qnn", "tflite"])
    table = invoke("probe", "devices", "--qaihub-api-url", env.url).stdout
    assert "qualcomm-snapdragon-8gen3" in table and f"{len(doc['devices'])} qaihub devices" in table


# ---- run --------------------------------------------------------------------------------------------------------

def test_a_tightened_gate_exits_1(invoke, probed, tmp_path):
    result = invoke("run", pipeline(tmp_path / "tight.yaml", gates="[{metric: latency_ms, op: '<=', value: 0.001}]"),
                    expect=1)
    failed = [ln for ln in result.stdout.splitlines() if ln.startswith("Gate failed:")]
    assert [ln.split(":")[1].split(" on ")[1] for ln in failed] == DEVICES
    assert rows(probed, "select status from runs") == [("failed",)]


def test_one_device_failing_exits_3_naming_the_device_and_the_reason(invoke, probed, env, tmp_path):
    reason = ("Failed to profile the model: Non-zero status code returned while running QNN_1 node. "
              "Status Message: QNN graph execute error. Error code: 6001")
    env.fail_jobs(reason, kind="profile", device=S23, times=1)
    before = set(env.store.jobs)
    result = invoke("run", pipeline(tmp_path / "fail.yaml"), expect=3)
    (job,) = [j for k, j in env.store.jobs.items() if k not in before and j.failure_reason]
    assert last_line(result) == (f"Error [DEVICE_JOB_FAILED]: {S23}: AI Hub job (warmup) {job.job_id} failed: {reason} "
                                 f"(see {env.url}/jobs/{job.job_id}/)")
    (run,) = rows(probed, "select status, error_code, error_detail from runs")
    assert run[:2] == ("error", "DEVICE_JOB_FAILED") and reason in run[2]


def test_rerunning_the_same_model_uploads_and_compiles_nothing(invoke, probed, env, tmp_path):
    """Done-when: the double's counters prove 0 model uploads and 0 compile jobs on the second run."""
    pipe = pipeline(tmp_path / "again.yaml")
    invoke("run", pipe)
    assert (env.counts["models.uploaded"], env.counts["jobs.create.compile"]) == (1, 3)
    env.reset_counts()
    invoke("run", pipe)
    assert (env.counts["models.created"], env.counts["models.uploaded"], env.counts["jobs.create.compile"]) == (
        0, 0, 0)
    assert env.counts["jobs.create.profile"] == 12


def test_devices_run_in_parallel(invoke, probed, env, tmp_path):
    """Every device's compile job exists before any device's profiling jobs: the devices did not queue."""
    env.hold_running_s = 0.3
    before = set(env.store.jobs)
    invoke("run", pipeline(tmp_path / "par.yaml"))
    jobs = [j for k, j in env.store.jobs.items() if k not in before]
    compiles = [j.created for j in jobs if j.kind == "compile"]
    profiles = [j.created for j in jobs if j.kind == "inference" and j.profiling]
    assert len(compiles) == 3 and len(profiles) == 12 and max(compiles) < min(profiles)


def test_a_required_ttft_gate_stops_in_preflight_before_any_job(invoke, probed, env, tmp_path):
    pipe = pipeline(tmp_path / "ttft.yaml", gates="[{metric: ttft_ms, op: '<=', value: 100}]")
    result = invoke("run", pipe, expect=3)
    assert last_line(result) == (
        f"Error [MISSING_REQUIRED_METRIC]: {pipe}: gate 'ttft_ms <= 100' needs ttft_ms, which the qaihub backend "
        "cannot provide: AI Hub jobs produce no token metrics (run `edgegate probe --backend qaihub` to refresh the "
        "capabilities, or make the gate optional)")
    assert (env.counts["jobs.create"], env.counts["models.create"]) == (0, 0)


def test_a_run_timeout_exits_3(invoke, probed, env, tmp_path):
    env.hold_running_s = 30
    result = invoke("run", pipeline(tmp_path / "slow.yaml", devices=[S24], policy=", timeout_s: 1"), expect=3)
    assert last_line(result).startswith(f"Error [TIMEOUT]: {S24}: compile: AI Hub job(s) j")
    assert last_line(result).endswith("did not finish before the run timeout (raise run_policy.timeout_s (at most "
                                      "2700); the jobs keep running on AI Hub)")
    assert rows(probed, "select status, error_code from runs") == [("error", "TIMEOUT")]


def test_without_probing_first_the_run_says_which_probe_to_run(invoke, env, fresh_home, tmp_path):
    result = invoke("run", pipeline(tmp_path / "p.yaml"), expect=3)
    assert last_line(result) == (f"Error [MISSING_REQUIRED_METRIC]: no capabilities recorded for backend qaihub in "
                                 f"{fresh_home} (run `edgegate probe --backend qaihub` first)")


# ---- bad input and secrets --------------------------------------------------------------------------------------

def test_a_missing_token_exits_2_saying_how_to_set_it(invoke, env, monkeypatch, tmp_path):
    monkeypatch.delenv("QAIHUB_API_TOKEN")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    result = invoke("run", pipeline(tmp_path / "p.yaml"), expect=2)
    assert last_line(result) == (
        f"Error [INVALID_INPUT]: no AI Hub API token: QAIHUB_API_TOKEN is not set and there is no {tmp_path}/none.ini "
        "(export QAIHUB_API_TOKEN=<your token> (AI Hub: Account > Settings > API Token), or run `qai-hub configure "
        "--api_token <your token>` to write the SDK's client.ini)")


def test_a_refused_token_exits_3_without_printing_it(invoke, env, monkeypatch, tmp_path, fresh_home):
    wrong = "eg-wrong-tok-00ff00ff00ff00ff"
    monkeypatch.setenv("QAIHUB_API_TOKEN", wrong)
    result = invoke("run", pipeline(tmp_path / "p.yaml"), expect=3)
    assert last_line(result) == (
        "Error [AUTH_REFUSED]: AI Hub refused the API token from QAIHUB_API_TOKEN (HTTP 401: the token is bad or "
        f"expired) (check your token at {env.url}/account/; set QAIHUB_API_TOKEN to a current token)")
    assert wrong not in result.stdout + result.stderr
    assert env.counts["auth.refused"] == 1


def test_an_unknown_device_exits_2_with_close_matches(invoke, env, tmp_path):
    pipe = pipeline(tmp_path / "p.yaml", devices=[S24, "Samsung Galaxy S42"])
    result = invoke("run", pipe, expect=2)
    assert last_line(result) == (
        f"Error [INVALID_INPUT]: {pipe}: $.devices[1]: 'Samsung Galaxy S42' is not an AI Hub device now (AI Hub "
        "renames and retires devices); close matches: 'Samsung Galaxy S25', 'Samsung Galaxy S24', "
        "'Samsung Galaxy S23' (`edgegate probe devices` lists every AI Hub device)")
    assert env.counts["jobs.create"] == 0


def test_more_than_five_devices_exit_2_before_reaching_ai_hub(invoke, env, tmp_path):
    pipe = pipeline(tmp_path / "six.yaml", devices=[S24, S23, ELITE, "Samsung Galaxy S25", "Samsung Galaxy S22 5G",
                                                   "Google Pixel 5"])
    result = invoke("run", pipe, expect=2)
    assert last_line(result) == (f"Error [LIMIT_EXCEEDED]: {pipe}: $.devices: 6 devices exceed the limit of 5 devices "
                                 "per run")
    assert sum(env.counts.values()) == 0


def test_no_byte_written_holds_the_token(invoke, env, fresh_home, tmp_path):
    """probe + run (passing, with a failing job whose reason quotes the token, and refused by a 401), all with
    --json: the token appears in no output and in no byte of the home (SQLite, WAL, CAS)."""
    results = [invoke("probe", "--backend", "qaihub", "--device", S24, "--device", S23, "--json")]
    pipe = pipeline(tmp_path / "secret.yaml", devices=[S24, S23])
    results.append(invoke("run", pipe, "--json"))
    env.fail_jobs(f"Error uploading to QDC: 403 Invalid Credentials (token {TOKEN})", kind="profile", device=S23,
                  times=1)
    results.append(invoke("run", pipe, "--json", expect=3))
    assert json.loads(results[-1].stdout)["error"]["code"] == "DEVICE_JOB_FAILED"
    assert "Invalid Credentials (token ***)" in last_line(results[-1])
    env.token = "rotated-on-ai-hub"  # AI Hub now refuses ours: 401
    results.append(invoke("run", pipe, "--json", expect=3))
    assert json.loads(results[-1].stdout)["error"]["code"] == "AUTH_REFUSED"

    for result in results:
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
    written = [p for p in fresh_home.rglob("*") if p.is_file()]  # state.db, its -wal/-shm if any, cas/, keys/
    assert "state.db" in {p.name for p in written} and len(written) > 20
    leaks = [str(p) for p in written if TOKEN.encode() in p.read_bytes()]
    assert leaks == []
