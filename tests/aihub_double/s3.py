"""The S3-credentials transfer path: what the double hands out instead of presigned URLs.

The SDK asks for `supports_s3_credentials=true` on every upload and download; when the service answers
with `S3Credentials` (short-lived keys scoped to one bucket/key), the SDK moves the bytes with botocore
(`qai_hub/s3_transfer.py`), not with the URL path. botocore builds the endpoint from the region, so a test
points it somewhere local with botocore's own setting `AWS_ENDPOINT_URL_S3`:

- a refused port: botocore retries the connection (10 retries, jittered) and raises EndpointConnectionError;
- `hub.url` with `s3.error` set: this double answers every S3 request with that S3 error (e.g. ExpiredToken),
  which botocore raises as ClientError without retrying.

A transfer that *succeeds* needs a real S3-compatible server; this double does not pretend to be one, so
`upload_complete/` answers 400 (nothing arrived) until a test wires a real server in.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from qai_hub import public_api_pb2 as pb

from .api import Response
from .store import timestamp

CREDENTIAL_LIFETIME_S = 3600


@dataclass
class S3Offer:
    """Which transfers get S3 credentials, and what the double's own S3 endpoint answers."""

    uploads: bool = False
    downloads: bool = False
    bucket: str = "aihub-double-transfers"
    region: str = "us-west-2"
    error: tuple[int, str, str] | None = None  # (HTTP status, S3 error code, message)
    access_key_id: str = field(default_factory=lambda: "ASIA" + secrets.token_hex(8).upper())
    secret_access_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def credentials(self, key: str, filename: str = "") -> pb.S3Credentials:
        creds = pb.S3Credentials(access_key_id=self.access_key_id, secret_access_key=self.secret_access_key,
                                 session_token=self.session_token, bucket=self.bucket, key=key, region=self.region,
                                 use_transfer_acceleration=False, filename=filename)
        creds.expiration.CopyFrom(timestamp(time.time() + CREDENTIAL_LIFETIME_S))
        return creds

    @property
    def secrets(self) -> list[str]:
        """What must never appear in anything a client writes."""
        return [self.secret_access_key, self.session_token]

    def answer(self, method: str) -> Response:
        """The double's S3 endpoint (path-style `/<bucket>/<key>`): the configured error, always."""
        status, code, message = self.error or (501, "NotImplemented", "The AI Hub double runs no S3 server.")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
                f"<Message>{escape(message)}</Message><RequestId>{secrets.token_hex(8)}</RequestId></Error>")
        return Response(status, b"" if method == "HEAD" else body.encode(), "application/xml",
                        {"x-amz-request-id": secrets.token_hex(8)})
