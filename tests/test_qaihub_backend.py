"""The qaihub backend on the real, unpatched qai_hub SDK, against the AI Hub protocol double.

The SDK reaches the double only through configuration (QAIHUB_API_TOKEN, EDGEGATE_QAIHUB_API_URL, or a
client.ini): nothing in qai_hub or edgegate_cli is patched. Polling starts at 10 ms so jobs that finish on
their 3rd status GET take a few tens of milliseconds.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time

import numpy as np
import pytest
import qai_hub
from aihub_double import AIHubDouble
from conftest import REPO
from qai_hub.client import RateLimitedError

from edgegate_cli.backends.base import MeasureRequest
from edgegate_cli.backends.qaihub.backend import QAIHubBackend
from edgegate_cli.backends.qaihub.catalog import CANDIDATES
from edgegate_cli.backends.qaihub.jobs import Stopped, poll_jobs, submit_with_retry
from edgegate_cli.backends.registry import get_backend
from edgegate_cli.config import qaihub_settings
from edgegate_cli.context import Context
from edgegate_cli.errors import (
    BackendUnavailable,
    DeviceJobFailed,
    InvalidInput,
    RunTimeout,
    SubmissionFailed,
)
from edgegate_cli.measure.mapping import compute_metrics, derive_mapping
from edgegate_cli.store.home import Home
from edgegate_cli.store.workspace import open_workspace

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
S24, S23, ELITE = "Samsung Galaxy S24", "Samsung Galaxy S23", "Snapdragon 8 Elite QRD"
TOKEN = "eg-test-token-0123456789abcdef"


@pytest.fixture
def hub(monkeypatch):
    with AIHubDouble(token=TOKEN, seed=5) as double:
        monkeypatch.setenv("QAIHUB_API_TOKEN", double.token)
        monkeypatch.setenv("EDGEGATE_QAIHUB_API_URL", double.url)
        monkeypatch.setenv("EDGEGATE_QAIHUB_POLL_S", "0.01")
        yield double
    assert not double.server_errors, double.server_errors[0]


@pytest.fixture
def ws(fresh_home):
    return open_workspace(Home(fresh_home, "--home"))


def request(device: str = S24, **overrides) -> MeasureRequest:
    fields = dict(run_id="run-test", device=device, model_path=str(MODEL), model_form="onnx", iterations=40,
                  warmup=1, repeats=3, deadline=time.monotonic() + 60)
    return MeasureRequest(**{**fields, **overrides})


def noop(*_args, **_kwargs) -> None:
    pass


# ---- configuration ------------------------------------------------------------------------------------------

def test_settings_come_from_the_token_variable_and_the_url_override(hub):
    settings = qaihub_settings(Context())
    assert (settings.api_token, settings.api_url, settings.web_url) == (TOKEN, hub.url, hub.url)
    assert (settings.token_source, settings.poll_s) == ("QAIHUB_API_TOKEN", 0.01)
    assert TOKEN not in repr(settings)


def test_without_a_token_or_client_ini_the_error_says_how_to_set_one(monkeypatch, tmp_path):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "nowhere.ini"))
    with pytest.raises(InvalidInput) as err:
        get_backend("qaihub").check_devices([S24], "p.yaml")
    assert err.value.message == ("no AI Hub API token: QAIHUB_API_TOKEN is not set and there is no "
                                 f"{tmp_path}/nowhere.ini")
    assert err.value.hint == ("export QAIHUB_API_TOKEN=<your token> (AI Hub: Account > Settings > API Token), or run "
                              "`qai-hub configure --api_token <your token>` to write the SDK's client.ini")


def test_the_sdks_client_ini_is_the_fallback_and_stays_quiet(hub, monkeypatch, tmp_path, capsys):
    """No QAIHUB_API_TOKEN: the token and URLs come from the SDK's client.ini (verbose there is ignored)."""
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {hub.token}\napi_url = {hub.url}\nweb_url = {hub.url}\nverbose = True\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    monkeypatch.delenv("QAIHUB_API_TOKEN")
    monkeypatch.delenv("EDGEGATE_QAIHUB_API_URL")
    backend = QAIHubBackend()
    assert backend.settings.token_source == str(ini)
    assert S24 in {d.name for d in backend.list_devices()}
    assert capsys.readouterr().out == ""


def test_malformed_url_and_poll_interval_are_invalid_input(hub, monkeypatch):
    monkeypatch.setenv("EDGEGATE_QAIHUB_API_URL", "127.0.0.1:8000")
    with pytest.raises(InvalidInput, match=r"^EDGEGATE_QAIHUB_API_URL: '127.0.0.1:8000' is not an http\(s\) URL"):
        qaihub_settings(Context())
    monkeypatch.setenv("EDGEGATE_QAIHUB_API_URL", "https://proxy.example/aihub")
    assert qaihub_settings(Context()).api_url == "https://proxy.example/aihub/"  # the SDK urljoins onto it
    monkeypatch.setenv("EDGEGATE_QAIHUB_POLL_S", "0")
    with pytest.raises(InvalidInput, match=r"^EDGEGATE_QAIHUB_POLL_S='0': the first poll interval"):
        qaihub_settings(Context())


# ---- devices ----------------------------------------------------------------------------------------------------

def test_unknown_or_retired_device_names_its_close_matches(hub):
    hub.remove_device("Samsung Galaxy S24 (Family)")
    with pytest.raises(InvalidInput) as err:
        QAIHubBackend().check_devices([S24, "Samsung Galaxy S24 (Family)"], "p.yaml")
    assert err.value.message == (
        "p.yaml: $.devices[1]: 'Samsung Galaxy S24 (Family)' is not an AI Hub device now (AI Hub renames and "
        "retires devices); close matches: 'Samsung Galaxy S23 (Family)', 'Samsung Galaxy S22 (Family)', "
        "'Samsung Galaxy S21 (Family)'")
    assert err.value.hint == "`edgegate probe devices` lists every AI Hub device"
    assert hub.counts["devices.list"] == 1 and hub.counts["jobs.create"] == 0


def test_device_list_carries_chipset_os_and_frameworks(hub):
    devices = {d.name: d for d in QAIHubBackend().list_devices()}
    s24 = devices[S24]
    assert (s24.os, s24.chipset, s24.frameworks) == ("14", "qualcomm-snapdragon-8gen3", ["onnx", "qnn", "tflite"])
    assert "hexagon:v75" in s24.attributes


def test_a_refused_token_is_auth_refused_and_never_printed(hub, monkeypatch):
    monkeypatch.setenv("QAIHUB_API_TOKEN", "eg-wrong-token-fedcba9876543210")
    with pytest.raises(BackendUnavailable) as err:
        QAIHubBackend().check_devices([S24], "p.yaml")
    assert (err.value.code, int(err.value.exit_code)) == ("AUTH_REFUSED", 3)
    assert err.value.message == ("AI Hub refused the API token from QAIHUB_API_TOKEN (HTTP 401: the token is bad "
                                 "or expired)")
    assert "eg-wrong-token" not in err.value.message + err.value.hint
    assert hub.counts["auth.refused"] == 1


def test_genai_models_are_refused_by_form():
    with pytest.raises(InvalidInput, match="^p.yaml: the qaihub backend runs ONNX, AIMET, TorchScript and TFLite"):
        QAIHubBackend().check_model_form("genai", "p.yaml")


# ---- measuring --------------------------------------------------------------------------------------------------

def test_measure_compiles_once_then_profiles_warmup_and_repeats(hub, ws):
    payloads = QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)

    assert [(p.repeat_index, p.warmup) for p in payloads] == [(0, True), (1, False), (2, False), (3, False)]
    assert (hub.counts["models.uploaded"], hub.counts["jobs.create.compile"], hub.counts["jobs.create.profile"]) == (
        1, 1, 4)
    first = payloads[1].data
    times = first["execution_summary"]["all_inference_times"]
    assert len(times) == 40 and all(isinstance(t, int) for t in times)  # --max_profiler_iterations 40
    assert isinstance(first["execution_summary"]["inference_memory_peak_range"], list)  # lists, not tuples
    assert first["edgegate"]["job_kind"] == "profile" and first["edgegate"]["sdk_version"] == "0.56.0"
    assert first["edgegate"]["label"] == "repeat 1/3"
    jobs = [hub.store.jobs[p.data["edgegate"]["job_id"]] for p in payloads]
    assert {j.options for j in jobs} == {"--max_profiler_iterations 40"}
    assert [j.name for j in jobs] == [
        "edgegate run-test warmup", "edgegate run-test repeat 1/3", "edgegate run-test repeat 2/3",
        "edgegate run-test repeat 3/3"]


def test_metrics_through_the_candidate_mapping_are_in_ms_and_mib(hub, ws):
    hub.set_profile(median_us=12_500, cv=0.01, job_jitter=0.0, outlier_rate=0.0, peak_memory_bytes=300 * 2**20,
                    npu_fraction=0.5)
    payloads = QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    data = [p.data for p in payloads if not p.warmup]
    mapping = derive_mapping("qaihub", data, CANDIDATES, unavailable={}, probe_run_id="p", created_at="now",
                             payload_format="edgegate.qaihub.v1")
    metrics = compute_metrics(data, mapping)
    assert metrics["latency_ms"].value == pytest.approx(12.5, rel=0.01)  # the median, not the minimum
    assert metrics["latency_ms"].value > min(statistics.median(d["execution_summary"]["all_inference_times"])
                                             for d in data) * 0.001 * 0.99
    assert metrics["peak_memory_mb"].value == 300.0
    units = [layer["compute_unit"] for layer in data[0]["execution_detail"]]
    assert set(units) == {"NPU", "CPU"} and metrics["npu_layer_fraction"].value == units.count("NPU") / len(units)
    assert metrics["throughput_ips"].value == pytest.approx(80, rel=0.01)
    assert metrics["latency_p90_ms"].samples == 120


def test_rerun_uses_the_cache_zero_uploads_zero_compiles(hub, ws):
    QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    hub.reset_counts()
    QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    assert (hub.counts["models.created"], hub.counts["jobs.create.compile"], hub.counts["jobs.create.profile"]) == (
        0, 0, 4)
    rows = sqlite3.connect(ws.home.db_path).execute(
        "select api_url, device, options, sdk_version from aihub_compiles").fetchall()
    assert rows == [(hub.url, S24, "--target_runtime qnn_dlc", f"0.56.0; QAIRT {hub.qairt_version}")]


def test_a_cached_id_ai_hub_no_longer_knows_is_uploaded_again(hub, ws):
    backend = QAIHubBackend(state_path=ws.home.db_path)
    from edgegate_cli.backends.qaihub.models import model_digest

    backend.cache.put_model(model_digest(MODEL), "mgone0000")
    backend.measure(request(), noop)
    assert hub.counts["models.uploaded"] == 1
    assert backend.cache.model_id(model_digest(MODEL)) != "mgone0000"


def test_a_failed_job_names_the_device_and_ai_hubs_reason_redacted(hub, ws):
    reason = f"Failed to profile the model: QNN graph execute error. Error code: 6001 (token {TOKEN})"
    hub.fail_jobs(reason, kind="profile", device=S24, times=1)
    with pytest.raises(DeviceJobFailed) as err:
        QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    job_id = err.value.message.split("AI Hub job (warmup) ")[1].split(" ")[0]
    assert err.value.message == (f"{S24}: AI Hub job (warmup) {job_id} failed: Failed to profile the model: QNN graph "
                                 "execute error. Error code: 6001 (token ***)")
    assert err.value.hint == f"see {hub.url}/jobs/{job_id}/"


def test_a_failed_compile_stops_before_profiling(hub, ws):
    hub.fail_jobs("QAIRT converter/quantizer failed with exit code 1", kind="compile")
    with pytest.raises(DeviceJobFailed, match=r"^Samsung Galaxy S24: AI Hub compile job j\w+ failed: QAIRT converter"):
        QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    assert hub.counts["jobs.create.profile"] == 0


def test_jobs_still_running_at_the_deadline_time_out(hub, ws):
    hub.hold_running_s = 30
    started = time.monotonic()
    with pytest.raises(RunTimeout, match=r"^Samsung Galaxy S24: compile: AI Hub job\(s\) j\w+ \(OPTIMIZING_MODEL\) "
                                         r"did not finish before the run timeout$"):
        QAIHubBackend(state_path=ws.home.db_path).measure(request(deadline=time.monotonic() + 0.5), noop)
    assert time.monotonic() - started < 5


def test_polling_backs_off_but_stays_within_a_tenth_of_the_wait(hub):
    """A job held 1 s, first interval 10 ms: intervals double, then grow as 10 % of the time waited, so the
    job is polled a few dozen times (not every 10 ms: 100), and seen soon after it finished."""
    hub.hold_running_s = 1.0
    backend = QAIHubBackend()
    job = backend.client.submit_inference_job(str(MODEL), qai_hub.Device(S24), profile=True, retry=False)
    hub.reset_counts()
    statuses = poll_jobs({0: job}, deadline=time.monotonic() + 30, first_interval=0.01, settings=backend.settings,
                         describe=S24)
    assert statuses[0].success
    assert 8 <= hub.counts["jobs.get"] <= 45  # the exact schedule: test_qaihub_faults.py (no clock here)


def test_a_set_stop_event_makes_a_device_give_up_at_its_next_poll(hub, ws):
    hub.hold_running_s = 30
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Stopped):
        QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop, stop=stop)


def test_output_agreement_job_runs_on_the_runs_inputs(hub, ws, tmp_path):
    import onnxruntime as ort

    hub.output_rel_noise = 1e-4
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", image=x)
    logits = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.savez(tmp_path / "ref.npz", logits=logits)

    payloads = QAIHubBackend(state_path=ws.home.db_path).measure(request(
        inputs_path=str(tmp_path / "inputs.npz"), reference_outputs=str(tmp_path / "ref.npz")), noop)

    extra = payloads[-1]
    assert (extra.repeat_index, extra.warmup, extra.data["edgegate"]["job_kind"]) == (4, False, "inference")
    outputs = extra.data["outputs"]
    assert outputs["compared"] == ["logits"] and outputs["cosine"] > 0.9999 and outputs["max_abs_err"] < 0.01
    assert (hub.counts["datasets.created"], hub.counts["jobs.create.inference"]) == (1, 5)


# ---- submission ------------------------------------------------------------------------------------------------

def test_submission_is_retried_on_a_transient_failure_and_waits_out_rate_limits(hub):
    settings, calls, said = qaihub_settings(Context()), [], []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise qai_hub.InternalError("Internal API failure.\n┌──┐\n| AI Hub is unavailable right now. |\n└──┘")
        if len(calls) == 2:
            raise RateLimitedError("Request was throttled. Expected available in 0 seconds.")
        return "job"

    assert submit_with_retry(flaky, f"{S24}: profile job (warmup)", settings, said.append) == "job"
    assert said == [f"{S24}: profile job (warmup): AI Hub failed (InternalError); retrying (attempt 2 of 3)",
                    f"{S24}: profile job (warmup): AI Hub is rate-limiting submissions (Request was throttled. "
                    "Expected available in 0 seconds.); waiting 0 s"]
    assert said[1].code == "AIHUB_RATE_LIMITED"  # a run event, not just a progress line

    def down():
        raise RateLimitedError("Request was throttled.")  # qai_hub.client's: not exported at the top

    started = time.monotonic()
    with pytest.raises(SubmissionFailed) as err:  # the SDK's next wait (20 s) would pass the deadline
        submit_with_retry(down, f"{S24}: profile job (warmup)", settings, noop, deadline=time.monotonic() + 5)
    assert err.value.message == (f"{S24}: profile job (warmup): AI Hub was still rate-limiting submissions at the "
                                 "deadline: Request was throttled.")
    assert time.monotonic() - started < 1


def test_a_refused_submission_is_not_retried(hub, ws):
    hub.inject_http(400, endpoint="jobs.create", body="Invalid option --max_profiler_iterations")
    with pytest.raises(SubmissionFailed) as err:
        QAIHubBackend(state_path=ws.home.db_path).measure(request(), noop)
    assert err.value.message == ("Samsung Galaxy S24: compile job: AI Hub refused the submission: Invalid option "
                                 "--max_profiler_iterations")
    assert hub.counts["jobs.create"] == 1


# ---- state ------------------------------------------------------------------------------------------------------

def test_m003_adds_the_ai_hub_cache_tables_without_a_token_column(ws):
    assert ws.db["aihub_models"].columns_dict == {"api_url": str, "model_sha256": str, "model_id": str,
                                                  "created_at": str}
    assert ws.db["aihub_compiles"].pks == ["api_url", "model_sha256", "device", "options", "sdk_version"]
    assert not any("token" in c for t in ("aihub_models", "aihub_compiles") for c in ws.db[t].columns_dict)


def test_payloads_are_plain_json(hub, ws):
    payloads = QAIHubBackend(state_path=ws.home.db_path).measure(request(repeats=1), noop)
    for p in payloads:
        assert json.loads(json.dumps(p.data)) == p.data


def test_a_tflite_model_is_profiled_as_uploaded_without_a_compile_job(hub, ws, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    backend = QAIHubBackend(state_path=ws.home.db_path)
    payloads = backend.measure(request(model_path=str(model), model_form="tflite", repeats=1), noop)
    assert len(payloads) == 2
    assert (hub.counts["models.uploaded"], hub.counts["jobs.create.compile"], hub.counts["jobs.create.profile"]) == (
        1, 0, 2)
