"""Issue 17, end to end: `edgegate run` on AI Hub through the real, unpatched qai_hub SDK against a double that
plays the live service's faults; the outcome each fault documents (README "AI Hub", the runbook), the run's
events, the evidence bundle, and no secret in anything written.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import zipfile

import pytest
from aihub_double import AIHubDouble
from conftest import REPO

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
TOKEN = "eg-fault-run-tok-9c2e5a7d1b3f4e6a"
S24, S23, ELITE = "Samsung Galaxy S24", "Samsung Galaxy S23", "Snapdragon 8 Elite QRD"
DEVICES = [S24, S23, ELITE]


@pytest.fixture(scope="module")
def hub():
    with AIHubDouble(token=TOKEN, polls_before_done=1, seed=23) as double:
        yield double
    assert not double.server_errors, double.server_errors[0]


def _configure(mp, hub) -> None:
    for name, value in {"EDGEGATE_QAIHUB_POLL_S": "0.01", "QAIHUB_API_TOKEN": TOKEN,
                        "EDGEGATE_QAIHUB_API_URL": hub.url}.items():
        mp.setenv(name, value)


@pytest.fixture
def env(hub, monkeypatch):
    """The shared double, reset, and this process configured to reach it (botocore too, never real AWS)."""
    hub.clear_failures()
    hub.hold_running_s = 0
    hub.s3 = type(hub.s3)()
    hub.reset_counts()
    _configure(monkeypatch, hub)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", hub.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return hub


@pytest.fixture(scope="module")
def _probed_template(hub, tmp_path_factory):
    from edgegate_cli.backends.registry import get_backend
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    path = tmp_path_factory.mktemp("qaihub-faults") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _configure(mp, hub)
        ws = open_workspace(Home(path, "--home"))
        probe_backend(ws, "qaihub", lambda *_: None, backend=get_backend("qaihub", ws=ws, devices=DEVICES))
        ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ws.db.close()
    return path


@pytest.fixture
def probed(_probed_template, fresh_home, env):
    shutil.copytree(_probed_template, fresh_home)
    return fresh_home


def pipeline(path, *, devices=tuple(DEVICES), policy=""):
    path.write_text(f"name: {path.stem}\nbackend: qaihub\ndevices: {json.dumps(list(devices))}\n"
                    f"model: {{path: '{MODEL}'}}\nrun_policy: {{iterations: 30{policy}}}\n"
                    "gates: [{metric: latency_ms, op: '<=', value: 50}]\n")
    return path


def events(home, code: str) -> list[str]:
    con = sqlite3.connect(home / "state.db")
    try:
        rows = con.execute("select detail from run_events where detail like ? order by id", (code + ": %",)).fetchall()
    finally:
        con.close()
    return [r[0].removeprefix(code + ": ") for r in rows]


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_one_throttled_job_among_15_on_3_devices_passes_after_resubmission(invoke, probed, env, tmp_path):
    env.fail_jobs("The device farm throttled this job; retry later", kind="profile", device=S23,
                  failure_type="CLOUD_THROTTLED", times=1)
    result = invoke("run", pipeline(tmp_path / "throttled.yaml", policy=", repeats: 4"), "--json")
    outcome = json.loads(result.stdout)
    assert outcome["verdict"] == "passed"
    assert env.counts["jobs.create.profile"] == 16  # 3 devices x (1 warmup + 4 repeats), and one resubmission
    (event,) = events(probed, "AIHUB_RESUBMITTED")
    assert event.startswith(f"{S23}: AI Hub job (") and "(CLOUD_THROTTLED: The device farm throttled this job; " \
                                                        "retry later); resubmitted on the same device as j" in event
    invoke("keys", "generate")
    bundle = tmp_path / "evidence.zip"
    invoke("bundle", "create", outcome["run_id"], "--out", bundle)
    with zipfile.ZipFile(bundle) as zf:
        report = zf.read("report.md").decode()
        raws = [json.loads(zf.read(n)) for n in zf.namelist() if n.startswith("raw/")]
    (resubmitted,) = [r for r in raws if r["edgegate"].get("attempts")]
    assert resubmitted["edgegate"]["device"] == S23
    assert resubmitted["edgegate"]["attempts"][0]["failure_type"] == "CLOUD_THROTTLED"
    assert "## AI Hub resubmissions and notes" in report and "CLOUD_THROTTLED: The device farm throttled" in report
    invoke("verify", bundle)


def test_status_reads_failing_then_recovering_do_not_end_the_run(invoke, probed, env, tmp_path):
    """AI Hub answers 503 to the next 10 status reads: the SDK's first read gives up after its 7 tries (6 s with
    Retry-After: 1), the next one gets through after 3 more: the outage is recorded and the run passes."""
    pipe = pipeline(tmp_path / "outage.yaml", devices=[S24])
    invoke("run", pipe)  # compiles, so the next run reads no job status before it polls
    env.inject_http(503, endpoint="jobs.get", times=10, retry_after=1)
    result = invoke("run", pipe, "--json")
    assert json.loads(result.stdout)["verdict"] == "passed"
    assert env.counts["injected.503"] == 10
    (outage,) = events(probed, "AIHUB_STATUS_OUTAGE")
    assert outage.startswith(f"{S24}: AI Hub status reads are failing (Internal API failure. Qualcomm AI Hub is "
                             "unavailable right now.")
    (recovered,) = events(probed, "AIHUB_STATUS_RECOVERED")
    assert recovered.startswith(f"{S24}: AI Hub status reads work again after ")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fault_runs_end_with_their_codes_and_write_no_secret(invoke, env, fresh_home, tmp_path, monkeypatch):
    """Every fault run exits 0 or 3 (never 4) with its own code, and the token and the S3 credentials AI Hub
    handed out appear in no output, no byte of the home, and no bundle."""
    results = [invoke("probe", "--backend", "qaihub", "--device", S24, "--device", S23, "--json")]
    pipe = pipeline(tmp_path / "faults.yaml", devices=[S24, S23])
    secrets = [TOKEN]

    def run(expect: int, code: str | None):
        results.append(invoke("run", pipe, "--json", expect=expect))
        doc = json.loads(results[-1].stdout)
        assert (doc.get("error") or {}).get("code") == code, doc
        return doc

    offer = env.offer_s3_credentials(uploads=True, downloads=False,
                                     error=(400, "ExpiredToken", f"The provided token has expired ({TOKEN})."))
    secrets += offer.secrets
    run(3, "SUBMISSION_FAILED")  # S3 refused the model upload: nothing was compiled
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_closed_port()}")
    run(3, "SUBMISSION_FAILED")  # S3 unreachable: botocore's own retries (5-45 s), then a run error
    assert "AI Hub's storage (S3) could not be reached: Could not connect to the endpoint URL" in last_line(results[-1])
    env.s3 = type(env.s3)()
    env.fail_jobs(f"Throttled (token {TOKEN})", kind="profile", failure_type="CLOUD_THROTTLED", times=1)
    passed = run(0, None)
    env.fail_jobs(f"Error uploading to QDC: 403 Invalid Credentials (token {TOKEN})", kind="profile", device=S23,
                  times=1)
    run(3, "DEVICE_JOB_FAILED")
    assert "Invalid Credentials (token ***)" in last_line(results[-1])
    stale = sqlite3.connect(fresh_home / "state.db").execute("select target_model_id from aihub_compiles").fetchall()
    for (target,) in stale:
        env.fail_jobs(f"QNN version mismatch ({TOKEN})", kind="profile", failure_type="QNN_VERSION_MISMATCH",
                      model=target)
    run(0, None)  # recompiled once per device
    assert len(events(fresh_home, "AIHUB_RECOMPILED")) == 2
    env.clear_failures()
    env.set_profile(detail=False)
    try:
        run(3, "COLLECTION_FAILED")
    finally:
        env.set_profile(detail=True)
    invoke("keys", "generate")
    results.append(invoke("bundle", "create", passed["run_id"], "--out", tmp_path / "b.zip"))

    for result in results:
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
    written = [p for p in fresh_home.rglob("*") if p.is_file()] + [tmp_path / "b.zip"]
    assert len(written) > 20
    leaks = [(str(p), s[:6]) for p in written for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []


def test_a_device_without_qnn_exits_2_before_anything_is_uploaded(invoke, probed, env, tmp_path):
    before = list(env.devices)
    env.set_device_frameworks(S23, ("onnx", "tflite"))
    try:
        pipe = pipeline(tmp_path / "noqnn.yaml")
        result = invoke("run", pipe, expect=2)
    finally:
        env.devices = before
    assert last_line(result) == (
        f"Error [INVALID_INPUT]: {pipe}: $.devices[1]: '{S23}' does not run QNN models on AI Hub (its frameworks: "
        "onnx, tflite); EdgeGate compiles for QNN (--target_runtime qnn_dlc), so its jobs would fail after the "
        "compile was paid for (pick a device whose frameworks include qnn (`edgegate probe devices`))")
    assert (env.counts["models.create"], env.counts["jobs.create"]) == (0, 0)
