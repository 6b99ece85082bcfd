"""What can go wrong between EdgeGate and AI Hub, classified (issue 17): every exception the SDK and its
transfer libraries raise, and what a failed job's failure type means for the run.

Exceptions (`classify`):
  auth          401: the token is bad or expired                         -> AUTH_REFUSED
  refused       any other 4xx (qai_hub.UserError): the same request would be refused again
  rate_limited  429 on a POST after the SDK's own backoff (RateLimitedError): wait, within the deadline
  unreachable   botocore could not reach the S3 endpoint after its own 10 retries
  storage       S3 refused a transfer (botocore ClientError, s3transfer), or a part PUT came back without
                the ETag the SDK asserts on: new credentials or URLs may fix it
  ambiguous     everything else the SDK raises (InternalError after its retries, a bare APIException for a
                non-protobuf answer, requests errors, TimeoutError, the ValueError for an empty create reply):
                the request may or may not have taken effect

Failed jobs (`Job.failure_type`, which only the protobuf carries; the SDK's JobStatus drops it):
  RETRYABLE_FAILURES     the infrastructure failed, not the model: resubmit on the same device (bounded)
  STALE_TARGET_FAILURES  the compiled model no longer fits the device's runtime: recompile a cached one once
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...config import TOKEN_ENV, QAIHubSettings
from ...errors import BackendUnavailable, EdgeGateError

RETRYABLE_FAILURES = frozenset({"CLOUD_THROTTLED", "RUNTIME_INTERNAL_SERVICE_BUSY", "CLOUD_API_ERROR",
                                "QDC_API_ERROR"})
STALE_TARGET_FAILURES = frozenset({"QNN_VERSION_MISMATCH", "DSP_VERSION_MISMATCH"})
MAX_JOB_ATTEMPTS = 3  # a job is submitted at most this often (the first time + 2 resubmissions)
_AVAILABLE_IN = re.compile(r"available in (\d+(?:\.\d+)?) second", re.IGNORECASE)


def sdk_exceptions() -> tuple[type[BaseException], ...]:
    """Everything a `qai_hub` call can raise for a failure outside EdgeGate (SDK_SURFACE.md §9, s3_transfer.py)."""
    import botocore.exceptions
    import qai_hub
    import s3transfer.exceptions
    from qai_hub.public_rest_api import APIException

    return (qai_hub.Error, APIException, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
            s3transfer.exceptions.RetriesExceededError, s3transfer.exceptions.S3UploadFailedError,
            s3transfer.exceptions.S3DownloadFailedError, ValueError, AssertionError, OSError)


_SDK_MODULES = ("qai_hub", "botocore", "s3transfer", "requests", "urllib3", "backoff", "h5py", "google.protobuf")


def from_sdk(exc: BaseException) -> bool:
    """Whether `exc` is the SDK's (or its libraries'): its own classes, or raised inside their code. A
    ValueError from EdgeGate's own code is a bug (exit 4), not an AI Hub failure."""
    import botocore.exceptions
    import qai_hub
    from qai_hub.public_rest_api import APIException

    if isinstance(exc, qai_hub.Error | APIException | botocore.exceptions.BotoCoreError |
                  botocore.exceptions.ClientError):
        return True
    tb, module = exc.__traceback__, ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module.startswith(_SDK_MODULES)


def classify(exc: BaseException) -> str:
    """One of auth, refused, rate_limited, unreachable, storage, ambiguous (see the module docstring)."""
    import botocore.exceptions
    import qai_hub
    from qai_hub.client import RateLimitedError
    from qai_hub.public_rest_api import APIException

    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, qai_hub.UserError):
        return "auth" if str(exc).startswith("Failed to authenticate") else "refused"
    if isinstance(exc, APIException) and exc.status_code is not None and 400 <= exc.status_code < 500:
        return {401: "auth", 429: "rate_limited"}.get(exc.status_code, "refused")
    if isinstance(exc, botocore.exceptions.ConnectionError):  # EndpointConnectionError, proxy, SSL, timeouts
        return "unreachable"
    if isinstance(exc, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError | AssertionError):
        return "storage"
    if type(exc).__module__.startswith("s3transfer"):
        return "storage"
    return "ambiguous"


def describe(exc: BaseException, redact: Callable[[str], str]) -> str:
    """One redacted line for a user: the service's own message, said where it came from."""
    kind = classify(exc)
    text = flatten(exc, redact) or type(exc).__name__
    if kind == "unreachable":
        return f"AI Hub's storage (S3) could not be reached: {text}"
    if kind == "storage":
        if isinstance(exc, AssertionError):
            return f"AI Hub's storage accepted an upload part without an ETag ({text})"
        return f"AI Hub's storage (S3) refused the transfer: {text}"
    if text.startswith("API request returned status code 2"):
        return f"AI Hub answered with something that is not its API ({text}; a proxy or maintenance page?)"
    return text


def rate_limit_wait(exc: BaseException, waits_so_far: int) -> float:
    """Seconds to wait after a RateLimitedError: what AI Hub's message says ("Expected available in N
    seconds"), else the SDK's own schedule (20, 40, then 60 s)."""
    found = _AVAILABLE_IN.search(str(exc))
    if found:
        return float(found.group(1))
    return float(min(20 * 2 ** waits_so_far, 60))


def failure_type(client, job_id: str) -> str | None:
    """The failed job's JobFailureType name without its prefix (e.g. "CLOUD_THROTTLED"), or None when AI Hub
    does not say or cannot be read. One GET of jobs/<id>/ through the SDK's own error-mapping call
    (`Client._api_call`): the public API exposes no failure type."""
    from qai_hub import public_api_pb2 as pb
    from qai_hub import public_rest_api

    try:
        job_pb = client._api_call(public_rest_api.get_job, job_id)
    except sdk_exceptions():
        return None
    value = job_pb.failure_type
    if value not in pb.JobFailureType.values():
        return None
    name = pb.JobFailureType.Name(value).removeprefix("JOB_FAILURE_TYPE_")
    return None if name in ("UNSPECIFIED", "SUCCESS") else name


def reason_of(status, redact: Callable[[str], str]) -> str:
    return redact(status.message or "no failure reason given")


_BOX = set("┌┐└┘─ ")


class Stopped(Exception):
    """Another device failed (the runner set `stop`): this one gives up without a verdict of its own."""


def flatten(message: object, redact: Callable[[str], str]) -> str:
    """One redacted line from an SDK message (the SDK draws a box of ┌─┐ | … | └─┘ around its advice)."""
    parts = []
    for line in str(message).splitlines():
        line = line.strip()
        if line and not set(line) <= _BOX:
            parts.append(line.strip("|").strip())
    return redact(" ".join(parts))


def is_auth_error(exc: BaseException) -> bool:
    import qai_hub

    return isinstance(exc, qai_hub.UserError) and str(exc).startswith("Failed to authenticate")


def auth_refused(settings: QAIHubSettings) -> BackendUnavailable:
    """The error for a 401: names where the token came from, never the token."""
    where = f"{settings.web_url.rstrip('/')}/account/"
    fix = (f"set {TOKEN_ENV} to a current token" if settings.token_source == TOKEN_ENV
           else "rewrite it with `qai-hub configure --api_token <token>`, or set " + TOKEN_ENV)
    return BackendUnavailable(f"AI Hub refused the API token from {settings.token_source} (HTTP 401: the token "
                              "is bad or expired)", hint=f"check your token at {where}; {fix}", code="AUTH_REFUSED")


def backend_error(exc: BaseException, settings: QAIHubSettings, doing: str) -> EdgeGateError:
    """The EdgeGate error for an SDK exception raised while `doing` something other than submitting."""
    if is_auth_error(exc):
        return auth_refused(settings)
    return BackendUnavailable(f"AI Hub failed while {doing}: {describe(exc, settings.redact)}",
                              hint="AI Hub may be busy or down; rerun later")
