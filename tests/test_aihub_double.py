"""The real, unpatched qai_hub 0.56 SDK end to end against the AI Hub protocol double.

Nothing in qai_hub is patched or mocked: the SDK is pointed at the double only through its public
`ClientConfig(api_token=..., api_url=..., web_url=...)`. Jobs become final on a counted status GET, so
the tests poll with `job.get_status()` (one GET each) or use a double whose jobs are final on the first
GET; `job.wait()` itself sleeps 10 s between polls and is only called once a job is final.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import qai_hub
import requests
from aihub_double import AIHubDouble
from onnx import TensorProto, helper, numpy_helper
from qai_hub import public_api_pb2 as pb
from qai_hub import public_rest_api
from qai_hub.client import ClientConfig, Device, SourceModelType

S24 = "Samsung Galaxy S24 (Family)"


def _graph(rng_seed: int = 0):
    w = np.random.default_rng(rng_seed).standard_normal((4, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="/fc/MatMul"),
             helper.make_node("Relu", ["h"], ["y"], name="/act/Relu")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(_graph(), str(path))
    return path


@pytest.fixture
def hub():
    with AIHubDouble(polls_before_done=0, seed=7) as double:
        yield double
    assert not double.server_errors, double.server_errors[0]


def _poll(job, limit: int = 10) -> list[str]:
    """Poll like a gating tool would (one status GET per call) until final; return the codes seen."""
    codes = []
    for _ in range(limit):
        status = job.get_status()
        codes.append(status.code)
        if status.finished:
            return codes
    raise AssertionError(f"job never finished: {codes}")


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


# ---- configuration, devices ---------------------------------------------------------------------------------

def test_sdk_reaches_the_double_only_through_client_config(hub):
    config = ClientConfig(api_token=hub.token, api_url=hub.url, web_url=hub.url, verbose=False)
    client = qai_hub.Client(config=config)

    devices = client.get_devices()

    names = {d.name for d in devices}
    assert {S24, "Samsung Galaxy S24", "Snapdragon 8 Elite QRD", "SA8775P ADP"} <= names
    s24 = next(d for d in devices if d.name == S24)
    assert s24.os == "14"
    assert {"chipset:qualcomm-snapdragon-8gen3", "framework:tflite", "framework:onnx", "framework:qnn",
            "os:android", "format:phone"} <= set(s24.attributes)
    assert all(a.count(":") == 1 for d in devices for a in d.attributes)  # `qai-hub list-devices` splits on ":"
    assert hub.counts["devices.list"] == 1
    assert hub.requests[-1].path == "/api/v1/devices/"


def test_device_filters_follow_ai_hub_semantics(hub):
    client = hub.client()

    gen3 = client.get_devices(attributes=["chipset:qualcomm-snapdragon-8gen3"])
    assert {d.name for d in gen3} == {S24, "Samsung Galaxy S24", "Samsung Galaxy S24 Ultra", "Samsung Galaxy S24+"}
    assert [d.os for d in client.get_devices(name="Samsung Galaxy S21")] == ["11", "12"]
    assert {d.os for d in client.get_devices(os="[14,15)", attributes="os:android")} == {"14"}
    assert {d.name for d in client.get_devices(os="[11,)", attributes="os:windows")} == {
        "Snapdragon X Elite CRD", "Snapdragon X Plus 8-Core CRD"}
    assert client.get_devices(name="Snapdragon 8 Gen 3 QRD") == []  # retired name (ai-hub-models#189)
    assert "hexagon:v79" in client.get_device_attributes()
    assert {f.full_version for f in client.get_frameworks()} >= {"2.42.0.251225135753_193295"}


def test_device_resolution_picks_the_newest_os(hub, tiny_onnx):
    client = hub.client()
    job = client.submit_compile_job(str(tiny_onnx), Device("Samsung Galaxy S21"))
    assert (job.device.name, job.device.os) == ("Samsung Galaxy S21", "12")
    assert hub.counts["devices.select"] == 1


# ---- upload ------------------------------------------------------------------------------------------------

def test_upload_model_uses_presigned_multipart_puts(hub, tiny_onnx):
    hub.max_part_size = 64
    client = hub.client()

    model = client.upload_model(str(tiny_onnx))

    size = tiny_onnx.stat().st_size
    assert re.fullmatch(r"m[a-z0-9]{8}", model.model_id)
    assert model.model_type == SourceModelType.ONNX
    assert hub.counts["files.upload_part"] == -(-size // 64) > 1
    assert hub.store.models[model.model_id].data == tiny_onnx.read_bytes()
    assert hub.counts["models.create"] == hub.counts["models.upload_complete"] == 1
    fetched = client.get_model(model.model_id)
    assert fetched.input_spec == {None: [qai_hub.client.TensorSpec("x", "float32", (1, 4))]}


def test_presigned_urls_refuse_a_bad_signature(hub, tiny_onnx):
    client = hub.client()
    model = client.upload_model(str(tiny_onnx))
    upload_id = "0" * 32
    resp = requests.put(f"{hub.url}/_s3/upload/{model.model_id}/{upload_id}/1?X-Amz-Signature=forged", data=b"x",
                        timeout=5)
    assert resp.status_code == 403
    assert hub.counts["uploads.parts"] == 1  # only the SDK's own part


def test_onnx_with_external_weights_is_zipped_and_runs(hub, tmp_path):
    model_dir = tmp_path / "ext.onnx"
    model_dir.mkdir()
    onnx.save(_graph(), str(model_dir / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    client = hub.client()

    model = client.upload_model(str(model_dir))
    job = client.submit_inference_job(model, Device(S24), inputs={"x": [np.ones((1, 4), np.float32)]},
                                      profile=False)
    outputs = job.download_output_data()

    assert hub.store.models[model.model_id].is_directory
    expected = _ort(model_dir / "ext.onnx", np.ones((1, 4), np.float32))
    np.testing.assert_allclose(outputs["y"][0], expected, rtol=1e-2)


# ---- compile ------------------------------------------------------------------------------------------------

def test_compile_job_polls_through_states_and_yields_target_model(tiny_onnx, tmp_path):
    with AIHubDouble(polls_before_done=2) as hub:
        client = hub.client()
        job = client.submit_compile_job(str(tiny_onnx), Device(S24), options="--target_runtime tflite")
        assert re.fullmatch(r"j[a-z0-9]{8}", job.job_id)
        assert hub.counts["jobs.get"] == 1  # the SDK fetches the job right after creating it

        assert _poll(job) == ["OPTIMIZING_MODEL", "SUCCESS"]
        target = job.get_target_model()
        path = job.download_target_model(str(tmp_path))

        assert target.model_type == SourceModelType.TFLITE
        assert target.input_spec == {None: [qai_hub.client.TensorSpec("x", "float32", (1, 4))]}
        assert Path(path).read_bytes()[4:8] == b"TFL3"
        assert job.url == f"{hub.url}/jobs/{job.job_id}/"
        assert hub.counts["jobs.create.compile"] == 1


def test_compile_to_onnx_serves_the_source_model(hub, tiny_onnx, tmp_path):
    client = hub.client()
    job = client.submit_compile_job(str(tiny_onnx), Device(S24), options="--target_runtime onnx")
    path = job.download_target_model(str(tmp_path / "compiled"))
    assert Path(path).read_bytes() == tiny_onnx.read_bytes()


def test_bad_option_value_is_refused_at_creation(hub, tiny_onnx):
    client = hub.client()
    with pytest.raises(qai_hub.UserError, match="--target_runtime"):
        client.submit_compile_job(str(tiny_onnx), Device(S24), options="--target_runtime tensorrt")
    assert hub.counts["jobs.create.compile"] == 0


# ---- profile (inference with profiling) -------------------------------------------------------------------

def _profile(client, model, device: str, options: str = "--max_profiler_iterations 64"):
    job = client.submit_inference_job(model, Device(device), profile=True, options=options)
    _poll(job)
    return job, job.download_profile()


def test_profile_returns_microsecond_samples_with_a_spread(hub, tiny_onnx):
    client = hub.client()
    target = client.submit_compile_job(str(tiny_onnx), Device(S24)).get_target_model()

    job, profile = _profile(client, target, S24)

    summary = profile["execution_summary"]
    times = summary["all_inference_times"]
    assert len(times) == 64 and all(isinstance(t, int) and t > 0 for t in times)
    cv = statistics.stdev(times) / statistics.mean(times)
    assert 0.005 < cv < 0.2
    assert summary["estimated_inference_time"] == min(times)  # the summary is the fastest iteration
    lower, upper = summary["inference_memory_peak_range"]
    assert 0 < lower < upper
    assert summary["first_load_time"] > summary["warm_load_time"] > 0
    assert len(summary["all_first_load_times"]) == 1
    detail = profile["execution_detail"]
    assert [(layer["name"], layer["type"], layer["compute_unit"]) for layer in detail] == [
        ("/fc/MatMul", "FULLY_CONNECTED", "NPU"), ("/act/Relu", "RELU", "NPU")]
    assert all(layer["execution_time"] > 0 and layer["execution_cycles"] > 0 for layer in detail)
    assert hub.counts["jobs.create.profile"] == 1


def test_profile_numbers_depend_on_device_and_are_deterministic_per_job(tiny_onnx):
    def medians(seed):
        with AIHubDouble(polls_before_done=0, seed=seed) as hub:
            client = hub.client()
            model = client.upload_model(str(tiny_onnx))
            out = {}
            for device in ("Snapdragon 8 Elite QRD", "Samsung Galaxy S24", "Samsung Galaxy S23"):
                job, profile = _profile(client, model, device)
                out[device] = (job.job_id, statistics.median(profile["execution_summary"]["all_inference_times"]))
            return out

    first, again, other_seed = medians(1), medians(1), medians(2)
    assert first == again  # same job ids -> same samples
    assert [v[0] for v in first.values()] != [v[0] for v in other_seed.values()]
    elite, s24, s23 = (v[1] for v in first.values())
    assert elite < s24 < s23


def test_set_profile_controls_median_spread_and_npu_share(hub, tiny_onnx):
    hub.set_profile(median_us=12_500, cv=0.02, job_jitter=0.0, outlier_rate=0.0)
    hub.set_profile("Samsung Galaxy S24", npu_fraction=0.5, peak_memory_bytes=300 * 2**20)
    client = hub.client()
    model = client.upload_model(str(tiny_onnx))

    _, profile = _profile(client, model, "Samsung Galaxy S24", options="--max_profiler_iterations 200")

    times = profile["execution_summary"]["all_inference_times"]
    assert statistics.median(times) == pytest.approx(12_500, rel=0.01)
    assert statistics.stdev(times) / statistics.mean(times) == pytest.approx(0.02, rel=0.25)
    assert profile["execution_summary"]["inference_memory_peak_range"][1] == 300 * 2**20
    assert [layer["compute_unit"] for layer in profile["execution_detail"]] == ["NPU", "CPU"]


def test_profile_with_cpu_compute_unit_option(hub, tiny_onnx):
    client = hub.client()
    _, profile = _profile(client, hub.client().upload_model(str(tiny_onnx)), S24, "--compute_unit cpu")
    assert {layer["compute_unit"] for layer in profile["execution_detail"]} == {"CPU"}
    assert len(profile["execution_summary"]["all_inference_times"]) == 100  # the SDK's documented default


def test_download_profile_to_file_writes_json_lists(hub, tiny_onnx, tmp_path):
    client = hub.client()
    job = client.submit_inference_job(str(tiny_onnx), Device(S24), profile=True)
    path = job.download_profile(str(tmp_path / "profile.json"))
    data = json.loads(Path(path).read_text())
    assert isinstance(data["execution_summary"]["inference_memory_peak_range"], list)
    job.set_name("renamed")
    summaries = client.get_job_summaries(limit=5)
    assert (summaries[0].job_id, summaries[0].name) == (job.job_id, "renamed")
    assert summaries[0].estimated_inference_time == data["execution_summary"]["estimated_inference_time"]


# ---- inference outputs ----------------------------------------------------------------------------------------

def test_inference_outputs_are_the_model_outputs(hub, tiny_onnx):
    hub.output_rel_noise = 0.0
    client = hub.client()
    target = client.submit_compile_job(str(tiny_onnx), Device(S24)).get_target_model()
    xs = [np.full((1, 4), v, np.float32) for v in (1.0, -2.0, 0.5)]

    job = client.submit_inference_job(target, Device(S24), inputs={"x": xs}, profile=False)
    outputs = job.download_output_data()

    assert list(outputs) == ["y"] and len(outputs["y"]) == 3
    for x, y in zip(xs, outputs["y"], strict=True):
        np.testing.assert_array_equal(y, _ort(tiny_onnx, x))
    assert job.shapes == {"x": ((1, 4), "float32")}
    assert hub.counts["datasets.create"] == 1 and hub.counts["datasets.download"] == 1
    assert job.download_profile()["execution_detail"] == []  # profiling off: no per-layer detail


def test_inference_outputs_carry_device_noise_by_default(hub, tiny_onnx):
    client = hub.client()
    xs = [np.array([[1.0, 2.0, 3.0, 4.0]], np.float32), np.array([[-1.0, -2.0, -3.0, -4.0]], np.float32)]
    job = client.submit_inference_job(str(tiny_onnx), Device(S24), inputs={"x": xs}, profile=False)
    ys = np.concatenate(job.download_output_data()["y"])
    reference = np.concatenate([_ort(tiny_onnx, x) for x in xs])
    assert np.count_nonzero(reference) >= 3
    assert not np.array_equal(ys, reference)
    np.testing.assert_allclose(ys, reference, rtol=1e-2)
    assert np.array_equal(ys == 0, reference == 0)  # multiplicative noise keeps ReLU zeros


def test_dataset_that_does_not_fit_the_model_fails_the_job(hub, tiny_onnx):
    client = hub.client()
    job = client.submit_inference_job(str(tiny_onnx), Device(S24), inputs={"image": [np.ones((1, 4), np.float32)]},
                                      profile=False)
    status = job.wait()
    assert status.failure and "do not match the model's inputs" in status.message


# ---- failures ---------------------------------------------------------------------------------------------------

def test_injected_failure_reaches_the_sdk_verbatim(hub, tiny_onnx, tmp_path):
    reason = ("Failed to profile the model: Non-zero status code returned while running QNN_1 node. "
              "Status Message: QNN graph execute error. Error code: 6001")
    hub.fail_jobs(reason, kind="profile", device="Samsung Galaxy S24", failure_type="RUNTIME_DEVICE_OOM", times=1)
    client = hub.client()
    model = client.upload_model(str(tiny_onnx))

    failed = client.submit_inference_job(model, Device("Samsung Galaxy S24"), profile=True)
    status = failed.wait()  # final on the first status GET: returns without sleeping, does not raise

    assert (status.code, status.message, status.failure) == ("FAILED", reason, True)
    assert failed.download_profile() == {}
    assert failed.download_output_data() is None
    assert public_rest_api.get_job(client.config, failed.job_id).failure_type == pb.JOB_FAILURE_TYPE_RUNTIME_DEVICE_OOM
    logs = failed.download_job_logs(str(tmp_path / "logs"))
    assert any(reason in Path(p).read_text() for p in logs)
    assert client.submit_inference_job(model, Device("Samsung Galaxy S24"), profile=True).wait().success  # times=1
    other = client.submit_inference_job(model, Device(S24), profile=True)
    assert other.wait().success


def test_failed_compile_fails_the_inference_on_its_target(hub, tiny_onnx):
    hub.fail_jobs("QAIRT converter/quantizer failed with exit code 1", kind="compile")
    client = hub.client()
    compile_job = client.submit_compile_job(str(tiny_onnx), Device(S24))
    assert compile_job.get_status().message == "QAIRT converter/quantizer failed with exit code 1"

    job = client.submit_inference_job(compile_job.get_target_model(), Device(S24), profile=True)

    assert job.wait().message == "One or more inputs to this job failed to be produced."


def test_slow_jobs_stay_running_until_released(hub, tiny_onnx):
    hub.hold_running_s = 0.4
    client = hub.client()
    job = client.submit_inference_job(str(tiny_onnx), Device(S24), profile=True)
    first = job.get_status()
    assert first.pending or first.running
    time.sleep(0.5)
    assert job.get_status().success


def test_unknown_device_is_a_user_error(hub, tiny_onnx):
    assert hub.remove_device(S24) == 1
    client = hub.client()
    with pytest.raises(qai_hub.UserError, match=r"is not available"):
        client.submit_compile_job(str(tiny_onnx), Device(S24))
    assert hub.counts["jobs.create"] == 0 and hub.counts["models.create"] == 0


# ---- HTTP errors -------------------------------------------------------------------------------------------------

def test_wrong_token_is_refused_with_the_sdks_auth_error(hub):
    with pytest.raises(qai_hub.UserError, match="Failed to authenticate"):
        hub.client(token="not-the-token").get_devices()
    client = hub.client()
    client.get_devices()
    hub.token = "rotated"
    with pytest.raises(qai_hub.UserError, match="Failed to authenticate"):
        client.get_devices()
    assert hub.counts["auth.refused"] == 2
    assert hub.counts["devices.list"] == 3  # 401 is not retried


def test_429_with_retry_after_on_a_get_is_honoured(hub):
    hub.inject_http(429, endpoint="devices.list", retry_after=1)
    start = time.monotonic()
    assert hub.client().get_devices()
    assert 1.0 <= time.monotonic() - start < 5
    assert [(r.status, r.injected) for r in hub.requests] == [(429, True), (200, False)]


def test_429_on_job_creation_is_retried_by_the_sdk(hub, tiny_onnx):
    client = hub.client()
    model = client.upload_model(str(tiny_onnx))
    hub.inject_http(429, times=2, endpoint="jobs.create", retry_after=1)

    job = client.submit_inference_job(model, Device(S24), profile=True, retry=False)

    assert job.wait().success
    assert hub.counts["jobs.create"] == 3 and hub.counts["jobs.create.inference"] == 1


def test_5xx_are_retried_on_gets_and_on_creates(hub, tiny_onnx):
    client = hub.client()
    hub.inject_http(500, endpoint="models.create")
    model = client.upload_model(str(tiny_onnx))
    job = client.submit_inference_job(model, Device(S24), profile=True)
    hub.inject_http(503, times=2, endpoint="jobs.get")

    assert job.wait().success
    assert hub.counts["models.create"] == 2 and hub.counts["models.created"] == 1
    assert hub.counts["injected.503"] == 2 and hub.counts["injected.500"] == 1


def test_other_4xx_surface_as_user_error_with_the_detail(hub, tiny_onnx):
    client = hub.client()
    model = client.upload_model(str(tiny_onnx))
    hub.inject_http(413, endpoint="jobs.create", body="The uploaded asset is too large.")
    with pytest.raises(qai_hub.UserError, match="The uploaded asset is too large"):
        client.submit_inference_job(model, Device(S24), profile=True, retry=False)
    with pytest.raises(qai_hub.UserError, match=r"^ID 'jnotthere' could not be found"):
        client.get_job("jnotthere")
