"""The AI Hub double's fault knobs (issue 17), each seen through the real, unpatched qai_hub SDK: what the SDK
itself does with the fault, before EdgeGate handles it (tests/test_qaihub_faults.py shows that part)."""

from __future__ import annotations

import botocore.exceptions
import pytest
import qai_hub
from aihub_double import AIHubDouble
from conftest import REPO
from qai_hub import public_api_pb2 as pb
from qai_hub import public_rest_api
from qai_hub.client import Device, JobStatus

MODEL = str(REPO / "examples" / "quickstart" / "model.onnx")
S24 = Device("Samsung Galaxy S24")


@pytest.fixture
def hub():
    with AIHubDouble(polls_before_done=0, seed=3) as double:
        yield double
    assert not double.server_errors, double.server_errors[0]


def test_the_failure_type_reaches_only_the_protobuf(hub):
    hub.fail_jobs("Throttled", kind="profile", failure_type="CLOUD_THROTTLED")
    client = hub.client()
    job = client.submit_inference_job(MODEL, S24, profile=True, retry=False)
    status = job.get_status()
    assert (status.failure, status.message) == (True, "Throttled")
    assert public_rest_api.get_job(client.config, job.job_id).failure_type == pb.JOB_FAILURE_TYPE_CLOUD_THROTTLED


def test_a_post_whose_answer_is_lost_is_retried_by_the_sdk_into_a_duplicate(hub):
    """The SDK's `backoff` retries a POST that got a 502; the double had created the job first (commit)."""
    hub.inject_http(502, endpoint="jobs.create", times=1, commit=True)
    hub.client().submit_compile_job(MODEL, S24, name="dup", options="--target_runtime qnn_dlc")
    assert [j.name for j in hub.store.jobs.values()] == ["dup", "dup"]


def test_odd_and_queued_states_are_running_to_the_sdk(hub):
    hub.odd_states, hub.queue_s = [0, 777], 60
    job = hub.client().submit_inference_job(MODEL, S24, profile=True, retry=False)
    states = [job.get_status().state for _ in range(3)]
    assert states == [JobStatus.State.UNSPECIFIED, JobStatus.State.UNSPECIFIED, JobStatus.State.CREATED]
    assert JobStatus(JobStatus.State.UNSPECIFIED).running


@pytest.mark.parametrize(("knobs", "has"), [
    ({}, {"all_inference_times", "inference_memory_peak_range"}),
    ({"minor_version": 1}, {"inference_memory_peak_range"}),
    ({"minor_version": 0}, set()),
    ({"major_version": 0}, set()),  # the legacy format: memory ranges present, as None
])
def test_profile_detail_versions_decide_the_keys(hub, knobs, has):
    hub.set_profile(**knobs)
    summary = hub.client().submit_inference_job(MODEL, S24, profile=True).download_profile()["execution_summary"]
    present = {k for k in ("all_inference_times", "inference_memory_peak_range") if summary.get(k) is not None}
    assert present == has
    assert ("all_inference_times" in summary) == ("all_inference_times" in has)


def test_no_detail_is_an_empty_dict_and_samples_can_differ_from_iterations(hub):
    client = hub.client()
    hub.set_profile(samples=7, layers=False)
    profile = client.submit_inference_job(MODEL, S24, profile=True, options="--max_profiler_iterations 50") \
        .download_profile()
    assert len(profile["execution_summary"]["all_inference_times"]) == 7 and profile["execution_detail"] == []
    hub.set_profile(detail=False)
    assert client.submit_inference_job(MODEL, S24, profile=True).download_profile() == {}


def test_s3_credentials_send_the_sdk_to_botocore(hub, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", hub.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    hub.offer_s3_credentials(error=(403, "AccessDenied", "Access Denied"))
    with pytest.raises(botocore.exceptions.ClientError, match=r"\(AccessDenied\) when calling the PutObject"):
        hub.client().upload_model(MODEL)
    assert hub.counts["s3.request"] == 1 and hub.counts["models.upload_complete_s3"] == 0


def test_sdk_escapes_a_missing_etag_an_empty_create_and_a_missing_target(hub):
    client = hub.client()
    hub.omit_etag = True
    with pytest.raises(AssertionError, match="ETag not received"):
        client.upload_model(MODEL)
    hub.omit_etag = False
    model = client.upload_model(MODEL)
    hub.refuse_creates("Quota exceeded.")
    with pytest.raises(ValueError, match="^Failed to create an inference job: Quota exceeded.$"):
        client.submit_inference_job(model, S24, profile=True, retry=False)
    hub.omit_target_model = True
    job = client.submit_compile_job(model, S24, options="--target_runtime qnn_dlc")
    assert job.wait().success and job.get_target_model() is None


def test_devices_without_qnn_pass_compile_submission_but_not_profiling(hub):
    hub.set_device_frameworks("Samsung Galaxy S24", ("onnx",))
    client = hub.client()
    target = client.submit_compile_job(MODEL, S24, options="--target_runtime qnn_dlc").get_target_model()
    with pytest.raises(qai_hub.UserError, match="does not support QNN model input"):
        client.submit_inference_job(target, S24, profile=True)


def test_family_jobs_land_on_members(hub):
    family = Device("Samsung Galaxy S24 (Family)")
    jobs = [hub.client().submit_inference_job(MODEL, family, profile=True, retry=False) for _ in range(6)]
    members = {hub.store.jobs[j.job_id].member.name for j in jobs}
    assert len(members) >= 2 and all(m.startswith("Samsung Galaxy S24") for m in members)
