"""Every answer the agent refuses with: a stable code, its HTTP status, and the exception carrying both.

The first eleven are SPEC §10.3's refusals; the rest name request and state problems. Each refusal is
counted in /metrics (`edgegate_agent_refusals_total{code}`); those about releases, blobs and
directives are also recorded in state.json.
"""

from __future__ import annotations

from enum import StrEnum

from ..errors import EdgeGateError, ExitCode


class Code(StrEnum):
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    KEY_UNTRUSTED = "KEY_UNTRUSTED"
    KEY_REVOKED = "KEY_REVOKED"
    MANIFEST_EXPIRED = "MANIFEST_EXPIRED"
    DOWNGRADE = "DOWNGRADE"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    LENGTH_MISMATCH = "LENGTH_MISMATCH"
    REPLAY = "REPLAY"
    INCOMPATIBLE = "INCOMPATIBLE"
    NO_EVIDENCE = "NO_EVIDENCE"
    LOAD_FAILED = "LOAD_FAILED"
    MANIFEST_INVALID = "MANIFEST_INVALID"  # signed by a trusted key, but not a valid release or directive
    INVALID_REQUEST = "INVALID_REQUEST"  # malformed JSON, a missing or unknown field
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    LENGTH_REQUIRED = "LENGTH_REQUIRED"  # a blob upload that declares no length
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"  # the client stopped sending its body
    BLOB_MISSING = "BLOB_MISSING"  # a deploy names a file whose blob was never uploaded
    DEPLOY_IN_PROGRESS = "DEPLOY_IN_PROGRESS"  # one deployment at a time: the second is refused
    WRONG_DEVICE = "WRONG_DEVICE"  # a rollback directive for another device or cohort
    ROLLBACK_MISMATCH = "ROLLBACK_MISMATCH"  # its from_sha256 is not the active model
    NO_ROLLBACK_TARGET = "NO_ROLLBACK_TARGET"  # its to_sha256 is not the model the agent holds
    NOT_FOUND = "NOT_FOUND"
    NO_ACTIVE_MODEL = "NO_ACTIVE_MODEL"
    INFERENCE_FAILED = "INFERENCE_FAILED"  # the model raised on these inputs (counted as an error)
    CHANNEL_EXPIRED = "CHANNEL_EXPIRED"  # pull mode: the channel manifest's expires_at has passed
    CHANNEL_ROLLBACK = "CHANNEL_ROLLBACK"  # pull mode: a channel version lower than one seen
    INTERNAL = "INTERNAL"


HTTP_STATUS = {
    Code.SIGNATURE_INVALID: 403, Code.KEY_UNTRUSTED: 403, Code.KEY_REVOKED: 403, Code.MANIFEST_EXPIRED: 422,
    Code.DOWNGRADE: 409, Code.DIGEST_MISMATCH: 422, Code.LENGTH_MISMATCH: 422, Code.REPLAY: 409,
    Code.INCOMPATIBLE: 422, Code.NO_EVIDENCE: 422, Code.LOAD_FAILED: 422, Code.MANIFEST_INVALID: 400,
    Code.INVALID_REQUEST: 400, Code.BODY_TOO_LARGE: 413, Code.LENGTH_REQUIRED: 411, Code.REQUEST_TIMEOUT: 408,
    Code.BLOB_MISSING: 409, Code.DEPLOY_IN_PROGRESS: 409, Code.WRONG_DEVICE: 422, Code.ROLLBACK_MISMATCH: 409,
    Code.NO_ROLLBACK_TARGET: 409, Code.NOT_FOUND: 404, Code.NO_ACTIVE_MODEL: 503, Code.INFERENCE_FAILED: 422,
    Code.CHANNEL_EXPIRED: 422, Code.CHANNEL_ROLLBACK: 409, Code.INTERNAL: 500,
}


class AgentRefusal(EdgeGateError):
    """A refusal answered with `HTTP_STATUS[code]` and `{"error": {"code", "message", "hint"}}`."""

    exit_code = ExitCode.GATES_FAILED

    def __init__(self, code: Code, message: str, *, hint: str | None = None, close: bool = False):
        super().__init__(message, hint=hint, code=str(code))
        self.refusal = code
        self.http_status = HTTP_STATUS[code]
        self.close = close  # answer with `Connection: close` (the request body was not read to its end)

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}


def from_verification(exc: EdgeGateError) -> AgentRefusal:
    """The refusal for a release_manifest / rollback_directive VerificationFailed (same codes)."""
    code = Code(exc.code) if exc.code in Code.__members__ else Code.MANIFEST_INVALID
    return AgentRefusal(code, exc.message, hint=exc.hint)
