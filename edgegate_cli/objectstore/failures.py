"""Turns every boto3/botocore failure into an EdgeGate error (objectstore.py's one exit from botocore).

Messages name the s3:// URL, the endpoint (host and port only) and, for a store's refusal, its error code
(letters and digits only); never a key, a secret, a signature or text the server chose.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..errors import (
    EdgeGateError,
    InvalidInput,
    StoreCredentialsMissing,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
)

CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in "
                    "~/.aws/credentials")
ENDPOINT_HINT = "check the endpoint (AWS_ENDPOINT_URL or --endpoint-url) and that the store is running"
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                   "TokenRefreshRequired", "AuthorizationHeaderMalformed", "InvalidSecurity"}
TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                   "Throttling", "ThrottlingException", "RequestLimitExceeded"}


def safe_endpoint(endpoint: str | None) -> str:
    """`scheme://host:port` of an endpoint URL, without any user:password part or path."""
    if not endpoint:
        return "the default AWS endpoint"
    parts = urlsplit(endpoint)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _safe_code(code: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "?", str(code))[:64] or "?"


@contextmanager
def store_errors(url: str, endpoint: str | None = None):
    """Run the block; re-raise any boto3/botocore/urllib3 failure as the matching errors.Store* error."""
    try:
        yield
    except EdgeGateError:
        raise
    except Exception as exc:
        mapped = map_store_error(exc, url, endpoint)
        if mapped is None:
            raise
        raise mapped from None


def map_store_error(exc: BaseException, url: str, endpoint: str | None = None) -> EdgeGateError | None:
    """The EdgeGate error for a boto3/botocore/urllib3 exception, or None when it is none of those."""
    import boto3.exceptions
    import botocore.exceptions as bce
    import urllib3.exceptions

    where = safe_endpoint(endpoint)
    if isinstance(exc, boto3.exceptions.S3UploadFailedError) and exc.__cause__ is not None:
        return map_store_error(exc.__cause__, url, endpoint) or StoreError(f"{url}: upload failed")
    if isinstance(exc, bce.ClientError):
        return _client_error(exc, url, where)
    if isinstance(exc, bce.ProfileNotFound):
        return StoreCredentialsMissing(f"{url}: AWS profile {exc.kwargs.get('profile')!r} is not configured",
                                       hint="name a profile from ~/.aws/config, or unset AWS_PROFILE")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.CredentialRetrievalError
                  | bce.NoAuthTokenError | bce.SSOError | bce.TokenRetrievalError):
        return StoreCredentialsMissing(f"{url}: no usable S3 credentials were found", hint=CREDENTIALS_HINT)
    if isinstance(exc, bce.SSLError):
        return StoreUnreachable(f"{url}: TLS with {where} failed (certificate or handshake)", transient=False,
                                hint="check the endpoint's certificate, or AWS_CA_BUNDLE for a private CA")
    if isinstance(exc, bce.ConnectionError | bce.HTTPClientError | bce.IncompleteReadError
                  | urllib3.exceptions.HTTPError):
        what = "timed out" if "Timeout" in type(exc).__name__ else "did not answer or the connection broke"
        return StoreUnreachable(f"{url}: the object store at {where} {what}", hint=ENDPOINT_HINT)
    if isinstance(exc, bce.ChecksumError | bce.FlexibleChecksumError):
        return StoreError(f"{url}: a response from {where} failed its transfer checksum", transient=True)
    if isinstance(exc, bce.ParamValidationError | bce.ConfigParseError | bce.InvalidConfigError
                  | bce.ValidationError | bce.NoRegionError | bce.UnknownEndpointError):
        return InvalidInput(f"{url}: the S3 client configuration is invalid ({type(exc).__name__})",
                            hint="check ~/.aws/config and the AWS_* variables")
    if isinstance(exc, bce.BotoCoreError | boto3.exceptions.Boto3Error):
        return StoreError(f"{url}: the S3 client failed ({type(exc).__name__})")
    return None


def _client_error(exc, url: str, where: str) -> EdgeGateError:
    """The store answered with an error status."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = _safe_code(error.get("Code") or status)
    if code == "NoSuchBucket":
        return StoreNotFound(f"{url}: bucket does not exist at {where}", hint="create the bucket or fix the URL")
    if status == 404 or code in ("NoSuchKey", "NotFound", "404"):
        return StoreNotFound(f"{url}: no such object at {where}")
    if code in BAD_CREDENTIALS:
        return StoreDenied(f"{url}: {where} does not accept these credentials ({code})", hint=CREDENTIALS_HINT)
    if status in (401, 403):
        return StoreDenied(f"{url}: {where} denied access ({code})",
                           hint="these credentials lack permission for this bucket or key")
    transient = status == 429 or status >= 500 or code in TRANSIENT_CODES
    return StoreError(f"{url}: {where} answered HTTP {status} ({code})", transient=transient,
                      hint="try again later" if transient else None)
