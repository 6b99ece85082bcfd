"""`AIHubDouble`: a local HTTP server the real, unpatched qai_hub SDK talks to as if it were AI Hub.

    with AIHubDouble() as hub:
        client = qai_hub.Client(config=ClientConfig(api_token=hub.token, api_url=hub.url, web_url=hub.url))
        # or: client = hub.client()

Routing, auth, counters and fault injection live here; the endpoint handlers are in `api.py`, the state
and job progression in `store.py`, the synthetic payloads in `payloads.py`, the devices in `devices.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from qai_hub import public_api_pb2 as pb

from . import payloads
from .api import Api, HttpError, Request, Response, json_detail
from .devices import DeviceSpec, default_devices
from .payloads import ProfileKnobs
from .s3 import S3Offer
from .store import FailureRule, Store

_ID = r"(?P<id>[a-z0-9]+)"
# (method, path under /api/v1/ without the optional projects/<p>/ prefix, endpoint key, Api method)
_API_ROUTES: list[tuple[str, str, str, str]] = [
    ("GET", r"users/auth/user/", "users.auth.user", "user"),
    ("GET", r"devices/", "devices.list", "devices"),
    ("GET", r"frameworks/", "frameworks.list", "frameworks"),
    ("POST", r"models/", "models.create", "create_model"),
    ("GET", r"models/", "models.list", "list_models"),
    ("GET", rf"models/{_ID}/", "models.get", "get_model"),
    ("PATCH", rf"models/{_ID}/", "models.update", "update_model"),
    ("GET", rf"models/{_ID}/multipart_upload/", "models.upload_url", "model_upload_url"),
    ("POST", rf"models/{_ID}/multipart_upload/", "models.upload_complete", "complete_upload"),
    ("POST", rf"models/{_ID}/upload_complete/", "models.upload_complete_s3", "s3_confirm"),
    ("GET", rf"models/{_ID}/download/", "models.download", "download_model"),
    ("POST", r"datasets/", "datasets.create", "create_dataset"),
    ("GET", r"datasets/", "datasets.list", "list_datasets"),
    ("GET", rf"datasets/{_ID}/", "datasets.get", "get_dataset"),
    ("PATCH", rf"datasets/{_ID}/", "datasets.confirm", "confirm_dataset"),
    ("GET", rf"datasets/{_ID}/upload_url/", "datasets.upload_url", "dataset_upload_url"),
    ("POST", rf"datasets/{_ID}/upload_complete/", "datasets.upload_complete_s3", "s3_confirm"),
    ("GET", rf"datasets/{_ID}/download_data/", "datasets.download", "download_dataset"),
    ("POST", r"jobs/", "jobs.create", "create_job"),
    ("GET", r"jobs/", "jobs.list", "list_jobs"),
    ("GET", rf"jobs/{_ID}/", "jobs.get", "get_job"),
    ("PATCH", rf"jobs/{_ID}/", "jobs.update", "update_job"),
    ("GET", rf"jobs/{_ID}/result/", "jobs.result", "job_result"),
    ("GET", rf"jobs/{_ID}/download_compiled_model/", "jobs.download_compiled_model", "download_compiled_model"),
    ("GET", rf"jobs/{_ID}/device_runs/(?P<attempt>[a-z0-9]+)/artifact_list/(?P<type>[0-9]+)/",
     "jobs.artifacts", "artifacts"),
    ("GET", r"job_summaries/", "job_summaries.list", "job_summaries"),
]
# Presigned "S3" URLs the double hands out: no Authorization header, a signature in the query.
_FILE_ROUTES: list[tuple[str, str, str, str]] = [
    ("PUT", rf"/_s3/upload/{_ID}/(?P<upload>[0-9a-f]+)/(?P<part>[0-9]+)", "files.upload_part", "upload_part"),
    ("POST", rf"/_s3/dataset/{_ID}", "files.dataset_upload", "dataset_post"),
    ("GET", r"/_s3/blob/(?P<key>[0-9a-f]+)", "files.download", "blob"),
]
_PROJECT = re.compile(r"projects/[^/]+/(?=(models|datasets|jobs|job_summaries)/)")


@dataclass
class HttpFault:
    """Answer the next `times` matching requests with `status` instead of serving them."""

    status: int
    times: int = 1
    endpoint: str | None = None  # endpoint key or prefix ("jobs" matches "jobs.get"); None: any Hub API call
    method: str | None = None
    retry_after: float | None = None
    body: str | None = None
    commit: bool = False  # serve the request first (e.g. create the job), then answer the fault instead
    until: float | None = None  # a time window (time.monotonic()): matching requests fail until then

    def matches(self, endpoint: str, method: str) -> bool:
        if self.times <= 0 or (self.method and self.method.upper() != method):
            return False
        if self.until is not None and time.monotonic() >= self.until:
            return False
        if self.endpoint is None:
            return not endpoint.startswith(("files.", "s3."))
        return endpoint == self.endpoint or endpoint.startswith(self.endpoint + ".")


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    endpoint: str
    status: int
    injected: bool = False


class AIHubDouble:
    """An AI Hub protocol double on 127.0.0.1:<ephemeral port>.

    Knobs (plain attributes, change them at any time):
      token                  the only API token accepted; anything else gets 401
      devices                list[DeviceSpec] served by GET devices/ (remove_device() drops a name)
      polls_before_done      status GETs answered with an in-progress state before the final one
      hold_running_s         additionally keep every job non-final until this long after creation
      max_part_size          multipart upload part size (small values exercise multi-part uploads)
      output_rel_noise       relative (multiplicative) noise on inference outputs, like fp16 rounding
      queue_s                keep every job CREATED (queued) until this long after its creation
      odd_states             job states answered by each new job's first status GETs (0 = UNSPECIFIED, or a
                             value this SDK does not know), before its normal progression
      qairt_version          the QAIRT version AI Hub reports (frameworks/ default, tool_versions, metadata)
      s3                     S3Offer: which transfers get S3 credentials instead of URLs, and what the
                             double's S3 endpoint answers (offer_s3_credentials())
      omit_etag              presigned part PUTs answer without an ETag
      omit_target_model      compile jobs carry no target_model (as from a legacy server)
      omit_outputs           inference jobs on a dataset succeed without an output dataset
    Methods: fail_jobs(), inject_http(), set_profile(), remove_device(), set_device_frameworks(),
      refuse_creates(), offer_s3_credentials(), reset_counts().
    Introspection: counts (Counter per endpoint key and per event), requests (list[RequestRecord]),
      store.models / store.datasets / store.jobs.
    """

    def __init__(self, *, token: str | None = None, devices: list[DeviceSpec] | None = None,
                 polls_before_done: int = 2, hold_running_s: float = 0.0, max_part_size: int = 5 * 1024 * 1024,
                 output_rel_noise: float = 1e-3, seed: int = 0):
        self.token = token or f"aihub-double-{secrets.token_hex(8)}"
        self.devices: list[DeviceSpec] = list(devices) if devices is not None else default_devices()
        self.polls_before_done = polls_before_done
        self.hold_running_s = hold_running_s
        self.max_part_size = max_part_size
        self.output_rel_noise = output_rel_noise
        self.queue_s = 0.0
        self.odd_states: list[int] = []
        self.qairt_version = payloads.QAIRT_VERSION
        self.s3 = S3Offer()
        self.omit_etag = False
        self.omit_target_model = False
        self.omit_outputs = False
        self._create_refusals: list[str] = []
        self.counts: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        self.server_errors: list[str] = []  # tracebacks of exceptions inside the double (should stay empty)
        self.store = Store(self, seed)
        self._failures: list[FailureRule] = []
        self._faults: list[HttpFault] = []
        self._profile: dict[str | None, dict] = {None: {}}
        self._secret = secrets.token_bytes(16)
        self._api = Api(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("AIHubDouble is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AIHubDouble:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.double = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="aihub-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> AIHubDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- pointing the SDK at it ---------------------------------------------------------------------------
    def client_config(self, token: str | None = None, verbose: bool = False):
        from qai_hub.client import ClientConfig

        return ClientConfig(api_token=self.token if token is None else token, api_url=self.url,
                            web_url=self.url, verbose=verbose)

    def client(self, token: str | None = None, verbose: bool = False):
        from qai_hub.client import Client

        return Client(config=self.client_config(token, verbose))

    # ---- knobs ----------------------------------------------------------------------------------------------
    def fail_jobs(self, reason: str, *, kind: str | None = None, device: str | None = None,
                  failure_type: int | str = "RUNTIME_UNKNOWN", times: int | None = None,
                  model: str | None = None, name: str | None = None) -> FailureRule:
        """Fail future jobs (kind "compile" | "inference" | "profile" | None) on `device` (or any), on model
        id `model` (or any) and whose name contains `name` (or any), with `reason`, which reaches
        `job.get_status().message` verbatim.
        failure_type: a JobFailureType value or its name without the JOB_FAILURE_TYPE_ prefix (e.g.
        "CLOUD_THROTTLED", "QNN_VERSION_MISMATCH"); the SDK hides it, `Job.failure_type` carries it."""
        if kind not in (None, "compile", "inference", "profile"):
            raise ValueError(f"kind must be compile, inference, profile or None, not {kind!r}")
        if isinstance(failure_type, str):
            failure_type = pb.JobFailureType.Value("JOB_FAILURE_TYPE_" + failure_type.upper())
        rule = FailureRule(reason, kind, device, failure_type, times, model, name)
        with self.store.lock:
            self._failures.append(rule)
        return rule

    def clear_failures(self) -> None:
        with self.store.lock:
            self._failures.clear()

    def match_failure(self, kind: str, profiling: bool, device: str, model: str = "",
                      name: str = "") -> FailureRule | None:
        for rule in self._failures:
            if rule.matches(kind, profiling, device, model, name):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def inject_http(self, status: int, *, times: int = 1, endpoint: str | None = None, method: str | None = None,
                    retry_after: float | None = None, body: str | None = None, commit: bool = False,
                    seconds: float | None = None) -> HttpFault:
        """Answer the next `times` requests matching (endpoint, method) with HTTP `status` — or, with `seconds`,
        every matching request for that long (an outage in wall time). With `commit`, the request is served
        first (a POST jobs/ creates its job) and only its answer is lost."""
        until = None if seconds is None else time.monotonic() + seconds
        fault = HttpFault(status, 10**9 if seconds is not None else times, endpoint, method, retry_after, body, commit,
                          until)
        with self.store.lock:
            self._faults.append(fault)
        return fault

    def set_profile(self, device: str | None = None, **knobs) -> None:
        """Override simulated measurements, for one device name or (device=None) for all. Keys are the
        fields of payloads.ProfileKnobs: median_us, cv, job_jitter, outlier_rate, npu_fraction,
        peak_memory_bytes, load_time_us."""
        valid = {f.name for f in dataclasses.fields(ProfileKnobs)}
        unknown = set(knobs) - valid
        if unknown:
            raise TypeError(f"unknown profile knobs: {sorted(unknown)}")
        with self.store.lock:
            self._profile.setdefault(device, {}).update(knobs)

    def profile_knobs(self, device: str) -> ProfileKnobs:
        return dataclasses.replace(ProfileKnobs(**self._profile[None]), **self._profile.get(device, {}))

    def set_device_frameworks(self, name: str, frameworks: tuple[str, ...]) -> int:
        """Give every device called `name` exactly these frameworks (e.g. ("onnx",): no QNN); returns how many."""
        changed = [dataclasses.replace(d, frameworks=tuple(frameworks)) if d.name == name else d for d in self.devices]
        count = sum(1 for d in self.devices if d.name == name)
        self.devices = changed
        return count

    def refuse_creates(self, status: str, times: int = 1) -> None:
        """The next `times` POST jobs/ create nothing and answer an empty id with `status` (SDK: ValueError)."""
        with self.store.lock:
            self._create_refusals.extend([status] * times)

    def take_create_refusal(self) -> str | None:
        return self._create_refusals.pop(0) if self._create_refusals else None

    def offer_s3_credentials(self, *, uploads: bool = True, downloads: bool = True,
                             error: tuple[int, str, str] | None = None) -> S3Offer:
        """Hand out S3 credentials (scoped to one bucket/key) instead of presigned URLs. Point botocore at a
        local endpoint with AWS_ENDPOINT_URL_S3: a refused port, or `self.url` to get `error` back from
        every S3 request (e.g. (400, "ExpiredToken", "The provided token has expired."))."""
        self.s3 = dataclasses.replace(self.s3, uploads=uploads, downloads=downloads, error=error)
        return self.s3

    def remove_device(self, name: str) -> int:
        """Drop every device with this name (a retired or renamed device); returns how many were dropped."""
        before = len(self.devices)
        self.devices = [d for d in self.devices if d.name != name]
        return before - len(self.devices)

    def reset_counts(self) -> None:
        with self.store.lock:
            self.counts.clear()
            self.requests.clear()

    def signature(self, path: str) -> str:
        return hmac.new(self._secret, path.encode(), hashlib.sha256).hexdigest()[:32]

    # ---- request handling --------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, list[str]]):
        """(endpoint key, Api method name or None, captured params, needs auth)."""
        if path.startswith(f"/{self.s3.bucket}/"):
            return "s3.request", "s3", {}, False
        if path.startswith("/api/v1/"):
            rel = _PROJECT.sub("", path[len("/api/v1/"):], count=1)
            for m, pattern, endpoint, handler in _API_ROUTES:
                match = re.fullmatch(pattern, rel)
                if match and m == method:
                    if endpoint == "devices.list" and query.get("select", [""])[0].lower() == "true":
                        endpoint = "devices.select"
                    return endpoint, handler, match.groupdict(), True
            return "unknown", None, {}, True
        for m, pattern, endpoint, handler in _FILE_ROUTES:
            match = re.fullmatch(pattern, path)
            if match and m == method:
                return endpoint, handler, match.groupdict(), False
        return "unknown", None, {}, False

    def handle(self, req: Request) -> tuple[str, Response, bool]:
        endpoint, handler, params, needs_auth = self.route(req.method, req.path, req.query)
        req.params = params
        with self.store.lock:
            self.counts[endpoint] += 1
            fault = next((f for f in self._faults if f.matches(endpoint, req.method)), None)
            if fault is not None:
                fault.times -= 1
                self.counts[f"injected.{fault.status}"] += 1
                if fault.commit and handler is not None:
                    self._serve(handler, req)
                return endpoint, _fault_response(fault), True
            if handler is None:
                return endpoint, Response(404, b"<h1>Not Found</h1>", "text/html"), False
            if needs_auth and req.headers.get("authorization") != f"token {self.token}":
                self.counts["auth.refused"] += 1
                return endpoint, json_detail(401, "Invalid token.", {"WWW-Authenticate": "Token"}), False
            if handler == "s3":
                return endpoint, self.s3.answer(req.method), False
            if not needs_auth and req.query.get("X-Amz-Signature", [""])[0] != self.signature(req.path):
                return endpoint, Response(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>",
                                          "application/xml"), False
            return endpoint, self._serve(handler, req), False

    def _serve(self, handler: str, req: Request) -> Response:
        try:
            return getattr(self._api, handler)(req)
        except HttpError as exc:
            return json_detail(exc.status, exc.detail)
        except Exception:  # noqa: BLE001 - a bug in the double: answer 500, keep it for the test
            self.server_errors.append(traceback.format_exc())
            return Response(500, b"<h1>Server Error (500)</h1>", "text/html")


def _fault_response(fault: HttpFault) -> Response:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.status == 401:
        return json_detail(401, fault.body or "Invalid token.", {"WWW-Authenticate": "Token", **headers})
    if fault.status == 429:
        wait = f"{fault.retry_after:g}" if fault.retry_after is not None else "60"
        detail = fault.body or f"Request was throttled. Expected available in {wait} seconds."
        return json_detail(429, detail, headers)
    if fault.status >= 500:
        html = fault.body or f"<h1>Server Error ({fault.status})</h1>"
        return Response(fault.status, html.encode(), "text/html", headers)
    return Response(fault.status, json.dumps({"detail": fault.body or f"Injected {fault.status}"}).encode(),
                    "application/json", headers)


class _Handler(BaseHTTPRequestHandler):
    server_version = "AIHubDouble/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence stderr access logs
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        double: AIHubDouble = self.server.double  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                      {k.lower(): v for k, v in self.headers.items()}, self._body())
        endpoint, resp, injected = double.handle(req)
        with double.store.lock:
            double.requests.append(RequestRecord(req.method, parts.path, endpoint, resp.status, injected))
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
