"""Endpoint handlers: one method per AI Hub REST route the qai_hub 0.56 SDK calls (SDK_SURFACE.md §10).

Handlers take a `Request` and return a `Response`; routing, auth, counters and fault injection live in
`server.py`. Every Hub answer is a protobuf from `qai_hub.public_api_pb2` with Content-Type exactly
`application/x-protobuf`; errors are Django-REST-style JSON `{"detail": ...}` (the SDK unwraps it).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from qai_hub import public_api_pb2 as pb

from . import payloads
from .devices import DeviceSpec, family_members, filter_devices, select_device
from .store import (
    DATASET_LIFETIME_S,
    HUB_VERSION,
    OptionError,
    StoredDataset,
    StoredJob,
    StoredModel,
    parse_options,
    profiler_iterations,
    target_runtime,
    timestamp,
)

PROTOBUF = "application/x-protobuf"
_USER = pb.User(id=1, first_name="Edge", last_name="Gate", email="ci@edgegate.invalid", org_id=1)
_RUNNABLE = {pb.MODEL_TYPE_TFLITE, pb.MODEL_TYPE_ONNX, pb.MODEL_TYPE_QNN_DLC, pb.MODEL_TYPE_QNN_CONTEXT_BINARY}
_ARTIFACTS = {"compile": [pb.JOB_ARTIFACT_TYPE_HUB_LOG],
              "inference": [pb.JOB_ARTIFACT_TYPE_DEVICE_LOG, pb.JOB_ARTIFACT_TYPE_HUB_LOG]}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = PROTOBUF
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def proto(message) -> Response:
    return Response(200, message.SerializeToString())


def json_detail(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps({"detail": detail}).encode(), "application/json", headers or {})


def parse(message_cls, body: bytes):
    message = message_cls()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise HttpError(400, f"Malformed {message_cls.__name__} protobuf: {exc}") from exc
    return message


def device_pb(d: DeviceSpec) -> pb.Device:
    return pb.Device(name=d.name, os=d.os, attributes=d.attributes)


class Api:
    """The handlers. `self.double` is the AIHubDouble (knobs), `self.store` its state."""

    def __init__(self, double):
        self.double = double
        self.store = double.store

    # ---- helpers -----------------------------------------------------------------------------------------
    def _model(self, model_id: str) -> StoredModel:
        model = self.store.models.get(model_id)
        if model is None:
            raise HttpError(404, f"Model ID '{model_id}' could not be found.")
        return model

    def _dataset(self, dataset_id: str) -> StoredDataset:
        dataset = self.store.datasets.get(dataset_id)
        if dataset is None:
            raise HttpError(404, f"Dataset ID '{dataset_id}' could not be found.")
        return dataset

    def _job(self, job_id: str) -> StoredJob:
        job = self.store.jobs.get(job_id)
        if job is None:
            raise HttpError(404, f"Job ID '{job_id}' could not be found.")
        return job

    def _signed(self, path: str) -> str:
        return f"{self.double.url}{path}?X-Amz-Signature={self.double.signature(path)}"

    def _blob_url(self, data: bytes, filename: str) -> str:
        key = secrets.token_hex(12)
        self.store.blobs[key] = (data, filename)
        return self._signed(f"/_s3/blob/{key}")

    def _download(self, req: Request, data: bytes, filename: str) -> Response:
        if req.arg("supports_s3_credentials") == "true" and self.double.s3.downloads:
            key = f"downloads/{secrets.token_hex(8)}/{filename}"
            return proto(pb.FileDownloadResponse(credentials=self.double.s3.credentials(key, filename)))
        url = pb.FileDownloadURL(url=self._blob_url(data, filename), filename=filename)
        if req.arg("supports_s3_credentials") == "true":
            return proto(pb.FileDownloadResponse(url=url))
        return proto(url)  # the legacy *_download_url()/download_dataset_info() calls expect the bare URL

    def _model_pb(self, m: StoredModel, *, full: bool = True) -> pb.Model:
        msg = pb.Model(model_id=m.model_id, name=m.name, creation_time=timestamp(m.created),
                       model_type=m.model_type, is_directory=m.is_directory, owner=_USER,
                       file_upload_complete=m.data is not None, read_only=False, hidden=False)
        if m.producer_id:
            msg.producer_id = m.producer_id
        if full and m.info is not None and m.data is not None:
            msg.input_spec.CopyFrom(payloads.tensor_type_list(m.info.inputs))
            msg.output_spec.CopyFrom(payloads.tensor_type_list(m.info.outputs))
            msg.metadata.SetInParent()
            for key, value in m.metadata.items():
                msg.metadata.entries[key] = value
        return msg

    def _dataset_pb(self, d: StoredDataset) -> pb.Dataset:
        msg = pb.Dataset(dataset_id=d.dataset_id, name=d.name, creation_time=timestamp(d.created),
                         permanent=d.permanent, file_upload_complete=d.data is not None, owner=_USER)
        if not d.permanent:
            msg.expiration_time.CopyFrom(timestamp(d.created + DATASET_LIFETIME_S))
        return msg

    # ---- users, devices, frameworks ---------------------------------------------------------------------
    def user(self, req: Request) -> Response:
        return proto(_USER)

    def devices(self, req: Request) -> Response:
        name, os_, attrs = req.arg("name"), req.arg("os"), req.query.get("attributes", [])
        if req.arg("select").lower() == "true":
            chosen = select_device(self.double.devices, name, os_, attrs)
            found = [chosen] if chosen is not None else []
        else:
            found = filter_devices(self.double.devices, name, os_, attrs)
        return proto(pb.DeviceList(devices=[device_pb(d) for d in found], total_query_count=len(found)))

    def frameworks(self, req: Request) -> Response:
        qairt = self.double.qairt_version
        return proto(pb.FrameworkList(frameworks=[
            pb.Framework(name="QAIRT", api_version=qairt[:4], api_tags=["default", "latest"], full_version=qairt),
            pb.Framework(name="QAIRT", api_version=payloads.QAIRT_ONNX_VERSION[:4], api_tags=[],
                         full_version=payloads.QAIRT_ONNX_VERSION),
        ], total_query_count=2))

    # ---- models -------------------------------------------------------------------------------------------
    def create_model(self, req: Request) -> Response:
        body = parse(pb.Model, req.body)
        if body.model_type == pb.MODEL_TYPE_UNSPECIFIED:
            raise HttpError(400, "model_type is required.")
        model = StoredModel(self.store.new_id("m"), body.name or "model", body.model_type, body.is_directory,
                            time.time())
        self.store.models[model.model_id] = model
        self.double.counts["models.created"] += 1
        return proto(pb.CreateUpdateResponse(id=model.model_id, creation_time=timestamp(model.created)))

    def model_upload_url(self, req: Request) -> Response:
        model = self._model(req.params["id"])
        try:
            size = int(req.arg("file_size"))
        except ValueError as exc:
            raise HttpError(400, "file_size is required.") from exc
        if req.arg("supports_s3_credentials") == "true" and self.double.s3.uploads:
            key = f"models/{model.model_id}/{model.name}"
            return proto(pb.FileUploadResponse(credentials=self.double.s3.credentials(key)))
        part_size = self.double.max_part_size
        count = max(1, math.ceil(size / part_size))
        model.upload_id, model.parts = secrets.token_hex(16), {}
        urls = [self._signed(f"/_s3/upload/{model.model_id}/{model.upload_id}/{i + 1}") for i in range(count)]
        multipart = pb.FileMultipartUploadURL(urls=urls, upload_id=model.upload_id, max_part_size=part_size)
        if req.arg("supports_s3_credentials") == "true":
            return proto(pb.FileUploadResponse(multipart_url=multipart))
        return proto(multipart)

    def upload_part(self, req: Request) -> Response:
        model = self._model(req.params["id"])
        if req.params["upload"] != model.upload_id:
            return Response(404, b"<Error><Code>NoSuchUpload</Code></Error>", "application/xml")
        model.parts[int(req.params["part"])] = req.body
        self.double.counts["uploads.parts"] += 1
        self.double.counts["uploads.bytes"] += len(req.body)
        if self.double.omit_etag:  # a storage answer without the ETag the SDK asserts on
            return Response(200, b"", None)
        return Response(200, b"", None, {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    def complete_upload(self, req: Request) -> Response:
        model = self._model(req.params["id"])
        body = parse(pb.FileMultipartUploadComplete, req.body)
        if body.upload_id != model.upload_id:
            raise HttpError(400, f"Unknown upload_id '{body.upload_id}'.")
        parts = [model.parts[i] for i in sorted(model.parts)]
        expected = [f'"{hashlib.md5(p).hexdigest()}"' for p in parts]
        if list(body.etags) != expected:
            raise HttpError(400, "The list of parts was not in ascending order or an ETag did not match.")
        model.data = b"".join(parts)
        model.parts = {}
        if model.model_type == pb.MODEL_TYPE_ONNX:
            model.info = payloads.inspect_model(model.data, model.is_directory)
        self.double.counts["models.uploaded"] += 1
        return proto(pb.CreateUpdateResponse(id=model.model_id))

    def s3_confirm(self, req: Request) -> Response:
        # The credentials path's upload went to S3, which this double does not run (yet): nothing arrived.
        raise HttpError(400, "The uploaded object was not found in storage.")

    def get_model(self, req: Request) -> Response:
        return proto(self._model_pb(self._model(req.params["id"])))

    def update_model(self, req: Request) -> Response:
        model = self._model(req.params["id"])
        body = parse(pb.Model, req.body)
        if body.HasField("name"):
            model.name = body.name
        return proto(pb.CreateUpdateResponse(id=model.model_id))

    def list_models(self, req: Request) -> Response:
        models = sorted(self.store.models.values(), key=lambda m: m.created, reverse=True)
        producer = req.arg("producer")
        if producer:
            models = [m for m in models if m.producer_id == producer]
        page = _page(models, req)
        return proto(pb.ModelList(models=[self._model_pb(m) for m in page], total_query_count=len(models)))

    def download_model(self, req: Request) -> Response:
        model = self._model(req.params["id"])
        if model.data is None:
            raise HttpError(404, f"Model ID '{model.model_id}' has no file to download.")
        return self._download(req, model.data, model.filename)

    # ---- datasets ------------------------------------------------------------------------------------------
    def create_dataset(self, req: Request) -> Response:
        body = parse(pb.Dataset, req.body)
        dataset = StoredDataset(self.store.new_id("d"), body.name or "dataset", time.time(), body.permanent)
        self.store.datasets[dataset.dataset_id] = dataset
        self.double.counts["datasets.created"] += 1
        reply = pb.CreateUpdateResponse(id=dataset.dataset_id, creation_time=timestamp(dataset.created))
        if not dataset.permanent:
            reply.expiration_time.CopyFrom(timestamp(dataset.created + DATASET_LIFETIME_S))
        return proto(reply)

    def dataset_upload_url(self, req: Request) -> Response:
        dataset = self._dataset(req.params["id"])
        key = f"datasets/{dataset.dataset_id}/dataset.h5"
        if req.arg("supports_s3_credentials") == "true" and self.double.s3.uploads:
            return proto(pb.FileUploadResponse(credentials=self.double.s3.credentials(key)))
        url = pb.FileUploadURL(url=self._signed(f"/_s3/dataset/{dataset.dataset_id}"), file_field_name="file",
                               fields={"key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256",
                                       "policy": secrets.token_urlsafe(24)})
        if req.arg("supports_s3_credentials") == "true":
            return proto(pb.FileUploadResponse(url=url))
        return proto(url)

    def dataset_post(self, req: Request) -> Response:
        dataset = self._dataset(req.params["id"])
        fields = _multipart(req.headers.get("content-type", ""), req.body)
        if "key" not in fields or "file" not in fields:
            return Response(400, b"<Error><Code>InvalidArgument</Code></Error>", "application/xml")
        dataset.data = fields["file"]
        self.double.counts["uploads.bytes"] += len(dataset.data)
        return Response(204, b"", None)

    def confirm_dataset(self, req: Request) -> Response:
        dataset = self._dataset(req.params["id"])
        body = parse(pb.Dataset, req.body)
        if body.file_upload_complete and dataset.data is None:
            raise HttpError(400, "No file was uploaded for this dataset.")
        return proto(pb.CreateUpdateResponse(id=dataset.dataset_id))

    def get_dataset(self, req: Request) -> Response:
        return proto(self._dataset_pb(self._dataset(req.params["id"])))

    def list_datasets(self, req: Request) -> Response:
        datasets = sorted(self.store.datasets.values(), key=lambda d: d.created, reverse=True)
        return proto(pb.DatasetList(datasets=[self._dataset_pb(d) for d in _page(datasets, req)],
                                    total_query_count=len(datasets)))

    def download_dataset(self, req: Request) -> Response:
        dataset = self._dataset(req.params["id"])
        if dataset.data is None:
            raise HttpError(404, f"Dataset ID '{dataset.dataset_id}' has no data.")
        name = dataset.name if dataset.name.endswith(".h5") else f"{dataset.name}.h5"
        return self._download(req, dataset.data, name)

    # ---- presigned blob downloads ----------------------------------------------------------------------------
    def blob(self, req: Request) -> Response:
        found = self.store.blobs.get(req.params["key"])
        if found is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        self.double.counts["downloads.bytes"] += len(found[0])
        return Response(200, found[0], "application/octet-stream")

    # ---- jobs ------------------------------------------------------------------------------------------------
    def create_job(self, req: Request) -> Response:
        body = parse(pb.Job, req.body)
        which = body.WhichOneof("job")
        try:
            if which == "compile_job":
                job = self._create_compile(body.compile_job, req)
            elif which == "inference_job":
                job = self._create_inference(body.inference_job)
            else:
                raise HttpError(400, f"The AI Hub double does not implement {which or 'empty'} jobs.")
        except OptionError as exc:
            raise HttpError(400, str(exc)) from exc
        refusal = self.double.take_create_refusal()
        if refusal is not None:  # created nothing: an empty id and a status, as the SDK's docstring allows
            return proto(pb.CreateUpdateResponse(status=refusal))
        self.store.jobs[job.job_id] = job
        self.double.counts[f"jobs.create.{job.kind}"] += 1
        if job.kind == "inference" and job.profiling:
            self.double.counts["jobs.create.profile"] += 1
        return proto(pb.CreateUpdateResponse(id=job.job_id, creation_time=timestamp(job.created)))

    def _resolve(self, device: pb.Device) -> DeviceSpec:
        found = select_device(self.double.devices, device.name, device.os, list(device.attributes))
        if found is None:
            raise HttpError(400, f"Device(name='{device.name}', os='{device.os}') is not available.")
        return found

    def _ready_model(self, model_pb: pb.Model) -> StoredModel:
        """An uploaded model, or a compile job's target that may still be in the making (AI Hub lets a
        profile job wait on its compile job, as submit_compile_and_profile_jobs did)."""
        model = self._model(model_pb.model_id)
        if model.data is None and not model.producer_id:
            raise HttpError(400, f"Model '{model.model_id}' has not finished uploading.")
        return model

    def _new_job(self, kind: str, name: str, options: str, model: StoredModel, devices: list[DeviceSpec],
                 profiling: bool = False) -> StoredJob:
        job = StoredJob(self.store.new_id("j"), kind, name or model.name, options, time.time(), model.model_id,
                        devices[0], devices, self.double.polls_before_done, profiling=profiling,
                        odd_states=list(self.double.odd_states))
        job.failure = self.double.match_failure(kind, profiling, devices[0].name, model.model_id, job.name)
        members = family_members(self.double.devices, devices[0]) if devices[0].name.endswith("(Family)") else []
        if members:  # AI Hub runs a "(Family)" job on any one of its members
            job.member = members[self.store._rng.randrange(len(members))]
        return job

    def _create_compile(self, body: pb.CompileJob, req: Request) -> StoredJob:
        model = self._ready_model(body.model)
        if model.model_type not in (pb.MODEL_TYPE_ONNX, pb.MODEL_TYPE_TORCHSCRIPT, pb.MODEL_TYPE_AIMET_ONNX,
                                    pb.MODEL_TYPE_TORCH_EXPORTED_PROGRAM, pb.MODEL_TYPE_QNN_CONTEXT_BINARY):
            raise HttpError(400, "This model type cannot be compiled.")
        requested = list(body.devices.devices) or [body.device]
        devices = [self._resolve(d) for d in requested]
        runtime = target_runtime(parse_options(body.options))
        job = self._new_job("compile", body.name, body.options, model, devices)
        job.runtime = runtime
        job.input_specs = body.tensor_type_list
        model_type, ext = payloads.TARGET_RUNTIMES[runtime]
        stem = f"Job_{job.job_id}_Optimized_{runtime.title().replace('_', '')}"
        target = StoredModel(self.store.new_id("m"), stem + ext.removesuffix(".zip"), model_type,
                             ext.endswith(".zip"), job.created, producer_id=job.job_id)
        self.store.models[target.model_id] = target
        job.target_model_id = target.model_id
        return job

    def _create_inference(self, body: pb.InferenceJob) -> StoredJob:
        model = self._ready_model(body.model)
        if model.model_type not in _RUNNABLE:
            raise HttpError(400, "This model type must be compiled before it can run on a device.")
        options = parse_options(body.options)
        profiler_iterations(options)  # validates
        job = self._new_job("inference", body.name, body.options, model, [self._resolve(body.device)],
                            profiling=body.is_profiling_on)
        job.runtime = payloads.runtime_of(model.model_type)
        if body.dataset.dataset_id:
            dataset = self._dataset(body.dataset.dataset_id)
            if dataset.data is None:
                raise HttpError(400, f"Dataset '{dataset.dataset_id}' has not finished uploading.")
            job.dataset_id = dataset.dataset_id
        return job

    def get_job(self, req: Request) -> Response:
        job = self._job(req.params["id"])
        self.store.observe(job, poll=True)
        return proto(self.job_pb(job))

    def job_pb(self, job: StoredJob) -> pb.Job:
        common = {"name": job.name, "options": job.options, "job_state": job.state, "user": _USER, "user_id": 1,
                  "model": self._model_pb(self.store.models[job.model_id]),
                  "creation_time": timestamp(job.created), "queued_time": timestamp(job.created),
                  "last_updated_time": timestamp(job.finished or job.started or job.created)}
        if job.started is not None:
            common["start_time"] = timestamp(job.started)
        if job.finished is not None:
            common["completion_time"] = timestamp(job.finished)
        if job.state == pb.JOB_STATE_FAILED:
            common["failure_reason"] = job.failure_reason
        if job.kind == "compile":
            sub = pb.CompileJob(compile_job_id=job.job_id, device=device_pb(job.device),
                                devices=pb.DeviceList(devices=[device_pb(d) for d in job.devices]),
                                tensor_type_list=job.input_specs, has_vizgraph=False, **common)
            if not self.double.omit_target_model:  # a legacy server seeds no target model
                sub.target_model.CopyFrom(self._model_pb(self.store.models[job.target_model_id], full=False))
            info = self.store.models[job.model_id].info
            if job.state == pb.JOB_STATE_DONE and info is not None:
                sub.target_tensor_type_list.CopyFrom(payloads.tensor_type_list(info.inputs))
            msg = pb.Job(compile_job=sub)
        else:
            msg = pb.Job(inference_job=self._inference_pb(job, common))
        msg.hub_version = HUB_VERSION
        msg.failure_type = job.failure_type
        if job.done:
            msg.available_artifacts.extend(_ARTIFACTS[job.kind])
        return msg

    def _inference_pb(self, job: StoredJob, common: dict) -> pb.InferenceJob:
        sub = pb.InferenceJob(inference_job_id=job.job_id, device=device_pb(job.device),
                              is_profiling_on=job.profiling, has_vizgraph=False, **common)
        if job.dataset_id:
            sub.dataset.CopyFrom(self._dataset_pb(self.store.datasets[job.dataset_id]))
        info = self.store._source_of(self.store.models[job.model_id]).info
        if info is not None:
            sub.tensor_type_list.CopyFrom(payloads.tensor_type_list(info.inputs))
        if job.detail is not None:
            sub.execution_time = job.detail.execution_time
            sub.execution_peak_memory.CopyFrom(job.detail.execution_memory.peak)
        return sub

    def update_job(self, req: Request) -> Response:
        job = self._job(req.params["id"])
        body = parse(pb.JobPublicUpdate, req.body)
        if body.HasField("name"):
            job.name = body.name
        return proto(pb.CreateUpdateResponse(id=job.job_id))

    def job_result(self, req: Request) -> Response:
        job = self._job(req.params["id"])
        self.store.observe(job, poll=False)
        if job.kind == "compile":
            result = pb.CompileJobResult(compile_job_id=job.job_id)
            if job.state == pb.JOB_STATE_DONE:
                result.compile_detail.tool_versions.extend(payloads.tool_versions(job.runtime,
                                                                                  self.double.qairt_version))
            return proto(pb.JobResult(compile_job_result=result))
        inference = pb.InferenceJobResult(inference_job_id=job.job_id)
        if job.state == pb.JOB_STATE_DONE:
            inference.output_dataset_id = job.output_dataset_id
            if job.detail is not None:
                inference.detail.CopyFrom(job.detail)
        return proto(pb.JobResult(inference_job_result=inference))

    def download_compiled_model(self, req: Request) -> Response:
        job = self._job(req.params["id"])
        if job.kind != "compile":
            raise HttpError(400, f"Job '{job.job_id}' is not a compile job.")
        model = self.store.models[job.target_model_id]
        if job.state != pb.JOB_STATE_DONE or model.data is None:
            raise HttpError(404, f"Job '{job.job_id}' has no compiled model.")
        return self._download(req, model.data, model.filename)

    def artifacts(self, req: Request) -> Response:
        job = self._job(req.params["id"])
        kind = int(req.params["type"])
        if not job.done or kind not in _ARTIFACTS[job.kind]:
            return proto(pb.NamedArtifactDownloadURLList())
        label = "device" if kind == pb.JOB_ARTIFACT_TYPE_DEVICE_LOG else "hub"
        filename = f"{job.job_id}_{label}.log"
        url = self._blob_url(_log_text(job, label).encode(), filename)
        artifact = pb.NamedArtifactDownloadURL(url=url, filename=filename)
        return proto(pb.NamedArtifactDownloadURLList(artifacts=[artifact]))

    def _jobs_filtered(self, req: Request) -> list[StoredJob]:
        jobs = sorted(self.store.jobs.values(), key=lambda j: j.created, reverse=True)
        kind = req.arg("type")
        if kind == "profile":
            jobs = [j for j in jobs if j.kind == "inference" and j.profiling]
        elif kind:
            jobs = [j for j in jobs if j.kind == kind]
        states = {int(s) for s in req.arg("state").split(",") if s.strip().isdigit()}
        return [j for j in jobs if not states or j.state in states]

    def list_jobs(self, req: Request) -> Response:
        jobs = self._jobs_filtered(req)
        return proto(pb.JobList(jobs=[self.job_pb(j) for j in _page(jobs, req)], total_query_count=len(jobs)))

    def job_summaries(self, req: Request) -> Response:
        jobs = self._jobs_filtered(req)
        summaries = [self._summary(j) for j in _page(jobs, req)]
        return proto(pb.JobSummaryList(job_summaries=summaries, total_query_count=len(jobs)))

    def _summary(self, job: StoredJob) -> pb.JobSummary:
        common = {"job_id": job.job_id, "user": _USER, "name": job.name, "job_state": job.state,
                  "device_name": job.device.name, "device_os_version": job.device.os,
                  "creation_time": timestamp(job.created)}
        if job.kind == "compile":
            target = self.store.models[job.target_model_id]
            return pb.JobSummary(compile_job_summary=pb.CompileJobSummary(
                target_model_type=target.model_type, **common))
        summary = pb.InferenceJobSummary(is_profiling_on=job.profiling, **common)
        if job.detail is not None:
            summary.execution_time = job.detail.execution_time
            summary.execution_peak_memory.CopyFrom(job.detail.execution_memory.peak)
        return pb.JobSummary(inference_job_summary=summary)


def _page(items: list, req: Request) -> list:
    offset = int(req.arg("offset", "0") or 0)
    limit = req.arg("limit")
    return items[offset: offset + int(limit)] if limit else items[offset:]


def _log_text(job: StoredJob, label: str) -> str:
    lines = [f"[{label}] job {job.job_id} ({job.kind}) on {job.device.name} (OS {job.device.os})",
             f"[{label}] options: {job.options or '(none)'}"]
    if job.state == pb.JOB_STATE_FAILED:
        lines.append(f"[{label}] FAILED: {job.failure_reason}")
    else:
        lines.append(f"[{label}] completed successfully")
    return "\n".join(lines) + "\n"


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """A minimal multipart/form-data parser (the stdlib `cgi` module is deprecated)."""
    marker = "boundary="
    if marker not in content_type:
        return {}
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
    fields: dict[str, bytes] = {}
    for part in body.split(b"--" + boundary):
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition") and 'name="' in line:
                name = line.split('name="', 1)[1].split('"', 1)[0]
                fields[name] = value[:-2] if value.endswith(b"\r\n") else value
    return fields
