"""Issue 17: the faults the live AI Hub has, played by the double to the real, unpatched qai_hub SDK, and what
the qaihub backend does about each (qaihub_faults / _submit / _polling / _device / _payloads).

Fast by construction: polling starts at 10 ms, resubmission pauses are poll intervals, and the double's
outages are counted in requests. The few tests that wait on the SDK's own retries say how long.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from aihub_double import AIHubDouble
from conftest import REPO

from edgegate_cli.backends.base import MeasureRequest
from edgegate_cli.backends.qaihub.backend import QAIHubBackend
from edgegate_cli.backends.qaihub.catalog import CANDIDATES
from edgegate_cli.backends.qaihub.polling import next_interval
from edgegate_cli.errors import (
    BackendUnavailable,
    CollectionFailed,
    DeviceJobFailed,
    InvalidInput,
    RunTimeout,
    SubmissionFailed,
)
from edgegate_cli.measure.mapping import compute_metrics, derive_mapping
from edgegate_cli.store.home import Home
from edgegate_cli.store.workspace import open_workspace

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
S24, ELITE, X_ELITE = "Samsung Galaxy S24", "Snapdragon 8 Elite QRD", "Snapdragon X Elite CRD"
TOKEN = "eg-fault-token-5f1e0c9a7b3d2e4f"


@pytest.fixture
def hub(monkeypatch):
    with AIHubDouble(token=TOKEN, seed=17) as double:
        monkeypatch.setenv("QAIHUB_API_TOKEN", double.token)
        monkeypatch.setenv("EDGEGATE_QAIHUB_API_URL", double.url)
        monkeypatch.setenv("EDGEGATE_QAIHUB_POLL_S", "0.01")
        yield double
    assert not double.server_errors, double.server_errors[0]


@pytest.fixture
def ws(fresh_home):
    return open_workspace(Home(fresh_home, "--home"))


class Said(list):
    """A progress callback that keeps every line; `.events()` the (code, text) of the run events among them."""

    def __call__(self, text, *_args, **_kwargs) -> None:
        self.append(text)

    def events(self, code: str | None = None) -> list[str]:
        return [str(t) for t in self if getattr(t, "code", None) and code in (None, t.code)]


def request(device: str = S24, **overrides) -> MeasureRequest:
    fields = dict(run_id="run-fault", device=device, model_path=str(MODEL), model_form="onnx", iterations=40,
                  warmup=1, repeats=3, deadline=time.monotonic() + 60)
    return MeasureRequest(**{**fields, **overrides})


def measure(ws, said=None, **overrides):
    return QAIHubBackend(state_path=ws.home.db_path).measure(request(**overrides), said if said is not None else Said())


def job_of(hub, payload):
    return hub.store.jobs[payload.data["edgegate"]["job_id"]]


# ---- 1. one transient problem must not end the run ----------------------------------------------------------------

@pytest.mark.parametrize("failure_type", ["CLOUD_THROTTLED", "RUNTIME_INTERNAL_SERVICE_BUSY"])
def test_a_job_the_service_marks_retryable_is_resubmitted_on_the_same_device(hub, ws, failure_type):
    hub.fail_jobs("Device farm is busy, try again later", kind="profile", failure_type=failure_type,
                  name="repeat 2/3", times=1)
    said = Said()
    payloads = measure(ws, said)

    assert [p.repeat_index for p in payloads] == [0, 1, 2, 3]
    second = payloads[2].data["edgegate"]
    (failed,) = second["attempts"]
    assert failed["failure_type"] == failure_type and failed["reason"] == "Device farm is busy, try again later"
    assert hub.store.jobs[failed["job_id"]].failure_reason == failed["reason"]
    assert second["job_name"] == "edgegate run-fault repeat 2/3 #2"
    assert job_of(hub, payloads[2]).device.name == S24 and job_of(hub, payloads[2]).name == second["job_name"]
    assert "attempts" not in payloads[1].data["edgegate"]
    assert hub.counts["jobs.create.profile"] == 5
    assert said.events() == [f"{S24}: AI Hub job (repeat 2/3) {failed['job_id']} failed ({failure_type}: Device "
                             f"farm is busy, try again later); resubmitted on the same device as {second['job_id']} "
                             "(attempt 2 of 3)"]


def test_resubmission_is_bounded_and_the_error_names_every_attempt(hub, ws):
    hub.fail_jobs("Error uploading to QDC: status code=500", kind="profile", failure_type="QDC_API_ERROR",
                  name="warmup")
    with pytest.raises(DeviceJobFailed) as err:
        measure(ws)
    attempts = sorted((j for j in hub.store.jobs.values() if "warmup" in j.name), key=lambda j: j.created)
    assert [j.name for j in attempts] == ["edgegate run-fault warmup", "edgegate run-fault warmup #2",
                                          "edgegate run-fault warmup #3"]
    first, second, third = (j.job_id for j in attempts)
    assert err.value.message == (f"{S24}: AI Hub job (warmup) {third} failed: Error uploading to QDC: status code=500 "
                                 f"[QDC_API_ERROR] (attempt 3 of 3; earlier attempts: {first} (QDC_API_ERROR), "
                                 f"{second} (QDC_API_ERROR))")


def test_a_failure_of_the_model_is_not_resubmitted_and_says_its_type(hub, ws):
    hub.fail_jobs("Out of memory on the device", kind="profile", failure_type="RUNTIME_DEVICE_OOM", times=1)
    with pytest.raises(DeviceJobFailed, match=r"^Samsung Galaxy S24: AI Hub job \(warmup\) j\w+ failed: Out of "
                                              r"memory on the device \[RUNTIME_DEVICE_OOM\]$"):
        measure(ws)
    assert hub.counts["jobs.create.profile"] == 4


def test_a_throttled_compile_is_resubmitted_too(hub, ws):
    hub.fail_jobs("Throttled", kind="compile", failure_type="CLOUD_THROTTLED", times=1)
    said = Said()
    payloads = measure(ws, said)
    assert hub.counts["jobs.create.compile"] == 2 and len(payloads) == 4
    assert said.events("AIHUB_RESUBMITTED")[0].startswith(f"{S24}: AI Hub compile job j")


def test_a_status_outage_past_the_deadline_is_backend_unavailable_naming_it(hub, ws):
    """The SDK retries a persistent 503 for 6 s (Retry-After: 1, 7 tries) before it gives up on a read."""
    measure(ws)  # compiles: the second run needs no status read before polling
    hub.inject_http(503, endpoint="jobs.get", times=1000, retry_after=1)
    said = Said()
    with pytest.raises(BackendUnavailable) as err:
        measure(ws, said, deadline=time.monotonic() + 2)
    assert err.value.message.startswith(f"{S24}: AI Hub could not be read for the last ")
    assert err.value.message.endswith(" s, until the run timeout: Internal API failure. Qualcomm AI Hub is unavailable "
                                      f"right now. Please visit {hub.url} to check the service's status.")
    assert said.events("AIHUB_STATUS_OUTAGE")


def test_a_maintenance_page_instead_of_a_status_is_an_outage_that_passes(hub, ws):
    """A proxy answering 200 with HTML: the SDK raises a bare APIException at once (no retries of its own)."""
    measure(ws)
    hub.inject_http(200, endpoint="jobs.get", times=3, body="<html>Down for maintenance</html>")
    said = Said()
    assert len(measure(ws, said)) == 4
    (outage,) = said.events("AIHUB_STATUS_OUTAGE")
    assert outage == (f"{S24}: AI Hub status reads are failing (AI Hub answered with something that is not its API "
                      "(API request returned status code 200.; a proxy or maintenance page?)); polling on until the "
                      "run deadline")
    assert len(said.events("AIHUB_STATUS_RECOVERED")) == 1


def test_only_exceptions_raised_by_the_sdk_count_as_ai_hub_failures():
    from qai_hub import public_rest_api
    from qai_hub.client import ClientConfig

    from edgegate_cli.backends.qaihub.faults import from_sdk

    with pytest.raises(ValueError) as sdk:
        public_rest_api.get_job(ClientConfig(api_token="t"), "")  # the SDK's own "Invalid job_id"
    with pytest.raises(ValueError) as ours:
        int("not a number")
    assert from_sdk(sdk.value) and not from_sdk(ours.value)


def test_a_429_burst_on_job_creation_is_waited_out(hub, ws):
    """Seven 429s outlast the SDK's own backoff (~15 s, jittered): EdgeGate waits as AI Hub says, then submits."""
    hub.inject_http(429, endpoint="jobs.create", times=7, retry_after=0)
    said = Said()
    payloads = measure(ws, said, repeats=1)
    assert len(payloads) == 2 and hub.counts["injected.429"] == 7
    assert said.events() == [f"{S24}: compile job: AI Hub is rate-limiting submissions (Request was throttled. "
                             "Expected available in 0 seconds.); waiting 0 s"]


# ---- 2. the S3-credentials path: botocore errors are run errors ---------------------------------------------------

@pytest.fixture
def s3(hub, monkeypatch):
    """botocore pointed at the double's S3 endpoint, with no AWS configuration of the caller's."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", hub.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return hub


def test_an_s3_refusal_on_the_model_upload_is_submission_failed(s3, ws):
    s3.offer_s3_credentials(uploads=True, downloads=False,
                            error=(400, "ExpiredToken", "The provided token has expired."))
    with pytest.raises(SubmissionFailed) as err:
        measure(ws)
    assert err.value.message == ("model.onnx: upload: submission failed 3 times: AI Hub's storage (S3) refused the "
                                 "transfer: An error occurred (ExpiredToken) when calling the PutObject operation: The "
                                 "provided token has expired.")
    assert s3.counts["s3.request"] == 3 and s3.counts["jobs.create"] == 0


def test_an_s3_refusal_on_the_output_download_is_collection_failed_naming_the_job(s3, ws, tmp_path):
    import numpy as np

    x = np.zeros((1, 3, 64, 64), np.float32)
    np.savez(tmp_path / "inputs.npz", image=x)
    np.savez(tmp_path / "ref.npz", logits=np.zeros((1, 10), np.float32))
    s3.offer_s3_credentials(uploads=False, downloads=True, error=(403, "AccessDenied", "Access Denied"))
    with pytest.raises(CollectionFailed) as err:
        measure(ws, inputs_path=str(tmp_path / "inputs.npz"), reference_outputs=str(tmp_path / "ref.npz"))
    job = next(j for j in s3.store.jobs.values() if j.dataset_id)
    assert err.value.message == (f"{S24}: downloading the result of AI Hub job {job.job_id} (inference on the run's "
                                 "inputs) failed: AI Hub's storage (S3) refused the transfer: An error occurred (403) "
                                 "when calling the HeadObject operation: Forbidden")


def test_a_part_upload_without_an_etag_is_submission_failed(hub, ws):
    hub.omit_etag = True
    with pytest.raises(SubmissionFailed, match=r"^model.onnx: upload: submission failed 3 times: AI Hub's storage "
                                               r"accepted an upload part without an ETag \(ETag not received in "
                                               r"response for part number 0\)$"):
        measure(ws)


def test_an_empty_create_reply_is_retried_then_named(hub, ws):
    hub.refuse_creates("Device minutes exhausted for this billing period.", times=1)
    assert len(measure(ws, repeats=1)) == 2
    hub.refuse_creates("Device minutes exhausted for this billing period.", times=10)
    with pytest.raises(SubmissionFailed) as err:  # (job names are unique per run: AI Hub has none of these)
        measure(ws, repeats=1, run_id="run-fault-2")
    assert err.value.message == (f"{S24}: profile job (warmup): submission failed 3 times: Failed to create an "
                                 "inference job: Device minutes exhausted for this billing period.")


# ---- 3. polling: the detection lag stays bounded --------------------------------------------------------------------

def polls_until(first: float, horizon: float) -> list[float]:
    """The times the backend polls at, when every interval is exactly next_interval()."""
    times, t, rounds = [0.0], 0.0, 0
    while t < horizon:
        t += next_interval(first, rounds, t)
        times.append(t)
        rounds += 1
    return times


def test_a_compile_done_at_330_s_is_seen_by_363_s_not_635_s():
    polls = polls_until(5.0, 1200)
    assert min(t for t in polls if t >= 330) <= 363
    for done in range(1, 1200):  # any finish time: seen within 10 % of it (or the first interval, or 60 s)
        seen = min(t for t in polls if t >= done)
        assert seen - done <= max(5.0, min(60.0, 0.1 * done)) + 1e-9, done
    assert len(polls) < 60  # a 20-minute run polls each job fewer than 60 times
    assert polls_until(0.01, 1.0)[:4] == pytest.approx([0, 0.01, 0.02, 0.03])  # the first interval is a floor


def test_queued_jobs_and_unknown_states_are_polled_on(hub, ws):
    hub.queue_s, hub.odd_states = 0.2, [0, 777]  # UNSPECIFIED, then a state this SDK has never heard of
    assert len(measure(ws)) == 4
    hub.odd_states = [777] * 10_000
    with pytest.raises(RunTimeout, match=r"j\w+ \(UNSPECIFIED\)"):
        measure(ws, deadline=time.monotonic() + 0.5)


# ---- 4. a cached compile that fails on the device --------------------------------------------------------------------

def test_a_cached_compile_failing_with_a_version_mismatch_is_recompiled_once(hub, ws):
    first = measure(ws)
    stale = first[0].data["edgegate"]["target_model_id"]
    hub.fail_jobs("QNN version mismatch: the model was built with QAIRT 2.41", kind="profile",
                  failure_type="QNN_VERSION_MISMATCH", model=stale)
    hub.reset_counts()
    said = Said()
    payloads = measure(ws, said)

    assert hub.counts["jobs.create.compile"] == 1
    fresh = {p.data["edgegate"]["target_model_id"] for p in payloads}
    assert len(fresh) == 1 and stale not in fresh
    assert payloads[0].data["edgegate"]["recompiled_after"]["failure_type"] == "QNN_VERSION_MISMATCH"
    (event,) = said.events("AIHUB_RECOMPILED")
    assert f"failed on the cached compiled model {stale} (QNN_VERSION_MISMATCH: QNN version mismatch" in event
    rows = sqlite3.connect(ws.home.db_path).execute("select target_model_id from aihub_compiles").fetchall()
    assert rows == [(fresh.pop(),)]


def test_a_fresh_compile_failing_with_a_version_mismatch_is_not_recompiled(hub, ws):
    hub.fail_jobs("QNN version mismatch", kind="profile", failure_type="QNN_VERSION_MISMATCH")
    with pytest.raises(DeviceJobFailed, match=r"failed: QNN version mismatch \[QNN_VERSION_MISMATCH\]$"):
        measure(ws)
    assert hub.counts["jobs.create.compile"] == 1


def test_a_new_toolchain_on_ai_hub_means_a_new_compile(hub, ws):
    measure(ws)
    hub.qairt_version = "2.43.0.260115101010_200001"
    hub.reset_counts()
    payloads = measure(ws)
    assert hub.counts["jobs.create.compile"] == 1
    assert payloads[0].data["edgegate"]["toolchain"] == "QAIRT 2.43.0.260115101010_200001"
    versions = sqlite3.connect(ws.home.db_path).execute("select sdk_version from aihub_compiles").fetchall()
    assert sorted(versions) == [("0.56.0; QAIRT 2.42.0.251225135753_193295",),
                                ("0.56.0; QAIRT 2.43.0.260115101010_200001",)]


# ---- 5. payload shapes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("knobs", [{"minor_version": 1}, {"minor_version": 0}, {"major_version": 0}])
def test_a_profile_without_per_iteration_times_is_collection_failed_naming_the_job(hub, ws, knobs):
    hub.set_profile(**knobs)
    with pytest.raises(CollectionFailed) as err:
        measure(ws)
    job = next(j for j in hub.store.jobs.values() if j.name == "edgegate run-fault warmup")
    assert err.value.message == (f"{S24}: AI Hub job {job.job_id} (warmup) returned a profile without per-iteration "
                                 "times (no all_inference_times: AI Hub sent a ProfileDetail older than v1.2); latency "
                                 "cannot be measured from it")


def test_a_job_without_a_profile_is_collection_failed_not_a_dropped_repeat(hub, ws):
    hub.set_profile(detail=False)
    with pytest.raises(CollectionFailed, match=r"^Samsung Galaxy S24: AI Hub job j\w+ \(warmup\) finished without a "
                                               r"profile \(its result carries no ProfileDetail\)"):
        measure(ws)


def test_an_agreement_job_without_outputs_is_collection_failed(hub, ws, tmp_path):
    import numpy as np

    np.savez(tmp_path / "inputs.npz", image=np.zeros((1, 3, 64, 64), np.float32))
    np.savez(tmp_path / "ref.npz", logits=np.zeros((1, 10), np.float32))
    hub.omit_outputs = True
    with pytest.raises(CollectionFailed, match=r"\(inference on the run's inputs\) succeeded but AI Hub returned no "
                                               r"output data$"):
        measure(ws, inputs_path=str(tmp_path / "inputs.npz"), reference_outputs=str(tmp_path / "ref.npz"))


def test_short_sample_counts_and_empty_layer_details_are_noted_and_p90_needs_64(hub, ws):
    hub.set_profile(samples=20, layers=False)
    said = Said()
    payloads = measure(ws, said)
    data = [p.data for p in payloads if not p.warmup]
    assert data[0]["edgegate"]["notes"] == [
        "20 of 40 requested iterations were timed",
        "no per-layer detail (execution_detail is empty): npu_layer_fraction is unavailable for it"]
    assert said.events("AIHUB_PAYLOAD_NOTE")[0].startswith(f"{S24}: 20 of 40 requested iterations were timed (AI Hub "
                                                           "jobs j")
    mapping = derive_mapping("qaihub", data, CANDIDATES, unavailable={}, probe_run_id="p", created_at="now",
                             payload_format="edgegate.qaihub.v1")
    metrics = compute_metrics(data, {**mapping, "metrics": {**mapping["metrics"], "latency_p90_ms": {
        **mapping["metrics"]["latency_p90_ms"], "available": True}}})
    assert metrics["latency_ms"].available and metrics["latency_ms"].samples == 60
    assert (metrics["latency_p90_ms"].available, metrics["latency_p90_ms"].reason) == (
        False, "60 samples; needs at least 64")


def test_memory_ranges_depend_on_the_device_class_and_tiny_ones_are_noted(hub, ws):
    hub.set_profile(memory_model="device")
    phone = measure(ws, device=S24, repeats=1)[1].data
    board = measure(ws, device=X_ELITE, repeats=1)[1].data
    mib = 2 ** 20
    assert 327 * mib <= phone["execution_summary"]["inference_memory_peak_range"][1] <= 362 * mib
    assert board["execution_summary"]["inference_memory_peak_range"][1] <= 3 * mib
    assert "notes" not in phone["edgegate"]
    assert board["edgegate"]["notes"][0].startswith("AI Hub's peak-memory estimate is at most ")


# ---- 6. devices ----------------------------------------------------------------------------------------------------

def test_a_device_without_qnn_is_refused_before_any_upload_or_compile(hub):
    hub.set_device_frameworks(S24, ("onnx", "tflite"))
    backend = QAIHubBackend()
    backend.check_model_form("onnx", "p.yaml")
    with pytest.raises(InvalidInput) as err:
        backend.check_devices([ELITE, S24], "p.yaml")
    assert err.value.message == ("p.yaml: $.devices[1]: 'Samsung Galaxy S24' does not run QNN models on AI Hub (its "
                                 "frameworks: onnx, tflite); EdgeGate compiles for QNN (--target_runtime qnn_dlc), so "
                                 "its jobs would fail after the compile was paid for")
    assert (hub.counts["models.create"], hub.counts["jobs.create"]) == (0, 0)
    backend.check_model_form("tflite", "p.yaml")
    backend.check_devices([S24], "p.yaml")  # a .tflite runs as uploaded: TFLite is what it needs
    hub.set_device_frameworks(ELITE, ("qnn",))
    backend = QAIHubBackend()  # a backend reads the device list once
    backend.check_model_form("tflite", "p.yaml")
    with pytest.raises(InvalidInput, match="'Snapdragon 8 Elite QRD' does not run TFLITE models on AI Hub"):
        backend.check_devices([ELITE], "p.yaml")


def test_a_name_in_the_wrong_case_is_refused_with_the_exact_name_first(hub):
    with pytest.raises(InvalidInput, match=r"'samsung galaxy s24' is not an AI Hub device now .*close matches: "
                                           r"'Samsung Galaxy S24', "):
        QAIHubBackend().check_devices(["samsung galaxy s24"], "p.yaml")


def test_a_family_device_is_warned_about_its_repeats_landing_on_different_phones(hub, ws):
    family = "Samsung Galaxy S24 (Family)"
    hub.set_profile(member_spread=0.1)
    said = Said()
    payloads = measure(ws, said, device=family, repeats=5)
    assert said.events("AIHUB_FAMILY_DEVICE") == [
        f"{family}: a \"(Family)\" name lets AI Hub run each job on any device of the family, so repeats may run on "
        "different models and vary more; pin one model name (such as 'Samsung Galaxy S24') for comparable repeats"]
    members = {job_of(hub, p).member.name for p in payloads}
    assert len(members) >= 2 and members <= {"Samsung Galaxy S24", "Samsung Galaxy S24+", "Samsung Galaxy S24 Ultra"}


# ---- 7. no duplicate jobs after an ambiguous POST -------------------------------------------------------------------

def test_a_failed_read_after_the_compile_post_adopts_the_job_instead_of_compiling_twice(hub, ws):
    """submit_compile_job POSTs, then GETs the job: that GET fails for 6 s (the SDK's 7 tries)."""
    hub.inject_http(503, endpoint="jobs.get", times=7, retry_after=1)
    said = Said()
    assert len(measure(ws, said)) == 4
    assert hub.counts["jobs.create.compile"] == 1
    (adopted,) = said.events("AIHUB_JOB_ADOPTED")
    assert adopted.startswith(f"{S24}: compile job: the submission failed (Internal API failure. Qualcomm AI Hub is "
                              "unavailable right now.")
    assert adopted.endswith("using it instead of submitting again")


# ---- 8. configuration and the SDK's odd answers ------------------------------------------------------------------

def test_client_ini_urls_and_default_project_apply_with_the_token_variable(hub, ws, monkeypatch, tmp_path):
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_url = {hub.url}\nweb_url = {hub.url}\ndefault_project = p4sm5r9t\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    monkeypatch.delenv("EDGEGATE_QAIHUB_API_URL")
    backend = QAIHubBackend(state_path=ws.home.db_path)
    assert (backend.settings.api_url, backend.settings.token_source, backend.settings.default_project) == (
        hub.url, "QAIHUB_API_TOKEN", "p4sm5r9t")
    backend.measure(request(repeats=1), Said())
    creates = [r.path for r in hub.requests if r.endpoint in ("models.create", "jobs.create")]
    assert creates and all(path.startswith("/api/v1/projects/p4sm5r9t/") for path in creates)


def test_a_compile_without_a_target_model_is_collection_failed_not_an_attribute_error(hub, ws):
    hub.omit_target_model = True
    with pytest.raises(CollectionFailed, match=r"^Samsung Galaxy S24: AI Hub compile job j\w+ succeeded but names no "
                                               r"compiled model$"):
        measure(ws)
